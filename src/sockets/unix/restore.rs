//! Restoring the unix sockets of an image, all at once when the first is
//! asked for (they are opened for the whole tree in one process, so peers
//! held by different tasks are made together):
//! - two sockets connected to each other: a socketpair (each end bound
//!   after, if it had a name), but an accepted connection (named after its
//!   listener): connected to the restored listener and accepted from it;
//! - a datagram socket with queued messages: one end of a socketpair cut
//!   from its peer (connect AF_UNSPEC), the other end sending the queue
//!   and closed after; a stream whose peer is closed: the same, the other
//!   end's close shutting it down as it was;
//! - the rest: socket(), bound, listening, connected to its listener (a
//!   connection not accepted yet) or to its datagram peer's address.
//!
//! Queues are refilled, datagram sockets connected and ends shut down
//! once every file is open ([`finish`]).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, sockopt, SockFlag, SockType};

use super::name;
use super::queue::{self, Queued};
use super::{is_dgram, External, Queues, STATE_ESTABLISHED, STATE_LISTEN, USK_EXTERN};
use crate::files::kind::{Images, OpenCx};
use crate::images::pb::{FdinfoEntry, FileEntry, UnixSkEntry};

/// The sockets made, by file id, until their fds are asked for.
#[derive(Default)]
struct Built {
    done: bool,
    fds: HashMap<u32, OwnedFd>,
    /// The other end of a socketpair that refills a socket's queue (file
    /// id -> that end), closed after.
    queuers: HashMap<u32, OwnedFd>,
    /// Sockets connected to each other: refilled and shut down together.
    pairs: Vec<(u32, u32)>,
    /// Datagram sockets to connect to a peer's address once refilled.
    connects: Vec<(u32, u32)>,
    /// Sockets bound to a deleted file: an O_PATH fd of their file.
    ghosts: HashMap<u32, OwnedFd>,
}

impl Built {
    /// The O_PATH fd to connect to socket file `id` through, if its file
    /// was deleted.
    fn ghost(&self, id: u32) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.ghosts.get(&id).map(|f| f.as_fd())
    }
}

fn sock_type(e: &UnixSkEntry) -> Result<SockType> {
    Ok(match e.r#type as i32 {
        libc::SOCK_STREAM => SockType::Stream,
        libc::SOCK_DGRAM => SockType::Datagram,
        libc::SOCK_SEQPACKET => SockType::SeqPacket,
        t => bail!("unix socket {} has type {t}: not supported", e.ino),
    })
}

fn new_socket(e: &UnixSkEntry) -> Result<OwnedFd> {
    socket::socket(socket::AddressFamily::Unix, sock_type(e)?, SockFlag::SOCK_CLOEXEC, None)
        .with_context(|| format!("socket() for unix socket {}", e.ino))
}

fn new_pair(e: &UnixSkEntry) -> Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(socket::AddressFamily::Unix, sock_type(e)?, None, SockFlag::SOCK_CLOEXEC)
        .with_context(|| format!("socketpair for unix socket {}", e.ino))
}

/// The records of the image's unix sockets, by file id, in id (dump) order.
fn records(imgs: &Images) -> Vec<(u32, &UnixSkEntry)> {
    let mut v: Vec<(u32, &UnixSkEntry)> = imgs.values().filter_map(|f| f.usk.as_ref().map(|u| (f.id, u))).collect();
    v.sort_by_key(|(id, _)| *id);
    v
}

