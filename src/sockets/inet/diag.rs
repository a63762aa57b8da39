//! inet_diag: what the kernel tells of the hashed inet sockets of one
//! family and protocol (state, addresses and ports, queue lengths,
//! shutdown), asked once per (family, protocol) a dump meets, as CRIU
//! collects them.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::{Context, Result};
use nix::sys::socket::SockProtocol;

use netlink_packet_core::{Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;

use crate::sockets::netlink::Netlink;

/// What inet_diag tells about one socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diag {
    pub ino: u32,
    pub state: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// Addresses as the image holds them: four words in network order
    /// (an IPv4 address in the first).
    pub src: [u32; 4],
    pub dst: [u32; 4],
    /// Receive queue: bytes unread (UDP), connections not accepted yet
    /// (a listener).
    pub rqlen: u32,
    /// Send queue; a listener's backlog.
    pub wqlen: u32,
    /// sk_shutdown bits (1 receive, 2 send).
    pub shutdown: u32,
}

/// An inet_diag message as netlink-packet-sock-diag makes and reads it;
/// a request also carries the raw-protocol byte (struct
/// inet_diag_req_raw's sdiag_raw_protocol, in the place of
/// inet_diag_req_v2's pad), which the crate does not model.
struct InetDiag {
    msg: SockDiagMessage,
    raw: u8,
}

impl NetlinkSerializable for InetDiag {
    fn message_type(&self) -> u16 {
        self.msg.message_type()
    }

    fn buffer_len(&self) -> usize {
        Emitable::buffer_len(&self.msg)
    }

    fn serialize(&self, buffer: &mut [u8]) {
        self.msg.emit(buffer);
        buffer[3] = self.raw;
    }
}

impl NetlinkDeserializable for InetDiag {
    type Error = <SockDiagMessage as NetlinkDeserializable>::Error;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        Ok(InetDiag { msg: SockDiagMessage::deserialize(header, payload)?, raw: 0 })
    }
}

/// The sockets of `family`/`proto` in our network namespace in one of
/// `states` (a bit per TCP state), by inode. Raw sockets are asked for
/// with IPPROTO_RAW and the protocol in the request's raw-protocol byte.
pub fn collect(family: u8, proto: u8, raw: Option<u8>, states: u32) -> Result<HashMap<u32, Diag>> {
    let mut nl = Netlink::open(SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let socket_id = if i32::from(family) == libc::AF_INET6 { SocketId::new_v6() } else { SocketId::new_v4() };
    let msg = SockDiagMessage::InetRequest(InetRequest {
        family,
        protocol: proto,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::from_bits_retain(states),
        socket_id,
    });
    let msgs = nl
        .exchange(InetDiag { msg, raw: raw.unwrap_or(0) }, NLM_F_REQUEST | NLM_F_DUMP)
        .with_context(|| format!("inet_diag of family {family} protocol {proto}"))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m.msg {
            SockDiagMessage::InetResponse(r) => Some(parse(&r)),
            _ => None,
        })
        .map(|d| (d.ino, d))
        .collect())
}

/// The image's four address words (network order) of `a`.
fn words(a: &IpAddr) -> [u32; 4] {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(a) => b[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => b = a.octets(),
    }
    std::array::from_fn(|i| u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]))
}

/// One inet_diag_msg and its attributes.
pub fn parse(r: &InetResponse) -> Diag {
    let h = &r.header;
    let mut d = Diag {
        state: u32::from(h.state),
        src_port: h.socket_id.source_port,
        dst_port: h.socket_id.destination_port,
        src: words(&h.socket_id.source_address),
        dst: words(&h.socket_id.destination_address),
        rqlen: h.recv_queue,
        wqlen: h.send_queue,
        ino: h.inode,
        ..Default::default()
    };
    for nla in &r.nlas {
        if let Nla::Shutdown(s) = nla {
            d.shutdown = u32::from(s & 3);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::os::unix::fs::MetadataExt;

    use netlink_packet_core::Parseable;

    use super::*;
    use crate::sockets::netlink::attr;

    /// An inet_diag_msg: family, state, timer, retrans, ports, addresses,
    /// interface, cookie, expires, rqueue, wqueue, uid, inode; attributes.
    fn reply(family: u8, state: u8, ports: [u16; 2], [src, dst]: [[u8; 16]; 2], q: [u32; 2], ino: u32, attrs: &[Vec<u8>]) -> Diag {
        let mut p = vec![family, state, 0, 0];
        p.extend_from_slice(&ports[0].to_be_bytes());
        p.extend_from_slice(&ports[1].to_be_bytes());
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[0; 12]);
        for v in [0, q[0], q[1], 0, ino] {
            p.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(p.len(), 72);
        attrs.iter().for_each(|a| p.extend_from_slice(a));
        parse(&InetResponse::parse(&p[..]).unwrap())
    }

    #[test]
    fn parses_addresses_as_image_words() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[10, 1, 2, 3]);
        let d = reply(libc::AF_INET as u8, 1, [8080, 40000], [v4, [0; 16]], [5, 6], 42, &[attr(8, &[3]), attr(5, &[0x10])]);
        assert_eq!((d.state, d.src_port, d.dst_port, d.rqlen, d.wqlen, d.ino, d.shutdown), (1, 8080, 40000, 5, 6, 42, 3));
        assert_eq!(d.src, [u32::from_ne_bytes([10, 1, 2, 3]), 0, 0, 0]);
        assert_eq!(d.dst, [0; 4]);
        let six: [u8; 16] = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4).octets();
        let d = reply(libc::AF_INET6 as u8, 10, [22, 0], [six, six], [0, 128], 7, &[]);
        let want: [u32; 4] = std::array::from_fn(|i| u32::from_ne_bytes(six[4 * i..4 * i + 4].try_into().unwrap()));
        assert_eq!((d.src, d.dst, d.shutdown), (want, want, 0));
    }

    #[test]
    fn finds_a_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let ino = std::fs::metadata(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&l))).unwrap().ino() as u32;
        let all = collect(libc::AF_INET as u8, libc::IPPROTO_TCP as u8, None, u32::MAX).unwrap();
        let d = &all[&ino];
        assert_eq!(d.state, 10);
        assert_eq!(d.src_port, port);
        assert_eq!(d.src[0], u32::from_ne_bytes([127, 0, 0, 1]));
        assert_eq!(d.wqlen, 128);
    }

    #[test]
    fn a_raw_request_carries_its_protocol() {
        let msg = SockDiagMessage::InetRequest(InetRequest {
            family: libc::AF_INET as u8,
            protocol: libc::IPPROTO_RAW as u8,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::from_bits_retain(u32::MAX),
            socket_id: SocketId::new_v4(),
        });
        let req = InetDiag { msg, raw: libc::IPPROTO_ICMP as u8 };
        let mut b = vec![0xaa; req.buffer_len()];
        req.serialize(&mut b);
        // struct inet_diag_req_raw: family, protocol, ext, raw protocol, states, id.
        assert_eq!(b.len(), 56);
        assert_eq!(b[..8], [libc::AF_INET as u8, 255, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        assert!(b[8..].iter().all(|&x| x == 0));
    }
}
