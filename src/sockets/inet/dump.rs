//! The inet_sk_entry of one inet/inet6 socket, as CRIU 4.2 writes it: what
//! inet_diag says of a hashed socket (listening, bound UDP, connected
//! UDP, raw), or what getsockname/getpeername/TCP_INFO say of one the
//! kernel has not hashed (created, or bound TCP), the IP, TCP and generic
//! socket options. What the image can't carry is refused here, by name.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;

use anyhow::{bail, Context, Result};

use super::addr;
use super::diag::{self, Diag};
use super::ipopts;
use super::uncarried;
use crate::images::pb::{FownEntry, InetSkEntry};
use crate::sys::sockopt_raw::{self as raw, get_bytes, get_int};

pub const TCP_ESTABLISHED: u32 = 1;
pub const TCP_CLOSE: u32 = 7;
pub const TCP_LISTEN: u32 = 10;

/// inet_diag answers of this dump, by (family, protocol), then inode.
#[derive(Default)]
pub struct Collected(HashMap<(i32, i32), HashMap<u32, Diag>>, pub Established, pub SkipInFlight);

/// --skip-in-flight: a listener's connections not accepted yet are left
/// out (as CRIU 4.2: the restored listener has none) instead of refused.
#[derive(Default)]
pub struct SkipInFlight(pub bool);

/// --tcp-established: ESTABLISHED connections are recorded (their stream
/// is read through repair mode by the caller).
#[derive(Default)]
pub struct Established(pub bool);

impl Collected {
    /// Raw sockets are all asked for as IPPROTO_RAW (as CRIU does).
    fn lookup(&mut self, family: i32, proto: i32, ino: u32) -> Result<Option<Diag>> {
        let all = match self.0.entry((family, proto)) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(match diag::collect(family as u8, proto as u8, None, states(proto)) {
                Ok(all) => all,
                // No raw_diag module: raw sockets are read like unhashed ones.
                Err(e) if proto == libc::IPPROTO_RAW && e.root_cause().downcast_ref() == Some(&nix::errno::Errno::ENOENT) => HashMap::new(),
                Err(e) => return Err(e),
            }),
        };
        Ok(all.get(&ino).cloned())
    }
}

/// The states asked of inet_diag, as CRIU asks them: for TCP every state
/// but CLOSE (a socket only bound is read like an unhashed one, so its
/// record has no ns_id, as CRIU's), all of them for the others.
fn states(proto: i32) -> u32 {
    if proto == libc::IPPROTO_TCP {
        [TCP_LISTEN, TCP_ESTABLISHED, 2, 4, 5, 8, 9, 11].iter().fold(0, |m, s| m | 1 << s)
    } else {
        u32::MAX
    }
}

/// The name of TCP state `s`, for refusals.
pub fn state_name(s: u32) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "unknown",
    }
}

fn proto_name(proto: i32) -> &'static str {
    match proto {
        libc::IPPROTO_TCP => "TCP",
        libc::IPPROTO_UDP => "UDP",
        libc::IPPROTO_UDPLITE => "UDP-Lite",
        libc::IPPROTO_ICMP => "ICMP",
        libc::IPPROTO_ICMPV6 => "ICMPv6",
        _ => "IP",
    }
}

