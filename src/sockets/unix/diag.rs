//! unix_diag: what the kernel tells of a unix socket (type, state, name,
//! its inode on disk, peer, pending connections, queue lengths, shutdown),
//! for one socket or every socket of our network namespace at once.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use nix::sys::socket;

use netlink_packet_core::{Emitable, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_sock_diag::unix::nlas::{Nla, UnixDiagName};
use netlink_packet_sock_diag::unix::{ShowFlags, StateFlags, UnixRequest, UnixResponse};
use netlink_packet_sock_diag::SockDiagMessage;

use crate::images::pb::{FownEntry, SkOptsEntry, UnixSkEntry};
use crate::sockets::netlink::Netlink;

/// TCP_ESTABLISHED, as unix_diag reports a connected socket.
pub const STATE_ESTABLISHED: u32 = 1;
/// TCP_CLOSE: an unconnected socket.
pub const STATE_CLOSE: u32 = 7;
/// TCP_LISTEN.
pub const STATE_LISTEN: u32 = 10;

/// What unix_diag tells about one socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diag {
    pub ino: u32,
    pub ty: u32,
    pub state: u32,
    /// The address (sun_path bytes as bound: a path with its NUL, or an
    /// abstract name starting with a NUL byte).
    pub name: Vec<u8>,
    /// (inode, device) of the socket's file, for a path name.
    pub vfs: Option<(u32, u32)>,
    pub peer: u32,
    /// A listening socket's connections not accepted yet: the inodes of
    /// their clients (0: a client closed since), oldest first.
    pub icons: Vec<u32>,
    pub rqlen: u32,
    /// Bytes of the socket's send buffer in use (its unsent or unread
    /// messages), which CRIU records as `backlog`.
    pub wqlen: u32,
    /// The kernel's sk_shutdown bits (1 receive, 2 send), as
    /// unix_sk_entry.shutdown encodes them (SK_SHUTDOWN: 1 READ, 2 WRITE,
    /// 3 BOTH).
    pub shutdown: u32,
}

/// The request for socket `ino` (0: every socket), every state, with
/// name, file, peer, pending connections and queue lengths.
fn request(ino: u32) -> SockDiagMessage {
    SockDiagMessage::UnixRequest(UnixRequest {
        state_flags: StateFlags::from_bits_retain(u32::MAX),
        inode: ino,
        show_flags: ShowFlags::NAME | ShowFlags::VFS | ShowFlags::PEER | ShowFlags::ICONS | ShowFlags::RQLEN,
        cookie: [0xff; 8],
    })
}

fn parse(r: &UnixResponse) -> Diag {
    let mut d = Diag { ino: r.header.inode, ty: u32::from(r.header.kind), state: u32::from(r.header.state), ..Default::default() };
    for nla in &r.nlas {
        match nla {
            Nla::Name(UnixDiagName::Pathname(p)) => {
                d.name = p.as_bytes().to_vec();
                d.name.push(0);
            }
            Nla::Name(UnixDiagName::Abstract(a)) => {
                d.name = Vec::with_capacity(a.len() + 1);
                d.name.push(0);
                d.name.extend_from_slice(a);
            }
            Nla::Vfs(v) => {
                // The crate keeps the fields private: read them back from
                // its encoding (struct unix_diag_vfs: inode, device).
                let mut b = [0u8; 8];
                v.emit(&mut b);
                d.vfs = Some((u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), u32::from_ne_bytes([b[4], b[5], b[6], b[7]])));
            }
            Nla::Peer(p) => d.peer = *p,
            Nla::PendingConnections(c) => d.icons = c.clone(),
            Nla::ReceiveQueueLength(r, w) => (d.rqlen, d.wqlen) = (*r, *w),
            Nla::Shutdown(s) => d.shutdown = u32::from(s & 3),
            _ => {}
        }
    }
    d
}

fn unix_replies(msgs: Vec<SockDiagMessage>) -> impl Iterator<Item = Diag> {
    msgs.into_iter().filter_map(|m| match m {
        SockDiagMessage::UnixResponse(r) => Some(parse(&r)),
        _ => None,
    })
}

