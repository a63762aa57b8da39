//! unix_diag: what the kernel tells of a unix socket (type, state, name,
//! its inode on disk, peer, pending connections, queue lengths, shutdown),
//! for one socket or every socket of our network namespace at once.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;

use anyhow::{bail, Context, Result};
use nix::sys::socket;

use crate::images::pb::{FownEntry, SkOptsEntry, UnixSkEntry};
use crate::sockets::netlink::{attrs, Netlink, NLM_F_DUMP, NLM_F_REQUEST};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_NAME: u32 = 1;
const UDIAG_SHOW_VFS: u32 = 2;
const UDIAG_SHOW_PEER: u32 = 4;
const UDIAG_SHOW_ICONS: u32 = 8;
const UDIAG_SHOW_RQLEN: u32 = 16;
const SHOW_ALL: u32 = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;
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
    /// (device, inode) of the socket's file, for a path name.
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

fn request(ino: u32) -> Vec<u8> {
    let mut req = Vec::with_capacity(24);
    req.push(libc::AF_UNIX as u8);
    req.push(0);
    req.extend_from_slice(&0u16.to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // all states
    req.extend_from_slice(&ino.to_ne_bytes());
    req.extend_from_slice(&SHOW_ALL.to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // no cookie
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    req
}

fn parse(p: &[u8]) -> Result<Diag> {
    if p.len() < 16 {
        bail!("short unix_diag answer");
    }
    let mut d = Diag { ino: u32::from_ne_bytes(p[4..8].try_into()?), ty: u32::from(p[1]), state: u32::from(p[2]), ..Default::default() };
    for (ty, data) in attrs(&p[16..]) {
        match ty {
            UNIX_DIAG_NAME => d.name = data.to_vec(),
            UNIX_DIAG_VFS if data.len() >= 8 => {
                d.vfs = Some((u32::from_ne_bytes(data[..4].try_into()?), u32::from_ne_bytes(data[4..8].try_into()?)))
            }
            UNIX_DIAG_PEER if data.len() >= 4 => d.peer = u32::from_ne_bytes(data[..4].try_into()?),
            UNIX_DIAG_ICONS => d.icons = data.chunks_exact(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect(),
            UNIX_DIAG_RQLEN if data.len() >= 8 => {
                d.rqlen = u32::from_ne_bytes(data[..4].try_into()?);
                d.wqlen = u32::from_ne_bytes(data[4..8].try_into()?);
            }
            UNIX_DIAG_SHUTDOWN if !data.is_empty() => d.shutdown = u32::from(data[0] & 3),
            _ => {}
        }
    }
    Ok(d)
}

/// Ask the kernel about unix socket `ino` (in our network namespace).
pub fn diag(ino: u32) -> Result<Diag> {
    let mut nl = Netlink::open(socket::SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let msgs = nl.request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &request(ino)).with_context(|| format!("unix_diag for socket {ino}"))?;
    let m = msgs.iter().find(|m| m.ty == SOCK_DIAG_BY_FAMILY).with_context(|| format!("no unix_diag answer for socket {ino}"))?;
    parse(&m.payload).with_context(|| format!("unix_diag for socket {ino}"))
}

/// Every unix socket of our network namespace, by inode (the peers and
/// listeners a dumped socket names may be held by no task of the tree).
pub fn all() -> Result<HashMap<u32, Diag>> {
    let mut nl = Netlink::open(socket::SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let msgs = nl.request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &request(0)).context("unix_diag dump")?;
    let mut out = HashMap::new();
    for m in msgs.iter().filter(|m| m.ty == SOCK_DIAG_BY_FAMILY) {
        let d = parse(&m.payload).context("unix_diag dump")?;
        out.insert(d.ino, d);
    }
    Ok(out)
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