/// What getsockname/getpeername (and TCP_INFO, and poll for the shutdown
/// state) say of a socket inet_diag does not list.
fn unhashed(fd: BorrowedFd<'_>, ino: u32, proto: i32) -> Result<Diag> {
    let mut d = Diag { ino, state: TCP_CLOSE, ..Default::default() };
    // SO_MEMINFO's first word: receive memory in use (queued data).
    let mem = get_bytes(fd, libc::SOL_SOCKET, libc::SO_MEMINFO, 36).context("getsockopt(SO_MEMINFO)")?;
    d.rqlen = mem.get(..4).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    if let Some(a) = raw::name(fd, false).context("getsockname")? {
        let (port, w) = addr::to_image(&a);
        (d.src_port, d.src) = (port as u16, w);
    }
    match raw::name(fd, true) {
        Ok(a) => {
            if let Some(a) = a {
                let (port, w) = addr::to_image(&a);
                (d.dst_port, d.dst) = (port as u16, w);
                d.state = TCP_ESTABLISHED;
            }
        }
        Err(nix::errno::Errno::ENOTCONN) => {}
        Err(e) => return Err(e).context("getpeername"),
    }
    if proto == libc::IPPROTO_TCP {
        let info = get_bytes(fd, libc::SOL_TCP, libc::TCP_INFO, 8).context("getsockopt(TCP_INFO)")?;
        d.state = u32::from(*info.first().unwrap_or(&0));
        d.wqlen = u32::from(*info.get(4).unwrap_or(&0));
    }
    let ev = raw::poll_now(fd, libc::POLLRDHUP).context("poll for the shutdown state")?;
    if ev & libc::POLLRDHUP != 0 {
        d.shutdown |= 1;
        if proto != libc::IPPROTO_TCP && ev & libc::POLLHUP != 0 {
            d.shutdown |= 2;
        }
    }
    Ok(d)
}

