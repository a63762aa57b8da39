//! Segments "from the peer" that a restore hands a connection in repair
//! mode, as CRIU 4.2's libsoccr does: the peer's FIN (CLOSE_WAIT,
//! LAST_ACK, CLOSING) and the peer's ACK of our FIN (FIN_WAIT2). Each is
//! one bare TCP header (no options, no data) in an IP packet written on a
//! raw socket, marked with the network lock's repair mark so the lock
//! lets it through; the kernel delivers it to the restored socket.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;

use anyhow::{Context, Result};

use crate::sys::sockopt_raw::{self as raw, set_int};

/// TCP header flags.
pub const TH_FIN: u8 = 0x01;
pub const TH_ACK: u8 = 0x10;
/// The network lock's mark for criu's own packets (0xC114).
const REPAIR_MARK: i32 = 0xC114;

/// A segment from `from` (the peer) to `to` (the restored socket).
pub struct Segment {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

/// An IPv4-mapped IPv6 address as the IPv4 one (the packet goes as IPv4).
fn plain(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// The one's complement sum of `data` as 16-bit big-endian words, folded.
fn csum(mut sum: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The packet (IP header and TCP header) of `s`, and where it goes.
pub fn packet(s: &Segment) -> (Vec<u8>, SocketAddr) {
    let (src, dst) = (plain(s.from.ip()), plain(s.to.ip()));
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&s.from.port().to_be_bytes());
    tcp.extend_from_slice(&s.to.port().to_be_bytes());
    tcp.extend_from_slice(&s.seq.to_be_bytes());
    tcp.extend_from_slice(&s.ack.to_be_bytes());
    tcp.push(5 << 4);
    tcp.push(s.flags);
    tcp.extend_from_slice(&s.window.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    let mut pseudo = Vec::new();
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            pseudo.extend_from_slice(&a.octets());
            pseudo.extend_from_slice(&b.octets());
            pseudo.extend_from_slice(&[0, libc::IPPROTO_TCP as u8, 0, 20]);
        }
        (a, b) => {
            let six = |x: IpAddr| match x {
                IpAddr::V6(v) => v.octets(),
                IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            };
            pseudo.extend_from_slice(&six(a));
            pseudo.extend_from_slice(&six(b));
            pseudo.extend_from_slice(&[0, 0, 0, 20, 0, 0, 0, libc::IPPROTO_TCP as u8]);
        }
    }
    let sum = !(csum(csum(0, &pseudo), &tcp) as u16);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut ip = Vec::with_capacity(60);
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            // Version/IHL, TOS, total length, id, fragment, TTL, protocol,
            // checksum (the kernel fills it in), addresses.
            ip.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, libc::IPPROTO_TCP as u8, 0, 0]);
            ip.extend_from_slice(&a.octets());
            ip.extend_from_slice(&b.octets());
            let sum = !(csum(0, &ip) as u16);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (a, b) => {
            let six = |x: IpAddr| match x {
                IpAddr::V6(v) => v.octets(),
                IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            };
            // Version, traffic class, flow label; payload length, next
            // header, hop limit; addresses.
            ip.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, libc::IPPROTO_TCP as u8, 64]);
            ip.extend_from_slice(&six(a));
            ip.extend_from_slice(&six(b));
        }
    }
    ip.extend_from_slice(&tcp);
    let to = match dst {
        IpAddr::V4(b) => SocketAddr::new(IpAddr::V4(b), 0),
        b => SocketAddr::new(b, 0),
    };
    (ip, to)
}

/// Send segment `s` (for socket `who`) through a raw socket carrying the
/// repair mark.
pub fn send(s: &Segment, who: &str) -> Result<()> {
    let (pkt, to) = packet(s);
    let family = if to.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let sk = raw::socket(family, libc::SOCK_RAW, libc::IPPROTO_RAW).with_context(|| format!("a raw socket for the peer's segment to {who}"))?;
    set_int(sk.as_fd(), libc::SOL_SOCKET, libc::SO_MARK, REPAIR_MARK).with_context(|| format!("SO_MARK on the raw socket for {who}"))?;
    let n = raw::send_to(sk.as_fd(), &pkt, &to).with_context(|| format!("sending the peer's segment (flags {:#x}) to {who}", s.flags))?;
    if n != pkt.len() {
        anyhow::bail!("{who}: the peer's segment went out with {n} of {} bytes", pkt.len());
    }
    Ok(())
}
