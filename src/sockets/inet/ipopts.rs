//! The IP-level and TCP-level options of an inet socket both ways, as CRIU
//! 4.2 records them: ip_opts_entry (IP_FREEBIND, IPv4's IP_TTL always and
//! IP_TOS when set, IP_PKTINFO / IPV6_RECVPKTINFO, a raw socket's
//! IP_HDRINCL, IP_NODEFRAG and ICMP filter) and tcp_opts_entry (TCP_CORK,
//! TCP_NODELAY when set, the keepalive knobs always). Options with no
//! place in the image are `uncarried`'s.

use std::os::fd::BorrowedFd;

use anyhow::{Context, Result};

use crate::images::pb::{IpOptsEntry, IpOptsRawEntry, TcpOptsEntry};
use crate::sys::sockopt_raw::{self as raw, get_int, set_int};

/// ICMP_FILTER (SOL_RAW) and ICMPV6_FILTER (SOL_ICMPV6).
const ICMP_FILTER: i32 = 1;
const ICMPV6_FILTER: i32 = 1;
const SOL_RAW: i32 = 255;
const SOL_ICMPV6: i32 = 58;
const IP_NODEFRAG: i32 = 22;
const IPV6_HDRINCL: i32 = 36;

fn int(fd: BorrowedFd<'_>, level: i32, name: i32, what: &str) -> Result<i32> {
    get_int(fd, level, name).with_context(|| format!("getsockopt({what})"))
}

/// ip_opts_entry of socket `fd` (`raw_proto`: a raw socket's protocol).
pub fn dump_ip(fd: BorrowedFd<'_>, v6: bool, raw_proto: Option<i32>) -> Result<IpOptsEntry> {
    let mut e = IpOptsEntry::default();
    if let Some(proto) = raw_proto {
        let mut r = IpOptsRawEntry::default();
        if v6 {
            r.hdrincl = Some(int(fd, libc::SOL_IPV6, IPV6_HDRINCL, "IPV6_HDRINCL")? != 0);
            if proto == libc::IPPROTO_ICMPV6 {
                let f = raw::get_bytes(fd, SOL_ICMPV6, ICMPV6_FILTER, 32).context("getsockopt(ICMPV6_FILTER)")?;
                r.icmpv_filter = f.chunks_exact(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect();
            }
        } else {
            r.hdrincl = Some(int(fd, libc::SOL_IP, libc::IP_HDRINCL, "IP_HDRINCL")? != 0);
            r.nodefrag = (int(fd, libc::SOL_IP, IP_NODEFRAG, "IP_NODEFRAG")? != 0).then_some(true);
            if proto == libc::IPPROTO_ICMP {
                r.icmpv_filter = vec![int(fd, SOL_RAW, ICMP_FILTER, "ICMP_FILTER")? as u32];
            }
        }
        r.hdrincl = r.hdrincl.filter(|h| *h);
        e.raw = Some(r);
    } else {
        e.freebind = (int(fd, libc::SOL_IP, libc::IP_FREEBIND, "IP_FREEBIND")? != 0).then_some(true);
    }
    if v6 {
        e.pktinfo = (int(fd, libc::SOL_IPV6, libc::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO")? != 0).then_some(true);
    } else {
        e.pktinfo = (int(fd, libc::SOL_IP, libc::IP_PKTINFO, "IP_PKTINFO")? != 0).then_some(true);
        let tos = int(fd, libc::SOL_IP, libc::IP_TOS, "IP_TOS")?;
        e.tos = (tos != 0).then_some(tos as u32);
        e.ttl = Some(int(fd, libc::SOL_IP, libc::IP_TTL, "IP_TTL")? as u32);
    }
    Ok(e)
}

/// tcp_opts_entry of TCP socket `fd`.
pub fn dump_tcp(fd: BorrowedFd<'_>) -> Result<TcpOptsEntry> {
    let t = |name: i32, what: &str| int(fd, libc::SOL_TCP, name, what);
    Ok(TcpOptsEntry {
        cork: (t(libc::TCP_CORK, "TCP_CORK")? != 0).then_some(true),
        nodelay: (t(libc::TCP_NODELAY, "TCP_NODELAY")? != 0).then_some(true),
        keepcnt: Some(t(libc::TCP_KEEPCNT, "TCP_KEEPCNT")? as u32),
        keepidle: Some(t(libc::TCP_KEEPIDLE, "TCP_KEEPIDLE")? as u32),
        keepintvl: Some(t(libc::TCP_KEEPINTVL, "TCP_KEEPINTVL")? as u32),
    })
}

/// Set the IP options of `e` on socket `fd` (IP_FREEBIND is the caller's:
/// it goes on around bind).
pub fn restore_ip(fd: BorrowedFd<'_>, e: &IpOptsEntry, v6: bool, proto: i32, who: &str) -> Result<()> {
    let set = |level: i32, name: i32, v: i32, what: &str| set_int(fd, level, name, v).with_context(|| format!("setsockopt({what}) on {who}"));
    if e.pktinfo == Some(true) {
        if v6 {
            set(libc::SOL_IPV6, libc::IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO")?;
        } else {
            set(libc::SOL_IP, libc::IP_PKTINFO, 1, "IP_PKTINFO")?;
        }
    }
    if let Some(tos) = e.tos {
        set(libc::SOL_IP, libc::IP_TOS, tos as i32, "IP_TOS")?;
    }
    if let Some(ttl) = e.ttl {
        set(libc::SOL_IP, libc::IP_TTL, ttl as i32, "IP_TTL")?;
    }
    if let Some(r) = &e.raw {
        if !r.icmpv_filter.is_empty() && (proto == libc::IPPROTO_ICMP || proto == libc::IPPROTO_ICMPV6) {
            let bytes: Vec<u8> = r.icmpv_filter.iter().flat_map(|w| w.to_ne_bytes()).collect();
            let (level, name) = if v6 { (SOL_ICMPV6, ICMPV6_FILTER) } else { (SOL_RAW, ICMP_FILTER) };
            raw::set_bytes(fd, level, name, &bytes).with_context(|| format!("setsockopt(ICMP filter) on {who}"))?;
        }
        if let Some(v) = r.nodefrag {
            set(libc::SOL_IP, IP_NODEFRAG, i32::from(v), "IP_NODEFRAG")?;
        }
        if let Some(v) = r.hdrincl {
            let (level, name) = if v6 { (libc::SOL_IPV6, IPV6_HDRINCL) } else { (libc::SOL_IP, libc::IP_HDRINCL) };
            set(level, name, i32::from(v), "IP_HDRINCL")?;
        }
    }
    Ok(())
}

/// Set the TCP options of `e` on socket `fd`.
pub fn restore_tcp(fd: BorrowedFd<'_>, e: &TcpOptsEntry, who: &str) -> Result<()> {
    let set = |name: i32, v: i32, what: &str| set_int(fd, libc::SOL_TCP, name, v).with_context(|| format!("setsockopt({what}) on {who}"));
    if e.cork == Some(true) {
        set(libc::TCP_CORK, 1, "TCP_CORK")?;
    }
    if e.nodelay == Some(true) {
        set(libc::TCP_NODELAY, 1, "TCP_NODELAY")?;
    }
    for (v, name, what) in [(e.keepcnt, libc::TCP_KEEPCNT, "TCP_KEEPCNT"), (e.keepidle, libc::TCP_KEEPIDLE, "TCP_KEEPIDLE"), (e.keepintvl, libc::TCP_KEEPINTVL, "TCP_KEEPINTVL")] {
        if let Some(v) = v {
            set(name, v as i32, what)?;
        }
    }
    Ok(())
}