/// The record of inet socket `fd` (our copy of fd `who`), file `id` with
/// status flags `flags`. `tcp_close` (--tcp-close) records connections
/// (to be restored closed, as CRIU does) instead of refusing them.
pub fn entry(fd: BorrowedFd<'_>, ino: u32, id: u32, flags: u32, found: &mut Collected, tcp_close: bool, who: &str) -> Result<InetSkEntry> {
    let opt = |name: i32, what: &str| get_int(fd, libc::SOL_SOCKET, name).with_context(|| format!("getsockopt({what}) on {who}"));
    let family = opt(libc::SO_DOMAIN, "SO_DOMAIN")?;
    let ty = opt(libc::SO_TYPE, "SO_TYPE")?;
    let proto = opt(libc::SO_PROTOCOL, "SO_PROTOCOL")?;
    let v6 = family == libc::AF_INET6;
    let what = format!("{who} (an {} {} socket, inode {ino})", if v6 { "IPv6" } else { "IPv4" }, proto_name(proto));
    let raw_sk = ty == libc::SOCK_RAW;
    let ping = ty == libc::SOCK_DGRAM && (proto == libc::IPPROTO_ICMP || proto == libc::IPPROTO_ICMPV6);
    let dgram = match (ty, proto) {
        (libc::SOCK_STREAM, libc::IPPROTO_TCP) => false,
        (libc::SOCK_DGRAM, libc::IPPROTO_UDP | libc::IPPROTO_UDPLITE) => true,
        (libc::SOCK_RAW, _) => true,
        _ if ping => true,
        _ => bail!("{what} has type {ty} and protocol {proto}: not supported"),
    };
    // No sock_diag module answers for ping sockets: read like unhashed
    // ones (as CRIU), their state and peer from /proc/net/icmp (raw ones
    // without raw_diag: /proc/net/raw).
    let diag_proto = if raw_sk { libc::IPPROTO_RAW } else { proto };
    let hashed = if ping { None } else { found.lookup(family, diag_proto, ino).with_context(|| format!("sock_diag for {what}"))? };
    let in_diag = hashed.is_some();
    let mut d = match hashed {
        Some(d) => d,
        None => unhashed(fd, ino, proto).with_context(|| what.clone())?,
    };
    if !in_diag && (ping || raw_sk) {
        let table = match (ping, v6) {
            (true, false) => "icmp",
            (true, true) => "icmp6",
            (false, false) => "raw",
            (false, true) => "raw6",
        };
        super::procnet::peer(&mut d, table).with_context(|| what.clone())?;
    }
    if proto == libc::IPPROTO_UDPLITE {
        uncarried::refuse_udplite_coverage(fd).with_context(|| what.clone())?;
    }
    if dgram {
        if d.rqlen != 0 {
            bail!("{what} has datagrams queued ({} bytes of its receive buffer): the image has no place for them (CRIU 4.2 drops them)", d.rqlen);
        }
        if d.wqlen != 0 || (!raw_sk && get_int(fd, libc::SOL_UDP, libc::UDP_CORK).unwrap_or(0) != 0) {
            bail!("{what} is corked or has datagrams waiting to be sent: not supported");
        }
    } else {
        match d.state {
            TCP_CLOSE => {}
            TCP_LISTEN if d.rqlen != 0 && found.2 .0 => {
                tracing::info!("Skipping in-flight connection (l) for {ino:x}: {what} has {} connection(s) not accepted yet, dropped", d.rqlen);
            }
            TCP_LISTEN if d.rqlen != 0 => {
                bail!("{what} is listening with {} connection(s) not accepted yet: not supported (--skip-in-flight leaves them out)", d.rqlen)
            }
            TCP_LISTEN => {}
            // ESTABLISHED and the closing states CRIU 4.2 carries.
            s if found.1 .0 && crate::sockets::tcp_repair::carried(s) => {}
            // ESTABLISHED, SYN_SENT, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING.
            1 | 2 | 4 | 5 | 8 | 9 | 11 if tcp_close => {}
            s => {
                let at = |port: u16, w: &[u32; 4]| {
                    addr::from_image(family as u32, u32::from(port), if v6 { &w[..] } else { &w[..1] }, 0).map_or_else(|_| format!("port {port}"), |a| a.to_string())
                };
                let need = if found.1 .0 {
                    "its state can't be carried (--tcp-established carries ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK and CLOSING); --tcp-close restores it closed"
                } else {
                    "connected TCP sockets need --tcp-established or --tcp-close (restored closed)"
                };
                bail!(
                    "{what} is a connection in state {} ({} to {}): {need}",
                    state_name(s),
                    at(d.src_port, &d.src),
                    at(d.dst_port, &d.dst)
                )
            }
        }
    }
    let n = if v6 { 4 } else { 1 };
    let v6only = if v6 { Some(get_int(fd, libc::SOL_IPV6, libc::IPV6_V6ONLY).context("getsockopt(IPV6_V6ONLY)")? != 0) } else { None };
    let opts = crate::sockets::opts::dump(fd).with_context(|| what.clone())?;
    uncarried::refuse_uncarried(fd, v6, !dgram).with_context(|| what.clone())?;
    super::mcast::refuse_memberships(fd, v6, !dgram).with_context(|| what.clone())?;
    let ip_opts = ipopts::dump_ip(fd, v6, raw_sk.then_some(proto)).with_context(|| what.clone())?;
    let tcp_opts = if dgram { Default::default() } else { ipopts::dump_tcp(fd).with_context(|| what.clone())? };
    let ifname = if v6 && d.src_port != 0 && addr::needs_scope(&d.src) {
        match opts.so_bound_dev.clone() {
            Some(dev) => Some(dev),
            None => bail!("{what} is bound to a link-local address without a bound device: can't be bound again"),
        }
    } else {
        None
    };
    Ok(InetSkEntry {
        id,
        ino,
        family: family as u32,
        r#type: ty as u32,
        proto: proto as u32,
        state: d.state,
        src_port: u32::from(d.src_port),
        dst_port: u32::from(d.dst_port),
        flags,
        backlog: d.wqlen,
        src_addr: d.src[..n].to_vec(),
        dst_addr: d.dst[..n].to_vec(),
        fown: FownEntry::default(),
        opts,
        v6only,
        ip_opts: Some(ip_opts),
        ifname,
        ns_id: in_diag.then_some(crate::ns::sock_net_ns_id()),
        shutdown: (d.shutdown != 0).then_some(d.shutdown as i32),
        tcp_opts: Some(tcp_opts),
    })
}
