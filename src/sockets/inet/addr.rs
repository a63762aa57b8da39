//! Addresses as inet_sk_entry holds them (one word for IPv4, four for
//! IPv6, in network byte order, and the port on its own) to and from
//! socket addresses, and CRIU's rule for which IPv6 addresses need the
//! bound device's index (link-local and scoped multicast).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use anyhow::{bail, Result};

/// (port, address words) of a socket address.
pub fn to_image(a: &SocketAddr) -> (u32, [u32; 4]) {
    match a {
        SocketAddr::V4(v) => (u32::from(v.port()), [u32::from_ne_bytes(v.ip().octets()), 0, 0, 0]),
        SocketAddr::V6(v) => {
            let o = v.ip().octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            (u32::from(v.port()), [w(0), w(4), w(8), w(12)])
        }
    }
}

/// The socket address of `family` for `port` and `words` (`scope`: the
/// interface index an IPv6 link-local address is bound through).
pub fn from_image(family: u32, port: u32, words: &[u32], scope: u32) -> Result<SocketAddr> {
    let port = u16::try_from(port).map_err(|_| anyhow::anyhow!("port {port} out of range"))?;
    match (family as i32, words.len()) {
        (libc::AF_INET, n) if n >= 1 => Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(words[0].to_ne_bytes()), port))),
        (libc::AF_INET6, 4) => {
            let mut o = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            Ok(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(o), port, 0, scope)))
        }
        (f, n) => bail!("an address of family {f} with {n} word(s)"),
    }
}

/// Whether binding to IPv6 address `words` needs an interface (CRIU's
/// needs_scope_id: link-local unicast, node- or link-local multicast).
pub fn needs_scope(words: &[u32; 4]) -> bool {
    let b = words[0].to_ne_bytes();
    let multicast_scoped = b[0] == 0xff && (b[1] & 0x0f == 1 || b[1] & 0x0f == 2);
    let link_local = b[0] == 0xfe && b[1] & 0xc0 == 0x80;
    multicast_scoped || link_local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_both_ways() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let (p, w) = to_image(&a);
        assert_eq!((p, w[0]), (8080, 16777343));
        assert_eq!(from_image(2, p, &w[..1], 0).unwrap(), a);
        let b: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        let (p, w) = to_image(&b);
        assert_eq!(from_image(10, p, &w, 0).unwrap(), b);
        assert!(needs_scope(&to_image(&"[fe80::1]:1".parse().unwrap()).1));
        assert!(!needs_scope(&w));
        assert!(from_image(10, 1, &w[..1], 0).is_err());
    }
}