/// Ask the kernel about unix socket `ino` (in our network namespace).
pub fn diag(ino: u32) -> Result<Diag> {
    let mut nl = Netlink::open(socket::SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let msgs = nl.exchange(request(ino), NLM_F_REQUEST).with_context(|| format!("unix_diag for socket {ino}"))?;
    unix_replies(msgs).next().with_context(|| format!("no unix_diag answer for socket {ino}"))
}

/// Every unix socket of our network namespace, by inode (the peers and
/// listeners a dumped socket names may be held by no task of the tree).
pub fn all() -> Result<HashMap<u32, Diag>> {
    let mut nl = Netlink::open(socket::SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let msgs = nl.exchange(request(0), NLM_F_REQUEST | NLM_F_DUMP).context("unix_diag dump")?;
    Ok(unix_replies(msgs).map(|d| (d.ino, d)).collect())
}

/// The generic options as every socket kind records them
/// ([`crate::sockets::opts`]: set ones the record has no place for are
/// refused); CRIU 4.2's unix records always carry SO_PASSCRED and
/// SO_PASSSEC, also when off.
fn opts(fd: BorrowedFd<'_>) -> Result<SkOptsEntry> {
    let mut o = crate::sockets::opts::dump(fd)?;
    o.so_passcred = Some(o.so_passcred.unwrap_or(false));
    o.so_passsec = Some(o.so_passsec.unwrap_or(false));
    Ok(o)
}

/// The record of socket `d` (`fd` being our copy of it), connected to
/// `peer` (its peer as the dump resolved it: the listener for a
/// connection not accepted yet), its path name resolved as `named`.
pub fn entry(id: u32, d: &Diag, peer: u32, file_flags: u32, fd: BorrowedFd<'_>, named: super::name::Resolved) -> Result<UnixSkEntry> {
    Ok(UnixSkEntry {
        id,
        ino: d.ino,
        r#type: d.ty,
        state: d.state,
        flags: file_flags,
        uflags: 0,
        backlog: d.wqlen,
        peer,
        fown: FownEntry::default(),
        opts: opts(fd)?,
        name: d.name.clone(),
        shutdown: (d.shutdown != 0).then_some(d.shutdown as i32),
        file_perms: named.perms,
        name_dir: named.name_dir,
        deleted: named.deleted.then_some(true),
        ns_id: Some(crate::ns::sock_net_ns_id()),
        mnt_id: None,
    })
}

/// The record standing for socket `d`, which no dumped task holds, as
/// CRIU writes it for --ext-unix-sk: a listening datagram socket with its
/// name, flagged USK_EXTERN, its options left zero.
pub fn external(id: u32, d: &Diag) -> UnixSkEntry {
    UnixSkEntry {
        id,
        ino: d.ino,
        r#type: libc::SOCK_DGRAM as u32,
        state: STATE_LISTEN,
        uflags: super::USK_EXTERN,
        name: d.name.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::{UnixListener, UnixStream};

    use netlink_packet_core::Parseable;

    use super::*;
    use crate::sockets::netlink::attr;

    fn ino_of(fd: &impl AsRawFd) -> u32 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap().ino() as u32
    }

    /// A unix_diag_msg (family, type, state, pad, inode, cookie) and attributes.
    fn reply(ty: u8, state: u8, ino: u32, attrs: &[Vec<u8>]) -> UnixResponse {
        let mut p = vec![libc::AF_UNIX as u8, ty, state, 0];
        p.extend_from_slice(&ino.to_ne_bytes());
        p.extend_from_slice(&[0xff; 8]);
        attrs.iter().for_each(|a| p.extend_from_slice(a));
        UnixResponse::parse(&p[..]).unwrap()
    }

    #[test]
    fn parses_every_attribute_the_dump_reads() {
        let w = |v: &[u32]| v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
        let r = reply(
            1,
            10,
            77,
            &[
                attr(0, b"/tmp/sock\0"),
                attr(1, &w(&[5, 9])),
                attr(2, &w(&[78])),
                attr(3, &w(&[80, 0, 81])),
                attr(4, &w(&[3, 128])),
                attr(6, &[2]),
            ],
        );
        let d = parse(&r);
        assert_eq!((d.ino, d.ty, d.state), (77, 1, 10));
        assert_eq!(d.name, b"/tmp/sock\0");
        assert_eq!(d.vfs, Some((5, 9)));
        assert_eq!(d.peer, 78);
        assert_eq!(d.icons, vec![80, 0, 81]);
        assert_eq!((d.rqlen, d.wqlen, d.shutdown), (3, 128, 2));
        // An abstract name keeps its leading NUL; no attributes, no values.
        let d = parse(&reply(2, 7, 5, &[attr(0, b"\0abs\0x")]));
        assert_eq!(d.name, b"\0abs\0x");
        assert_eq!((d.vfs, d.peer, d.rqlen, d.shutdown), (None, 0, 0, 0));
        assert!(parse(&reply(2, 7, 5, &[])).name.is_empty());
    }

    #[test]
    fn asks_the_kernel_for_one_and_for_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let l = UnixListener::bind(&path).unwrap();
        let c = UnixStream::connect(&path).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        b.shutdown(std::net::Shutdown::Write).unwrap();
        let d = diag(ino_of(&l)).unwrap();
        let mut name = path.as_os_str().as_bytes().to_vec();
        name.push(0);
        assert_eq!((d.state, d.name), (STATE_LISTEN, name));
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(d.vfs.map(|v| v.0), Some(md.ino() as u32));
        assert_eq!(d.icons, vec![ino_of(&c)]);
        let all = all().unwrap();
        assert_eq!(all[&ino_of(&a)].peer, ino_of(&b));
        assert_eq!(all[&ino_of(&b)].shutdown, 2);
        assert_eq!(all[&ino_of(&a)].ty, libc::SOCK_STREAM as u32);
    }
}
