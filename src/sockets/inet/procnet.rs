//! The kernel's tables of datagram sockets sock_diag does not answer for
//! (/proc/net/icmp, icmp6 for ping sockets; raw, raw6 for raw sockets
//! without the raw_diag module): the state and peer of one socket by
//! inode. A socket connected to port 0 (the only port a raw socket has,
//! the usual one of a ping socket) is connected for the kernel although
//! getpeername says ENOTCONN; only these tables tell.

use anyhow::{Context, Result};

use super::diag::Diag;
use super::dump::TCP_ESTABLISHED;

/// One line of such a table: (inode, state, remote address words, remote port).
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

/// Socket `d` (read like an unhashed one) connected after all: its state
/// and peer from /proc/net/`table` of our network namespace.
pub fn peer(d: &mut Diag, table: &str) -> Result<()> {
    if d.state == TCP_ESTABLISHED {
        return Ok(());
    }
    let path = format!("/proc/thread-self/net/{table}");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    if let Some((_, st, w, port)) = text.lines().skip(1).filter_map(parse_line).find(|l| l.0 == d.ino && l.1 == TCP_ESTABLISHED) {
        (d.state, d.dst, d.dst_port) = (st, w, port);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_lines() {
        let l = "   56: 0100007F:C757 0100007F:0000 01 00000000:00000000 00:00000000 00000000     0        0 22557867 2 0000 0";
        assert_eq!(super::parse_line(l), Some((22557867, 1, [0x0100007f, 0, 0, 0], 0)));
        let l6 = "  1: 00000000000000000000000001000000:0309 00000000000000000000000001000000:0000 01 00000000:00000000 00:00000000 00000000 0 0 77 2 0 0";
        assert_eq!(super::parse_line(l6), Some((77, 1, [0, 0, 0, 0x01000000], 0)));
        assert_eq!(super::parse_line("  sl  local_address rem_address   st tx_queue"), None);
    }
}
