//! The IP, IPv6, TCP, UDP-Lite and socket-level options of an inet socket
//! that inet_sk_entry has no place for (CRIU 4.2 drops them silently): a
//! socket with one away from its default is refused at dump, naming it.
//! Defaults that follow a sysctl are read from it (the dump runs in the
//! socket's network namespace).

use std::os::fd::BorrowedFd;

use anyhow::{bail, Result};

use crate::sys::sockopt_raw::{get_bytes, get_int};

const UDPLITE_SEND_CSCOV: i32 = 10;
const UDPLITE_RECV_CSCOV: i32 = 11;
const IP_RECVORIGDSTADDR: i32 = 20;
const IP_MINTTL: i32 = 21;
const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
const IP_RECVFRAGSIZE: i32 = 25;
const IP_RECVERR_RFC4884: i32 = 26;
const IP_MULTICAST_ALL: i32 = 49;
const IP_LOCAL_PORT_RANGE: i32 = 51;
const IPV6_MULTICAST_ALL: i32 = 29;
const IPV6_RECVPATHMTU: i32 = 60;
const IPV6_DONTFRAG: i32 = 62;
const IPV6_MINHOPCOUNT: i32 = 73;
const IPV6_RECVORIGDSTADDR: i32 = 74;
const SO_PREFER_BUSY_POLL: i32 = 69;
const SO_RESERVE_MEM: i32 = 73;
const SO_RCVMARK: i32 = 75;
const TCP_SAVE_SYN: i32 = 27;
const TCP_TX_DELAY: i32 = 37;