fn is_conn(e: &UnixSkEntry) -> bool {
    !is_dgram(e.r#type) && e.state == STATE_ESTABLISHED
}

/// The listener a connected stream socket was accepted from: a listening
/// record of its type with its very name.
fn listener_of<'a>(e: &UnixSkEntry, all: &[(u32, &'a UnixSkEntry)]) -> Option<(u32, &'a UnixSkEntry)> {
    if !is_conn(e) || e.name.is_empty() {
        return None;
    }
    all.iter()
        .find(|(_, l)| l.state == STATE_LISTEN && l.r#type == e.r#type && l.name == e.name && name::full_path(l) == name::full_path(e))
        .copied()
}

/// Make every unix socket of the image.
fn build(cx: &OpenCx) -> Result<Built> {
    let all = records(cx.images);
    let queues = cx.images.state.get::<Queues>();
    let has_queue = |id: u32| queues.and_then(|q| q.0.get(&id)).is_some_and(|m| !m.is_empty());
    let ext = cx.images.state.get::<External>().is_some_and(|x| x.0);
    for (_, e) in &all {
        if e.uflags == USK_EXTERN {
            if !ext {
                bail!("unix socket {} ({}) of the image is outside the dumped tree: restore with --ext-unix-sk to connect to it again", e.ino, name::shown(e));
            }
            if e.name.is_empty() {
                bail!("unix socket {} of the image is outside the dumped tree and has no name to connect to", e.ino);
            }
            continue;
        }
        if e.uflags != 0 {
            bail!("unix socket {} has flags {:#x} (callback, service or inherited socket): not supported", e.ino, e.uflags);
        }
    }
    let mut b = Built::default();
    // Accepted connections: (accepted, client, listener).
    let mut accepts: Vec<(u32, u32, u32)> = Vec::new();
    // Connections not accepted yet: (client, listener).
    let mut icons: Vec<(u32, u32)> = Vec::new();
    // Records standing for sockets outside the tree are not made.
    let all: Vec<(u32, &UnixSkEntry)> = all.into_iter().filter(|(_, e)| e.uflags & USK_EXTERN == 0).collect();
    let all_ext = records(cx.images);
    let by_ino: HashMap<u32, (u32, &UnixSkEntry)> = all_ext.iter().map(|&(id, e)| (e.ino, (id, e))).collect();
    for &(id, e) in &all {
        if b.fds.contains_key(&id) || accepts.iter().any(|&(a, c, _)| a == id || c == id) {
            continue;
        }
        let peer = by_ino.get(&e.peer).copied().filter(|_| e.peer != 0);
        let mutual = peer.filter(|(pid, p)| p.peer == e.ino && *pid != id);
        if e.peer != 0 && peer.is_none() {
            bail!("unix socket {} ({}) is connected to socket {}, which is not in the image", e.ino, name::shown(e), e.peer);
        }
        if let Some((pid, p)) = mutual {
            if let Some((lid, _)) = listener_of(e, &all) {
                accepts.push((id, pid, lid));
            } else if let Some((lid, _)) = listener_of(p, &all) {
                accepts.push((pid, id, lid));
            } else {
                let (x, y) = new_pair(e)?;
                b.fds.insert(id, x);
                b.fds.insert(pid, y);
                b.pairs.push((id, pid));
            }
            continue;
        }
        let fd = if is_dgram(e.r#type) {
            if let Some((pid, _)) = peer {
                b.connects.push((id, pid));
            }
            if has_queue(id) {
                let (x, y) = new_pair(e)?;
                // Cut from its twin, so that others may connect to it; the
                // twin still sends to it.
                crate::sys::sockopt::disconnect(x.as_fd()).with_context(|| format!("connect(AF_UNSPEC) on unix socket {}", e.ino))?;
                b.queuers.insert(id, y);
                x
            } else {
                new_socket(e)?
            }
        } else if is_conn(e) {
            match peer {
                Some((pid, p)) if p.state == STATE_LISTEN => {
                    icons.push((id, pid));
                    new_socket(e)?
                }
                Some((_, p)) => bail!("unix socket {} is connected to socket {} (state {}), which is connected elsewhere", e.ino, p.ino, p.state),
                None => {
                    // Its peer is closed: a twin sends its queue and closes.
                    let (x, y) = new_pair(e)?;
                    b.queuers.insert(id, y);
                    x
                }
            }
        } else {
            new_socket(e)?
        };
        b.fds.insert(id, fd);
    }
    // Names (once the socket files the dumped sockets left are gone),
    // then listeners.
    for &(_, e) in &all {
        if e.deleted != Some(true) {
            name::unlink_stale(e)?;
        }
    }
    for &(id, e) in &all {
        let Some(fd) = b.fds.get(&id).filter(|_| !e.name.is_empty()) else { continue };
        if e.deleted == Some(true) {
            let g = name::bind_ghost(fd.as_fd(), e)?;
            b.ghosts.insert(id, g);
        } else {
            name::bind(fd.as_fd(), e)?;
        }
    }
    for &(id, e) in all.iter().filter(|(_, e)| e.state == STATE_LISTEN) {
        let fd = b.fds.get(&id).with_context(|| format!("listening unix socket {} was not made", e.ino))?;
        let backlog = socket::Backlog::new(e.backlog.min(i32::MAX as u32) as i32).unwrap_or(socket::Backlog::MAXCONN);
        socket::listen(fd, backlog).with_context(|| format!("listen on unix socket {} ({})", e.ino, name::shown(e)))?;
    }
    // Accepted connections first (accept takes the oldest), then those
    // still waiting, in their order.
    for &(acc, client, lid) in &accepts {
        let (ea, ec, el) = (entry(cx.images, acc)?, entry(cx.images, client)?, entry(cx.images, lid)?);
        let c = new_socket(ec)?;
        if !ec.name.is_empty() {
            name::unlink_stale(ec)?;
            name::bind(c.as_fd(), ec)?;
        }
        name::connect(c.as_fd(), ec.ino, el, b.ghost(lid))?;
        let l = b.fds.get(&lid).context("the listener")?;
        let a = crate::sys::fd::accept_cloexec(l.as_fd()).with_context(|| format!("accepting unix socket {} from listener {}", ea.ino, el.ino))?;
        b.fds.insert(acc, a);
        b.fds.insert(client, c);
        b.pairs.push((acc, client));
    }
    for &(id, lid) in &icons {
        let (e, l) = (entry(cx.images, id)?, entry(cx.images, lid)?);
        name::connect(b.fds.get(&id).context("a client")?.as_fd(), e.ino, l, b.ghost(lid))?;
    }
    for &(id, e) in &all {
        if let Some(fd) = b.fds.get(&id) {
            buffers_and_flags(fd, e)?;
        }
    }
    b.done = true;
    Ok(b)
}

fn entry(imgs: &Images, id: u32) -> Result<&UnixSkEntry> {
    imgs.get(&id).and_then(|f| f.usk.as_ref()).with_context(|| format!("unix socket file {id} has no record"))
}

fn buffers_and_flags(fd: &OwnedFd, e: &UnixSkEntry) -> Result<()> {
    let who = format!("unix socket {}", e.ino);
    crate::sockets::opts::restore(fd.as_fd(), &e.opts, &who)?;
    if e.opts.reuseaddr == Some(true) {
        crate::sys::sockopt_raw::set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).with_context(|| format!("setsockopt(SO_REUSEADDR) on {who}"))?;
    }
    let fl = nix::fcntl::OFlag::from_bits_truncate(e.flags as i32 & !libc::O_ACCMODE);
    nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(fl)).with_context(|| format!("F_SETFL on unix socket {}", e.ino))?;
    Ok(())
}

