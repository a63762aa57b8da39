//! ICMP "ping" sockets (SOCK_DGRAM with IPPROTO_ICMP or IPPROTO_ICMPV6):
//! no sock_diag module answers for them, so their peer when connected
//! to port 0 (which getpeername hides) comes from /proc/net/icmp(6), and
//! making one again needs net.ipv4.ping_group_range to hold the
//! restoring process's group: when it doesn't, the restore says so.
//! Their ident is the port they are bound to (the record's src_port).

use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};

use super::diag::Diag;
use super::dump::TCP_ESTABLISHED;
use crate::sys::sockopt_raw as raw;

const RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// One line of /proc/net/icmp(6): (inode, state, remote address words, remote port).
fn parse_line(l: &str) -> Option<(u32, u32, [u32; 4], u16)> {
    let f: Vec<&str> = l.split_whitespace().collect();
    let (rem, st, ino) = (f.get(2)?, f.get(3)?, f.get(9)?);
    let (addr, port) = rem.split_once(':')?;
    let mut w = [0u32; 4];
    if addr.len() != 8 && addr.len() != 32 {
        return None;
    }
    for (i, c) in addr.as_bytes().chunks(8).enumerate() {
        w[i] = u32::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok()?;
    }
    Some((ino.parse().ok()?, u32::from_str_radix(st, 16).ok()?, w, u16::from_str_radix(port, 16).ok()?))
}

/// A ping socket connected to port 0 (getpeername says ENOTCONN): its
/// state and peer as the kernel's table of hashed ping sockets shows them.
pub fn peer(d: &mut Diag, v6: bool) -> Result<()> {
    if d.state == TCP_ESTABLISHED {
        return Ok(());
    }
    let path = format!("/proc/thread-self/net/{}", if v6 { "icmp6" } else { "icmp" });
    let table = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    if let Some((_, st, w, port)) = table.lines().skip(1).filter_map(parse_line).find(|l| l.0 == d.ino && l.1 == TCP_ESTABLISHED) {
        (d.state, d.dst, d.dst_port) = (st, w, port);
    }
    Ok(())
}

/// A new ping socket of `family`/`proto` for `who`; a refusal by
/// ping_group_range is named with the range and our groups.
pub fn socket(family: i32, proto: i32, who: &str) -> Result<OwnedFd> {
    match raw::socket(family, libc::SOCK_DGRAM, proto) {
        Ok(s) => Ok(s),
        Err(nix::errno::Errno::EACCES) => {
            let range = std::fs::read_to_string(RANGE).unwrap_or_default();
            let groups = nix::unistd::getgroups().map(|g| g.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(",")).unwrap_or_default();
            bail!(
                "{who} is a ping socket, which the kernel lets only groups in net.ipv4.ping_group_range make: the range is {:?}, we are gid {} (groups [{groups}]); widen it (sysctl net.ipv4.ping_group_range) to restore",
                range.trim(),
                nix::unistd::getegid()
            )
        }
        Err(e) => Err(e).with_context(|| format!("socket({family}, SOCK_DGRAM, {proto}) for {who}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn icmp_table_lines() {
        let l = "   56: 0100007F:C757 0100007F:0000 01 00000000:00000000 00:00000000 00000000     0        0 22557867 2 0000 0";
        assert_eq!(super::parse_line(l), Some((22557867, 1, [0x0100007f, 0, 0, 0], 0)));
        let l6 = "  1: 00000000000000000000000001000000:0309 00000000000000000000000001000000:0000 01 00000000:00000000 00:00000000 00000000 0 0 77 2 0 0";
        assert_eq!(super::parse_line(l6), Some((77, 1, [0, 0, 0, 0x01000000], 0)));
        assert_eq!(super::parse_line("  sl  local_address rem_address   st tx_queue"), None);
    }
}
