//! Multicast group memberships (IP_ADD_MEMBERSHIP, MCAST_JOIN_GROUP and
//! their IPv6 twins): inet_sk_entry has no place for them (CRIU 4.2 drops
//! them) and no option lists a socket's groups. So the dump asks, for
//! each group an interface of the namespace has joined (/proc/net/igmp,
//! /proc/net/igmp6), whether the socket is a member (MCAST_MSFILTER
//! answers for a member only), and refuses a member by name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::BorrowedFd;

use anyhow::{bail, Result};

use crate::sys::sockopt_raw as raw;

const MCAST_MSFILTER: i32 = 48;
/// struct group_filter up to its source list: interface, 4 bytes of
/// padding, the group's sockaddr_storage, mode and source count.
const FILTER_HEAD: usize = 144;

/// (interface index, group) of /proc/net/igmp: a device line ("IDX\tNAME
/// : ..."), then its groups on lines of their own (hex, as a native u32).
fn igmp(text: &str) -> Vec<(u32, IpAddr)> {
    let mut out = Vec::new();
    let mut dev = None;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if !l.starts_with('\t') {
            dev = f.first().and_then(|i| i.parse::<u32>().ok());
        } else if let (Some(d), Some(g)) = (dev, f.first().and_then(|g| u32::from_str_radix(g, 16).ok())) {
            out.push((d, IpAddr::V4(Ipv4Addr::from(g.to_ne_bytes()))));
        }
    }
    out
}

/// (interface index, group) of /proc/net/igmp6: "IDX NAME GROUP USERS ...".
fn igmp6(text: &str) -> Vec<(u32, IpAddr)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let g = u128::from_str_radix(f.get(2)?, 16).ok()?;
            Some((f.first()?.parse().ok()?, IpAddr::V6(Ipv6Addr::from(g))))
        })
        .collect()
}

/// Whether socket `fd` is a member of `group` on interface `ifindex`.
fn member(fd: BorrowedFd<'_>, ifindex: u32, group: &IpAddr) -> bool {
    let mut b = vec![0u8; FILTER_HEAD + 128];
    b[..4].copy_from_slice(&ifindex.to_ne_bytes());
    let level = match group {
        IpAddr::V4(a) => {
            b[8..10].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[12..16].copy_from_slice(&a.octets());
            libc::SOL_IP
        }
        IpAddr::V6(a) => {
            b[8..10].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[16..32].copy_from_slice(&a.octets());
            libc::SOL_IPV6
        }
    };
    raw::get_inout(fd, level, MCAST_MSFILTER, b).is_ok()
}

/// Refuse a datagram or raw socket that is a member of a multicast group
/// (TCP sockets can't join one).
pub fn refuse_memberships(fd: BorrowedFd<'_>, v6: bool, tcp: bool) -> Result<()> {
    if tcp {
        return Ok(());
    }
    let read = |f: &str| std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap_or_default();
    let mut groups = igmp(&read("igmp"));
    if v6 {
        groups.extend(igmp6(&read("igmp6")));
    }
    for (ifindex, g) in groups {
        if member(fd, ifindex, &g) {
            bail!("the socket is a member of multicast group {g} on interface {ifindex}: the image has no place for memberships (CRIU 4.2 drops them)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};

    use super::*;

    #[test]
    fn group_tables() {
        let t = "Idx\tDevice    :   Count Querier\tGroup    Users Timer\tReporter\n1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n2\teth0      :     2      V3\n\t\t\t\tFB0000E0     1 0:00000000\t\t0\n";
        assert_eq!(igmp(t), vec![(1, "224.0.0.1".parse().unwrap()), (2, "224.0.0.251".parse().unwrap())]);
        let t6 = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n";
        assert_eq!(igmp6(t6), vec![(1, "ff02::1".parse().unwrap())]);
    }

    #[test]
    fn a_member_is_refused_by_name() {
        let s = raw::socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        let md = std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
        let ino = std::os::unix::fs::MetadataExt::ino(&md) as u32;
        let entry = || super::super::dump::entry(s.as_fd(), ino, 1, 2, &mut Default::default(), false, "mc");
        assert!(entry().is_ok());
        // ip_mreqn: group 239.1.2.3, any local address, interface 1 (lo).
        let mut m = vec![239, 1, 2, 3, 0, 0, 0, 0];
        m.extend_from_slice(&1i32.to_ne_bytes());
        if let Err(e) = raw::set_bytes(s.as_fd(), libc::SOL_IP, libc::IP_ADD_MEMBERSHIP, &m) {
            eprintln!("skipped: can't join a group on lo ({e})");
            return;
        }
        let err = format!("{:#}", entry().unwrap_err());
        assert!(err.contains("mc") && err.contains("multicast group 239.1.2.3 on interface 1"), "{err}");
        raw::set_bytes(s.as_fd(), libc::SOL_IP, libc::IP_DROP_MEMBERSHIP, &m).unwrap();
        assert!(entry().is_ok());

        // IPv6: ipv6_mreq for ff05::1:3 on interface 1.
        let s6 = raw::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0).unwrap();
        let md = std::fs::metadata(format!("/proc/self/fd/{}", s6.as_raw_fd())).unwrap();
        let ino = std::os::unix::fs::MetadataExt::ino(&md) as u32;
        let g: std::net::Ipv6Addr = "ff05::1:3".parse().unwrap();
        let mut m6 = g.octets().to_vec();
        m6.extend_from_slice(&1i32.to_ne_bytes());
        if let Err(e) = raw::set_bytes(s6.as_fd(), libc::SOL_IPV6, libc::IPV6_ADD_MEMBERSHIP, &m6) {
            eprintln!("skipped IPv6: can't join a group on lo ({e})");
            return;
        }
        let err = super::super::dump::entry(s6.as_fd(), ino, 1, 2, &mut Default::default(), false, "mc6").unwrap_err();
        assert!(format!("{err:#}").contains("multicast group ff05::1:3 on interface 1"), "{err:#}");
    }
}
