//! netlink_diag: every netlink socket of our network namespace that is
//! bound or subscribed to a group (its protocol, state, port ids, groups
//! and flags), by inode. Sockets neither bound nor subscribed are not
//! listed by the kernel.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use nix::sys::socket::SockProtocol;

use crate::sockets::netlink::{attrs, DiagRequest, Netlink, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, NLM_F_REQUEST};

const NDIAG_PROTO_ALL: u8 = 0xff;
const NDIAG_SHOW_GROUPS: u32 = 2;
const NDIAG_SHOW_FLAGS: u32 = 8;
const NETLINK_DIAG_GROUPS: u16 = 1;
const NETLINK_DIAG_FLAGS: u16 = 4;
/// A dump the kernel is still producing for the socket (NDIAG_FLAG_CB_RUNNING).
pub const FLAG_CB_RUNNING: u32 = 1;

/// What netlink_diag tells about one socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diag {
    pub ino: u32,
    pub ty: u32,
    pub protocol: u32,
    /// sk_state: 1 connected (NETLINK_CONNECTED), 7 never connected, 0 disconnected.
    pub state: u32,
    pub portid: u32,
    pub dst_portid: u32,
    pub dst_group: u32,
    /// The group bitmap as 32-bit words (bit n of word w: group 32w+n+1),
    /// trailing zero words left out.
    pub groups: Vec<u32>,
    /// NDIAG_FLAG_* bits.
    pub flags: u32,
}

/// Every netlink socket, with its groups and flags (netlink-packet-sock-diag
/// has no netlink_diag: the shared [`DiagRequest`]).
fn request() -> DiagRequest {
    DiagRequest::dump(libc::AF_NETLINK as u8, NDIAG_PROTO_ALL, NDIAG_SHOW_GROUPS | NDIAG_SHOW_FLAGS)
}

fn word(b: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_ne_bytes(b.get(at..at + 4).context("short netlink_diag answer")?.try_into()?))
}

/// One netlink_diag_msg and its attributes.
pub fn parse(p: &[u8]) -> Result<Diag> {
    if p.len() < 28 {
        bail!("short netlink_diag answer ({} bytes)", p.len());
    }
    let mut d = Diag {
        ty: u32::from(p[1]),
        protocol: u32::from(p[2]),
        state: u32::from(p[3]),
        portid: word(p, 4)?,
        dst_portid: word(p, 8)?,
        dst_group: word(p, 12)?,
        ino: word(p, 16)?,
        ..Default::default()
    };
    for (ty, data) in attrs(&p[28..]) {
        match ty {
            NETLINK_DIAG_GROUPS => {
                d.groups = data.chunks_exact(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect();
                while d.groups.last() == Some(&0) {
                    d.groups.pop();
                }
            }
            NETLINK_DIAG_FLAGS => d.flags = word(data, 0)?,
            _ => {}
        }
    }
    Ok(d)
}

/// Every netlink socket of our network namespace the kernel lists, by inode.
pub fn all() -> Result<HashMap<u32, Diag>> {
    let mut nl = Netlink::open(SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let msgs = nl.exchange(request().msg(), NLM_F_REQUEST | NLM_F_DUMP).context("netlink_diag dump")?;
    let mut out = HashMap::new();
    for m in msgs.iter().filter(|m| m.ty == SOCK_DIAG_BY_FAMILY) {
        let d = parse(&m.payload).context("netlink_diag dump")?;
        out.insert(d.ino, d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::netlink::attr;

    #[test]
    fn parses_a_message_and_trims_groups() {
        let mut p = vec![16u8, 3, 0, 7];
        for v in [1234u32, 0, 0, 99, u32::MAX, u32::MAX] {
            p.extend_from_slice(&v.to_ne_bytes());
        }
        let mut g = 5u32.to_ne_bytes().to_vec();
        g.extend_from_slice(&[0; 12]);
        p.extend(attr(NETLINK_DIAG_GROUPS, &g));
        p.extend(attr(NETLINK_DIAG_FLAGS, &FLAG_CB_RUNNING.to_ne_bytes()));
        let d = parse(&p).unwrap();
        assert_eq!((d.ty, d.protocol, d.state, d.portid, d.ino), (3, 0, 7, 1234, 99));
        assert_eq!(d.groups, vec![5]);
        assert_eq!(d.flags, FLAG_CB_RUNNING);
        assert!(parse(&p[..20]).is_err());
    }
}
