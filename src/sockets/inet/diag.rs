//! inet_diag: what the kernel tells of the hashed inet sockets of one
//! family and protocol (state, addresses and ports, queue lengths,
//! shutdown), asked once per (family, protocol) a dump meets, as CRIU
//! collects them.

use std::collections::HashMap;

use anyhow::{Context, Result};
use nix::sys::socket::SockProtocol;

use crate::sockets::netlink::{attrs, Netlink, NLM_F_DUMP, NLM_F_REQUEST};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_SHUTDOWN: u16 = 8;
/// The size of struct inet_diag_msg before its attributes.
const MSG_LEN: usize = 72;

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

/// The sockets of `family`/`proto` in our network namespace in one of
/// `states` (a bit per TCP state), by inode. Raw sockets are asked for
/// with IPPROTO_RAW and the protocol in the request's raw-protocol byte.
pub fn collect(family: u8, proto: u8, raw: Option<u8>, states: u32) -> Result<HashMap<u32, Diag>> {
    let mut nl = Netlink::open(SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let mut req = Vec::with_capacity(56);
    req.push(family);
    req.push(proto);
    req.push(0); // no extensions
    req.push(raw.unwrap_or(0));
    req.extend_from_slice(&states.to_ne_bytes());
    req.extend_from_slice(&[0u8; 48]); // no socket id: all of them
    let msgs = nl
        .request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &req)
        .with_context(|| format!("inet_diag of family {family} protocol {proto}"))?;
    let mut out = HashMap::new();
    for m in msgs.iter().filter(|m| m.ty == SOCK_DIAG_BY_FAMILY) {
        if let Some(d) = parse(&m.payload) {
            out.insert(d.ino, d);
        }
    }
    Ok(out)
}

fn word(p: &[u8], at: usize) -> u32 {
    p.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes).unwrap_or(0)
}

/// One inet_diag_msg and its attributes.
pub fn parse(p: &[u8]) -> Option<Diag> {
    if p.len() < MSG_LEN {
        return None;
    }
    let addr = |at: usize| [word(p, at), word(p, at + 4), word(p, at + 8), word(p, at + 12)];
    let mut d = Diag {
        state: u32::from(p[1]),
        src_port: u16::from_be_bytes([p[4], p[5]]),
        dst_port: u16::from_be_bytes([p[6], p[7]]),
        src: addr(8),
        dst: addr(24),
        rqlen: word(p, 56),
        wqlen: word(p, 60),
        ino: word(p, 68),
        ..Default::default()
    };
    for (ty, data) in attrs(&p[MSG_LEN..]) {
        if ty == INET_DIAG_SHUTDOWN && !data.is_empty() {
            d.shutdown = u32::from(data[0] & 3);
        }
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn finds_a_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let ino = std::fs::metadata(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&l))).unwrap().ino() as u32;
        let all = super::collect(libc::AF_INET as u8, libc::IPPROTO_TCP as u8, None, u32::MAX).unwrap();
        let d = &all[&ino];
        assert_eq!(d.state, 10);
        assert_eq!(d.src_port, port);
        assert_eq!(d.src[0], u32::from_ne_bytes([127, 0, 0, 1]));
        assert_eq!(d.wqlen, 128);
    }
}