/// The fd for record `fe`: every unix socket is made on the first call,
/// and the files their queues carry are asked for then.
pub fn open(fe: &FileEntry, cx: &mut OpenCx) -> Result<OwnedFd> {
    if !cx.state.get::<Built>().is_some_and(|b| b.done) {
        let b = build(cx)?;
        *cx.state.get_mut::<Built>() = b;
        if let Some(q) = cx.images.state.get::<Queues>() {
            let mut ids: Vec<&u32> = q.0.keys().collect();
            ids.sort();
            for id in ids {
                cx.more.extend(q.0[id].iter().flat_map(|m| m.rights.iter()).map(|&id| FdinfoEntry { id, fd: u32::MAX, ..Default::default() }));
            }
        }
    }
    let b = cx.state.get_mut::<Built>();
    b.fds.remove(&fe.id).with_context(|| format!("unix socket file {} was made twice", fe.id))
}

/// Every file is open: queues refilled (from a twin or the peer), datagram
/// sockets connected, ends shut down, SO_PASSCRED set (after the refill,
/// which would have taken our credentials).
pub fn finish(cx: &mut OpenCx) -> Result<()> {
    if !cx.state.get::<Built>().is_some_and(|b| b.done) {
        return Ok(());
    }
    let b = std::mem::take(cx.state.get_mut::<Built>());
    let (fds, queuers, ghosts) = (b.fds, b.queuers, b.ghosts);
    let none = Vec::new();
    let queues = cx.images.state.get::<Queues>();
    let queued = |id: u32| -> &Vec<Queued> { queues.and_then(|q| q.0.get(&id)).unwrap_or(&none) };
    let fd_of = |id: u32| -> Result<i32> {
        cx.opened.get(&id).or_else(|| fds.get(&id)).map(|f| f.as_raw_fd()).with_context(|| format!("file {id} was not opened"))
    };
    let borrowed = |id: u32| cx.opened.get(&id).or_else(|| fds.get(&id)).map(|f| f.as_fd());
    let mut ids: Vec<u32> = queuers.keys().copied().collect();
    ids.sort();
    for id in ids {
        let e = entry(cx.images, id)?;
        queue::send_all(queuers[&id].as_fd(), e.ino, queued(id), &fd_of)?;
    }
    drop(queuers);
    for &(id, pid) in &b.connects {
        let fd = borrowed(id).with_context(|| format!("unix socket file {id} was not opened"))?;
        name::connect(fd, entry(cx.images, id)?.ino, entry(cx.images, pid)?, ghosts.get(&pid).map(|g| g.as_fd()))?;
    }
    let mut paired = Vec::new();
    for &(x, y) in &b.pairs {
        let (ex, ey) = (entry(cx.images, x)?, entry(cx.images, y)?);
        let (Some(fx), Some(fy)) = (borrowed(x), borrowed(y)) else { bail!("unix sockets {} and {} were not opened", ex.ino, ey.ino) };
        queue::refill_and_shut([(fx, ex, queued(x)), (fy, ey, queued(y))], &fd_of)?;
        paired.extend([x, y]);
    }
    for (id, e) in records(cx.images) {
        let Some(fd) = borrowed(id) else { continue };
        if !paired.contains(&id) && e.state != STATE_LISTEN {
            queue::shut(fd, e)?;
        }
        if e.opts.so_passcred == Some(true) {
            socket::setsockopt(&fd, sockopt::PassCred, &true).with_context(|| format!("SO_PASSCRED on unix socket {}", e.ino))?;
        }
    }
    Ok(())
}