fn sysctl(path: &str) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// (level, option, its name, its default) of the int options to check.
fn checks(v6: bool, tcp: bool) -> Vec<(i32, i32, &'static str, Option<i32>)> {
    let mut c = vec![
        (libc::SOL_IP, libc::IP_RECVERR, "IP_RECVERR", Some(0)),
        (libc::SOL_IP, libc::IP_TRANSPARENT, "IP_TRANSPARENT", Some(0)),
        (libc::SOL_IP, libc::IP_RECVTOS, "IP_RECVTOS", Some(0)),
        (libc::SOL_IP, libc::IP_RECVTTL, "IP_RECVTTL", Some(0)),
        (libc::SOL_IP, libc::IP_RECVOPTS, "IP_RECVOPTS", Some(0)),
        (libc::SOL_IP, libc::IP_RETOPTS, "IP_RETOPTS", Some(0)),
        (libc::SOL_IP, IP_RECVORIGDSTADDR, "IP_RECVORIGDSTADDR", Some(0)),
        (libc::SOL_IP, IP_MINTTL, "IP_MINTTL", Some(0)),
        (libc::SOL_IP, IP_BIND_ADDRESS_NO_PORT, "IP_BIND_ADDRESS_NO_PORT", Some(0)),
        (libc::SOL_IP, IP_RECVFRAGSIZE, "IP_RECVFRAGSIZE", Some(0)),
        (libc::SOL_IP, IP_RECVERR_RFC4884, "IP_RECVERR_RFC4884", Some(0)),
        (libc::SOL_IP, libc::IP_PASSSEC, "IP_PASSSEC", Some(0)),
        (libc::SOL_IP, IP_LOCAL_PORT_RANGE, "IP_LOCAL_PORT_RANGE", Some(0)),
        (libc::SOL_SOCKET, libc::SO_PEEK_OFF, "SO_PEEK_OFF", Some(-1)),
        // An unsigned long read as an int: ~0 (no limit) is -1.
        (libc::SOL_SOCKET, libc::SO_MAX_PACING_RATE, "SO_MAX_PACING_RATE", Some(-1)),
        (libc::SOL_SOCKET, SO_RCVMARK, "SO_RCVMARK", Some(0)),
        (libc::SOL_SOCKET, libc::SO_LOCK_FILTER, "SO_LOCK_FILTER", Some(0)),
        (libc::SOL_SOCKET, libc::SO_BUSY_POLL, "SO_BUSY_POLL", sysctl("/proc/sys/net/core/busy_read")),
        (libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, "SO_PREFER_BUSY_POLL", Some(0)),
        (libc::SOL_SOCKET, SO_RESERVE_MEM, "SO_RESERVE_MEM", Some(0)),
    ];
    // Multicast settings mean nothing to TCP (an accepted socket's TTL is
    // the SYN's).
    if !tcp {
        c.extend([
            (libc::SOL_IP, libc::IP_MULTICAST_TTL, "IP_MULTICAST_TTL", Some(1)),
            (libc::SOL_IP, libc::IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP", Some(1)),
        ]);
    }
    if v6 {
        c.extend([
            (libc::SOL_IP, libc::IP_TOS, "IP_TOS", Some(0)),
            (libc::SOL_IP, libc::IP_TTL, "IP_TTL", sysctl("/proc/sys/net/ipv4/ip_default_ttl")),
            (libc::SOL_IPV6, libc::IPV6_TCLASS, "IPV6_TCLASS", Some(0)),
            (libc::SOL_IPV6, libc::IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", sysctl("/proc/sys/net/ipv6/conf/all/hop_limit")),
            (libc::SOL_IPV6, libc::IPV6_RECVERR, "IPV6_RECVERR", Some(0)),
            (libc::SOL_IPV6, libc::IPV6_MTU_DISCOVER, "IPV6_MTU_DISCOVER", Some(libc::IPV6_PMTUDISC_WANT)),
            (libc::SOL_IPV6, libc::IPV6_RECVHOPLIMIT, "IPV6_RECVHOPLIMIT", Some(0)),
            (libc::SOL_IPV6, libc::IPV6_RECVTCLASS, "IPV6_RECVTCLASS", Some(0)),
            (libc::SOL_IPV6, libc::IPV6_RECVRTHDR, "IPV6_RECVRTHDR", Some(0)),
            (libc::SOL_IPV6, libc::IPV6_RECVHOPOPTS, "IPV6_RECVHOPOPTS", Some(0)),
            (libc::SOL_IPV6, libc::IPV6_RECVDSTOPTS, "IPV6_RECVDSTOPTS", Some(0)),
            (libc::SOL_IPV6, IPV6_RECVPATHMTU, "IPV6_RECVPATHMTU", Some(0)),
            (libc::SOL_IPV6, IPV6_DONTFRAG, "IPV6_DONTFRAG", Some(0)),
            (libc::SOL_IPV6, IPV6_MINHOPCOUNT, "IPV6_MINHOPCOUNT", Some(0)),
            (libc::SOL_IPV6, libc::IPV6_TRANSPARENT, "IPV6_TRANSPARENT", Some(0)),
            (libc::SOL_IPV6, IPV6_RECVORIGDSTADDR, "IPV6_RECVORIGDSTADDR", Some(0)),
            (libc::SOL_IPV6, libc::IPV6_FLOWINFO, "IPV6_FLOWINFO", Some(0)),
        ]);
        if !tcp {
            c.extend([
                (libc::SOL_IPV6, libc::IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS", Some(1)),
                (libc::SOL_IPV6, libc::IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP", Some(1)),
                (libc::SOL_IPV6, libc::IPV6_MULTICAST_IF, "IPV6_MULTICAST_IF", Some(0)),
                (libc::SOL_IPV6, IPV6_MULTICAST_ALL, "IPV6_MULTICAST_ALL", Some(1)),
            ]);
        }
    } else {
        let pmtu = sysctl("/proc/sys/net/ipv4/ip_no_pmtu_disc").map(|n| if n == 0 { libc::IP_PMTUDISC_WANT } else { libc::IP_PMTUDISC_DONT });
        c.push((libc::SOL_IP, libc::IP_MTU_DISCOVER, "IP_MTU_DISCOVER", pmtu));
        if !tcp {
            c.extend([
                (libc::SOL_IP, libc::IP_MULTICAST_IF, "IP_MULTICAST_IF", Some(0)),
                (libc::SOL_IP, IP_MULTICAST_ALL, "IP_MULTICAST_ALL", Some(1)),
            ]);
        }
    }
    if tcp {
        c.extend([
            (libc::SOL_TCP, libc::TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", Some(0)),
            (libc::SOL_TCP, libc::TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT", Some(0)),
            (libc::SOL_TCP, libc::TCP_FASTOPEN, "TCP_FASTOPEN", Some(0)),
            // Unset, these two read as their sysctls.
            (libc::SOL_TCP, libc::TCP_SYNCNT, "TCP_SYNCNT", sysctl("/proc/sys/net/ipv4/tcp_syn_retries")),
            (libc::SOL_TCP, libc::TCP_LINGER2, "TCP_LINGER2", sysctl("/proc/sys/net/ipv4/tcp_fin_timeout")),
            (libc::SOL_TCP, libc::TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT", Some(0)),
            (libc::SOL_TCP, libc::TCP_THIN_LINEAR_TIMEOUTS, "TCP_THIN_LINEAR_TIMEOUTS", Some(0)),
            (libc::SOL_TCP, TCP_SAVE_SYN, "TCP_SAVE_SYN", Some(0)),
            (libc::SOL_TCP, TCP_TX_DELAY, "TCP_TX_DELAY", Some(0)),
        ]);
    }
    c
}

/// Refuse options the image can't carry, set away from their defaults.
pub fn refuse_uncarried(fd: BorrowedFd<'_>, v6: bool, tcp: bool) -> Result<()> {
    for (level, name, what, default) in checks(v6, tcp) {
        let Some(default) = default else { continue };
        match get_int(fd, level, name) {
            Ok(v) if v != default => bail!("the socket has {what} {v} (default {default}), which the image has no place for"),
            _ => {}
        }
    }
    if tcp {
        let want = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap_or_default();
        if let Ok(b) = get_bytes(fd, libc::SOL_TCP, libc::TCP_CONGESTION, 16) {
            let cc = String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(&[])).into_owned();
            if !want.trim().is_empty() && cc != want.trim() {
                bail!("the socket has TCP_CONGESTION {cc:?} (default {:?}), which the image has no place for", want.trim());
            }
        }
    }
    Ok(())
}

/// UDP-Lite's checksum coverage (UDPLITE_SEND_CSCOV, UDPLITE_RECV_CSCOV):
/// a socket with a partial coverage is refused.
pub fn refuse_udplite_coverage(fd: BorrowedFd<'_>) -> Result<()> {
    for (name, what) in [(UDPLITE_SEND_CSCOV, "UDPLITE_SEND_CSCOV"), (UDPLITE_RECV_CSCOV, "UDPLITE_RECV_CSCOV")] {
        let v = get_int(fd, libc::IPPROTO_UDPLITE, name).map_err(|e| anyhow::anyhow!("getsockopt({what}): {e}"))?;
        if v != 0 {
            bail!("the socket has {what} {v} (a partial checksum coverage), which the image has no place for (CRIU 4.2 drops it)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};

    use crate::sys::sockopt_raw::{self as raw, set_bytes, set_int};

    /// Each option set away from its default on a fresh socket: the
    /// record is refused, naming it.
    #[test]
    fn each_uncarried_option_is_refused_by_name() {
        let cases: &[(i32, i32, i32, i32, i32, &str)] = &[
            (libc::AF_INET, libc::SOCK_DGRAM, libc::SOL_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE, "IP_MTU_DISCOVER"),
            (libc::AF_INET, libc::SOCK_DGRAM, libc::SOL_IP, libc::IP_RECVERR, 1, "IP_RECVERR"),
            (libc::AF_INET, libc::SOCK_DGRAM, libc::SOL_IP, super::IP_MINTTL, 9, "IP_MINTTL"),
            (libc::AF_INET, libc::SOCK_DGRAM, libc::SOL_IP, super::IP_MULTICAST_ALL, 0, "IP_MULTICAST_ALL"),
            (libc::AF_INET, libc::SOCK_DGRAM, libc::SOL_IP, libc::IP_MULTICAST_TTL, 5, "IP_MULTICAST_TTL"),
            (libc::AF_INET, libc::SOCK_DGRAM, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0, "SO_PEEK_OFF"),
            (libc::AF_INET, libc::SOCK_DGRAM, libc::SOL_SOCKET, libc::SO_MAX_PACING_RATE, 1000, "SO_MAX_PACING_RATE"),
            (libc::AF_INET, libc::SOCK_STREAM, libc::SOL_TCP, libc::TCP_SYNCNT, 2, "TCP_SYNCNT"),
            (libc::AF_INET, libc::SOCK_STREAM, libc::SOL_TCP, libc::TCP_LINGER2, 7, "TCP_LINGER2"),
            (libc::AF_INET, libc::SOCK_STREAM, libc::SOL_TCP, libc::TCP_NOTSENT_LOWAT, 4096, "TCP_NOTSENT_LOWAT"),
            (libc::AF_INET, libc::SOCK_STREAM, libc::SOL_TCP, libc::TCP_USER_TIMEOUT, 500, "TCP_USER_TIMEOUT"),
            (libc::AF_INET6, libc::SOCK_DGRAM, libc::SOL_IPV6, libc::IPV6_TCLASS, 0x20, "IPV6_TCLASS"),
            (libc::AF_INET6, libc::SOCK_DGRAM, libc::SOL_IPV6, libc::IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT"),
            (libc::AF_INET6, libc::SOCK_DGRAM, libc::SOL_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DONT, "IPV6_MTU_DISCOVER"),
            (libc::AF_INET6, libc::SOCK_DGRAM, libc::SOL_IPV6, super::IPV6_DONTFRAG, 1, "IPV6_DONTFRAG"),
            (libc::AF_INET6, libc::SOCK_STREAM, libc::SOL_IP, libc::IP_TOS, 0x10, "IP_TOS"),
        ];
        for &(family, ty, level, name, v, what) in cases {
            let s = raw::socket(family, ty, 0).unwrap();
            let md = std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
            let ino = std::os::unix::fs::MetadataExt::ino(&md) as u32;
            let entry = || super::super::dump::entry(s.as_fd(), ino, 1, 2, &mut Default::default(), false, "sk");
            if let Err(e) = entry() {
                panic!("{what}: a fresh socket is refused: {e:#}");
            }
            set_int(s.as_fd(), level, name, v).unwrap_or_else(|e| panic!("setting {what}: {e}"));
            let err = format!("{:#}", entry().expect_err(what));
            assert!(err.contains(what) && err.contains("sk"), "{err}");
        }
        let s = raw::socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        let other = ["reno", "cubic"].into_iter().find(|c| std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").is_ok_and(|d| d.trim() != *c));
        if let Some(cc) = other.filter(|cc| set_bytes(s.as_fd(), libc::SOL_TCP, libc::TCP_CONGESTION, cc.as_bytes()).is_ok()) {
            let md = std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
            let ino = std::os::unix::fs::MetadataExt::ino(&md) as u32;
            let err = super::super::dump::entry(s.as_fd(), ino, 1, 2, &mut Default::default(), false, "sk").unwrap_err();
            assert!(format!("{err:#}").contains(&format!("TCP_CONGESTION \"{cc}\"")), "{err:#}");
        } else {
            eprintln!("TCP_CONGESTION: no second congestion control here to set");
        }
    }
}
