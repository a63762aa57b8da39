//! Unix sockets of every shape but those held by a task outside the tree
//! or with credentials in their queues (bound to a deleted or replaced
//! file too: ghosts, bound there again for a moment at restore). The
//! dump records each as CRIU 4.2 does (unix_sk_entry in files.img: type,
//! state, name and where it lives, peer, backlog, shutdown; the messages
//! queued on it in sk-queues.img, read without consuming them); a
//! connection not accepted yet names its listener as its peer. The
//! restore (`restore`) makes them all at once, then refills the queues
//! once every file is open (fds in flight included).

mod diag;
mod name;
mod queue;
mod restore;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{bail, Context, Result};

pub use diag::{diag, entry, Diag, STATE_CLOSE, STATE_ESTABLISHED, STATE_LISTEN};
pub use queue::{peek_queue, queue_entry, refill_and_shut, Queued};

use crate::files::kind::{DumpCx, FdKind, FdProbe, Images, OpenCx, State};
use crate::files::FileTable;
use crate::images::kind::kinds;
use crate::images::pb::{FdTypes, FileEntry, SkPacketEntry};
use crate::images::{ImageDir, ImageReader, ImageWriter};

/// The unix socket kind (FD_TYPES UNIXSK). It claims every socket for now
/// and refuses those that are not unix sockets.
pub struct UnixSk;

/// What the dump gathers: every unix socket of the namespace (read once),
/// queued messages (sk-queues.img), every socket dumped (ino, peer ino),
/// and records held back until their peer's is in.
#[derive(Default)]
struct Dumped {
    all: Option<HashMap<u32, Diag>>,
    queues: Vec<(SkPacketEntry, Vec<u8>)>,
    socks: Vec<(u32, u32)>,
    waiting: Vec<(u32, FileEntry)>,
    /// Sockets whose queues are being read: one met again in flight in
    /// its own queue (or a queue of its queue) is a loop.
    reading: Vec<u32>,
}

/// --ext-unix-sk: a datagram socket may be connected to a named one no
/// task of the tree holds (recorded as CRIU's USK_EXTERN entry, connected
/// to again by name at restore).
#[derive(Default)]
pub struct External(pub bool);

/// Say whether --ext-unix-sk was given, in the dump's or the restore's
/// per-kind state.
pub fn allow_external(st: &mut State, on: bool) {
    st.get_mut::<External>().0 = on;
}

/// CRIU's USK_EXTERN.
pub const USK_EXTERN: u32 = 1;

/// sk-queues.img as a restore reads it: socket file id -> its messages.
#[derive(Default)]
struct Queues(HashMap<u32, Vec<Queued>>);

fn is_dgram(ty: u32) -> bool {
    ty == libc::SOCK_DGRAM as u32
}

/// The peer a record names for socket `d`: its own peer, or for a
/// connection no one accepted yet, the listener holding it. `who` names
/// the fd for refusals.
fn resolve_peer(d: &Diag, all: &HashMap<u32, Diag>, who: &str) -> Result<u32> {
    let ino = d.ino;
    if d.peer != 0 {
        let Some(p) = all.get(&d.peer) else { bail!("unix socket {ino} ({who}) is connected to socket {}, which is gone", d.peer) };
        if p.peer != ino && p.name.is_empty() {
            bail!("unix socket {ino} ({who}) is connected to socket {}, which has no name and another peer", d.peer);
        }
        return Ok(d.peer);
    }
    if d.state == STATE_LISTEN {
        if d.icons.contains(&0) {
            bail!("unix socket {ino} ({who}) listens with a connection not accepted yet whose client is closed: what it sent can't be read");
        }
        return Ok(0);
    }
    if d.state != STATE_ESTABLISHED || is_dgram(d.ty) {
        return Ok(0);
    }
    if let Some(l) = all.values().find(|l| l.state == STATE_LISTEN && l.icons.contains(&ino)) {
        if d.wqlen != 0 {
            bail!(
                "unix socket {ino} ({who}) sent {} byte(s) on a connection listener {} has not accepted yet: they can't be read",
                d.wqlen,
                l.ino
            );
        }
        return Ok(l.ino);
    }
    if d.shutdown != 3 {
        bail!("unix socket {ino} ({who}) is connected to no socket but is not shut down (state {})", d.state);
    }
    Ok(0)
}

/// The messages queued on socket `d` (file `id`, `fd` our copy), the
/// files they carry dumped as files in flight.
fn read_queue(id: u32, d: &Diag, fd: std::os::fd::BorrowedFd<'_>, cx: &mut DumpCx) -> Result<()> {
    for (data, fds) in peek_queue(fd, d.ty, d.rqlen, d.shutdown)? {
        let mut rights = Vec::new();
        for f in fds {
            rights.push(crate::files::fds::in_flight(f, cx)?);
        }
        cx.fds.state.get_mut::<Dumped>().queues.push(queue_entry(id, data, rights));
    }
    Ok(())
}

impl FdKind for UnixSk {
    fn name(&self) -> &'static str {
        "unix socket"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Unixsk
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_socket()
    }

    /// A unix socket passed in a queue (SCM_RIGHTS) is carried too.
    fn travels(&self) -> bool {
        true
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let (pid, fd, ino) = (p.pid, p.fd, p.md.ino() as u32);
        let ours = p.dup()?;
        let who = p.who();
        let st = cx.fds.state.get_mut::<Dumped>();
        if st.all.is_none() {
            st.all = Some(diag::all().context("listing the unix sockets")?);
        }
        let all = st.all.as_ref().context("the unix socket list")?;
        let d = match all.get(&ino) {
            Some(d) => d.clone(),
            None => match diag(ino) {
                Ok(d) if d.ino == ino => d,
                _ => bail!("fd {fd} of task {pid} is a socket ({}) that is not a unix socket: not supported yet", p.link),
            },
        };
        if ![libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_SEQPACKET].contains(&(d.ty as i32)) {
            bail!("unix socket {ino} ({who}) has type {}: not supported", d.ty);
        }
        if ![STATE_ESTABLISHED, STATE_CLOSE, STATE_LISTEN].contains(&d.state) {
            bail!("unix socket {ino} ({who}) is in state {}: not supported", d.state);
        }
        let peer = resolve_peer(&d, all, &who)?;
        let named = name::resolve(ours.as_fd(), ino, &d.name).with_context(|| who.clone())?;
        let e = entry(id, &d, peer, p.flags, ours.as_fd(), named).with_context(|| who.clone())?;
        // Only a connected stream or any datagram socket has a queue.
        if is_dgram(d.ty) || d.state == STATE_ESTABLISHED {
            if cx.fds.state.get_mut::<Dumped>().reading.contains(&ino) {
                bail!("unix socket {ino} ({who}) is in flight in its own queue (or in a queue of a socket in it): such a loop is not supported");
            }
            cx.fds.state.get_mut::<Dumped>().reading.push(ino);
            let r = read_queue(id, &d, ours.as_fd(), cx).with_context(|| format!("queue of fd {fd} of task {pid}"));
            cx.fds.state.get_mut::<Dumped>().reading.retain(|&i| i != ino);
            r?;
        }
        Ok(FileEntry { r#type: FdTypes::Unixsk as i32, id, usk: Some(e), ..Default::default() })
    }

    /// As in CRIU, a socket's record follows its peer's dump.
    fn record(&self, e: FileEntry, cx: &mut DumpCx) {
        let (ino, peer) = e.usk.as_ref().map_or((0, 0), |u| (u.ino, u.peer));
        let st = cx.fds.state.get_mut::<Dumped>();
        if peer == 0 || st.socks.iter().any(|(i, _)| *i == peer) {
            cx.files.push(e);
        } else {
            st.waiting.push((peer, e));
        }
        st.socks.push((ino, peer));
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.waiting).into_iter().partition(|(p, _)| *p == ino);
        st.waiting = waiting;
        for (_, r) in ready {
            cx.files.push(r);
        }
    }

    /// Each socket's peer must be one of the dumped sockets, or with
    /// --ext-unix-sk a named datagram socket outside (an extern record
    /// then stands for it, ahead of the records waiting for it).
    fn dumped_all(&self, st: &mut State, files: &mut FileTable, who: &str) -> Result<()> {
        let ext = st.get::<External>().is_some_and(|e| e.0);
        if st.get::<Dumped>().is_none() {
            return Ok(());
        }
        let d = st.get_mut::<Dumped>();
        let mut outside: Vec<u32> = Vec::new();
        for (ino, peer) in &d.socks {
            if *peer == 0 || d.socks.iter().any(|(i, _)| i == peer) || outside.contains(peer) {
                continue;
            }
            let p = d.all.as_ref().and_then(|a| a.get(peer));
            match p {
                _ if !ext => bail!(
                    "unix socket {ino} of {who} is connected to socket {peer}, which no dumped task holds: dump with --ext-unix-sk to connect it again at restore (named datagram peers only)"
                ),
                Some(p) if is_dgram(p.ty) && !p.name.is_empty() => outside.push(*peer),
                Some(p) if !is_dgram(p.ty) => bail!("unix socket {ino} of {who} is one half of a stream connection with socket {peer} outside the dumped tasks: it can't be carried"),
                _ => bail!("unix socket {ino} of {who} is connected to socket {peer} outside the dumped tasks, which has no name: it can't be connected again"),
            }
        }
        for peer in outside {
            let p = d.all.as_ref().and_then(|a| a.get(&peer)).context("the outside peer")?;
            let id = files.alloc_id();
            files.push(FileEntry { r#type: FdTypes::Unixsk as i32, id, usk: Some(diag::external(id, p)), ..Default::default() });
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut d.waiting).into_iter().partition(|(p, _)| *p == peer);
            d.waiting = waiting;
            for (_, r) in ready {
                files.push(r);
            }
        }
        Ok(())
    }

    fn write_images(&self, st: &State, dir: &ImageDir) -> Result<()> {
        let Some(d) = st.get::<Dumped>().filter(|d| !d.socks.is_empty()) else { return Ok(()) };
        let mut w = ImageWriter::create(dir, "sk-queues.img", kinds::sk_queues())?;
        for (e, data) in &d.queues {
            w.write(e)?;
            w.payload(data)?;
        }
        w.finish()?;
        Ok(())
    }

    fn load_images(&self, dir: &ImageDir, imgs: &mut Images) -> Result<()> {
        if !dir.exists("sk-queues.img") {
            return Ok(());
        }
        let mut r = ImageReader::open_kind(dir, "sk-queues.img", kinds::sk_queues())?;
        let q = &mut imgs.state.get_mut::<Queues>().0;
        while let Some(e) = r.next_entry()? {
            let data = r.payload(u64::from(e.length))?;
            q.entry(e.id_for).or_default().push(Queued::from_entry(&e, data)?);
        }
        Ok(())
    }

    fn open(&self, fe: &FileEntry, _fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        restore::open(fe, cx).map(Some)
    }

    fn opened_all(&self, cx: &mut OpenCx) -> Result<()> {
        restore::finish(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::{AsFd, AsRawFd};

    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};

    #[test]
    fn round_trip() {
        let (a, b) = socket::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_NONBLOCK).unwrap();
        std::fs::File::from(a.try_clone().unwrap()).write_all(b"to b").unwrap();
        std::fs::File::from(b.try_clone().unwrap()).write_all(b"to a, twice").unwrap();
        socket::shutdown(b.as_raw_fd(), socket::Shutdown::Write).unwrap();
        let (before, back, after) = crate::files::round_trip::run(&[a.as_raw_fd(), b.as_raw_fd()]);
        let queued = |d: &crate::files::round_trip::Dumped, i: usize| {
            let id = d.entries[i].id;
            let st = d.fds.state.get::<super::Dumped>().unwrap();
            st.queues.iter().filter(|(e, _)| e.id_for == id).flat_map(|(_, data)| data.clone()).collect::<Vec<u8>>()
        };
        for i in 0..2 {
            let (x, y) = (before.entries[i].usk.as_ref().unwrap(), after.entries[i].usk.as_ref().unwrap());
            assert_eq!((x.r#type, x.state, x.flags, x.shutdown), (y.r#type, y.state, y.flags, y.shutdown));
            assert_eq!(queued(&before, i), queued(&after, i));
        }
        assert_eq!(queued(&after, 0), b"to a, twice");
        assert_eq!(queued(&after, 1), b"to b");
        assert_eq!(before.entries[1].usk.as_ref().unwrap().shutdown, Some(2));
        // The restored pair is connected: a says more, b reads it after the queue.
        std::fs::File::from(back[0].try_clone().unwrap()).write_all(b"!").unwrap();
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(&back[1], &mut buf).unwrap();
        assert_eq!(&buf[..n], b"to b!");
    }

    fn name(fd: &std::os::fd::OwnedFd) -> Vec<u8> {
        let a: socket::UnixAddr = socket::getsockname(fd.as_raw_fd()).unwrap();
        match (a.path(), a.as_abstract()) {
            (Some(p), _) => std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec(),
            (_, Some(n)) => [&[0u8][..], n].concat(),
            _ => Vec::new(),
        }
    }

    /// A datagram socket on a path with two messages queued, and a
    /// stream listener on an abstract name with a client waiting.
    #[test]
    fn round_trip_bound_and_listening() {
        use socket::UnixAddr;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("dg");
        let dg = socket::socket(AddressFamily::Unix, SockType::Datagram, SockFlag::empty(), None).unwrap();
        socket::bind(dg.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        let tx = socket::socket(AddressFamily::Unix, SockType::Datagram, SockFlag::empty(), None).unwrap();
        for m in [&b"one"[..], b"two!"] {
            socket::sendto(tx.as_raw_fd(), m, &UnixAddr::new(&path).unwrap(), socket::MsgFlags::empty()).unwrap();
        }
        let abs = format!("criu-rs-test-{}", std::process::id());
        let l = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).unwrap();
        socket::bind(l.as_raw_fd(), &UnixAddr::new_abstract(abs.as_bytes()).unwrap()).unwrap();
        socket::listen(&l, socket::Backlog::new(3).unwrap()).unwrap();
        let c = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::empty(), None).unwrap();
        socket::connect(c.as_raw_fd(), &UnixAddr::new_abstract(abs.as_bytes()).unwrap()).unwrap();
        let fds = [dg.as_raw_fd(), l.as_raw_fd(), c.as_raw_fd()];
        let (before, back, after) = crate::files::round_trip::run_with(&fds, || drop((dg, l, c)));
        for i in 0..3 {
            let (x, y) = (before.entries[i].usk.as_ref().unwrap(), after.entries[i].usk.as_ref().unwrap());
            assert_eq!((x.r#type, x.state, x.flags, &x.name, x.backlog), (y.r#type, y.state, y.flags, &y.name, y.backlog), "socket {i}");
        }
        // The client names the listener as its peer.
        assert_eq!(before.entries[2].usk.as_ref().unwrap().peer, before.entries[1].usk.as_ref().unwrap().ino);
        assert_eq!(after.entries[2].usk.as_ref().unwrap().peer, after.entries[1].usk.as_ref().unwrap().ino);
        assert_eq!(name(&back[0]), std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()));
        assert_eq!(name(&back[1]), [&[0u8][..], abs.as_bytes()].concat());
        let mut buf = [0u8; 16];
        for m in [&b"one"[..], b"two!"] {
            let n = socket::recv(back[0].as_raw_fd(), &mut buf, socket::MsgFlags::MSG_DONTWAIT).unwrap();
            assert_eq!(&buf[..n], m);
        }
        let a = socket::accept(back[1].as_raw_fd()).unwrap();
        std::fs::File::from(back[2].try_clone().unwrap()).write_all(b"x").unwrap();
        assert_eq!(socket::recv(a, &mut buf, socket::MsgFlags::empty()).unwrap(), 1);
        nix::unistd::close(a).unwrap();
    }

    /// An accepted connection (named after its listener) and a stream
    /// whose peer wrote and closed.
    #[test]
    fn round_trip_accepted_and_closed_peer() {
        use socket::UnixAddr;
        let abs = format!("criu-rs-test-acc-{}", std::process::id());
        let addr = UnixAddr::new_abstract(abs.as_bytes()).unwrap();
        let l = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::empty(), None).unwrap();
        socket::bind(l.as_raw_fd(), &addr).unwrap();
        socket::listen(&l, socket::Backlog::new(3).unwrap()).unwrap();
        let c = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::empty(), None).unwrap();
        socket::connect(c.as_raw_fd(), &addr).unwrap();
        let a = crate::sys::fd::accept_cloexec(l.as_fd()).unwrap();
        std::fs::File::from(c.try_clone().unwrap()).write_all(b"c->a").unwrap();
        let (s, t) = socket::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_NONBLOCK).unwrap();
        std::fs::File::from(t).write_all(b"last").unwrap();
        let fds = [l.as_raw_fd(), a.as_raw_fd(), c.as_raw_fd(), s.as_raw_fd()];
        let (before, back, after) = crate::files::round_trip::run_with(&fds, || drop((l, a, c, s)));
        for i in 0..4 {
            let (x, y) = (before.entries[i].usk.as_ref().unwrap(), after.entries[i].usk.as_ref().unwrap());
            assert_eq!((x.r#type, x.state, &x.name, x.shutdown), (y.r#type, y.state, &y.name, y.shutdown), "socket {i}");
        }
        assert_eq!(before.entries[3].usk.as_ref().unwrap().shutdown, Some(3));
        let named = [&[0u8][..], abs.as_bytes()].concat();
        assert_eq!(name(&back[1]), named);
        let peer: UnixAddr = socket::getpeername(back[2].as_raw_fd()).unwrap();
        assert_eq!(peer.as_abstract(), Some(abs.as_bytes()));
        let mut buf = [0u8; 16];
        let n = socket::recv(back[1].as_raw_fd(), &mut buf, socket::MsgFlags::MSG_DONTWAIT).unwrap();
        assert_eq!(&buf[..n], b"c->a");
        let n = socket::recv(back[3].as_raw_fd(), &mut buf, socket::MsgFlags::MSG_DONTWAIT).unwrap();
        assert_eq!(&buf[..n], b"last");
        assert_eq!(socket::recv(back[3].as_raw_fd(), &mut buf, socket::MsgFlags::MSG_DONTWAIT).unwrap(), 0);
    }

    /// A datagram socket whose file was deleted, with a client connected:
    /// bound again for a moment, its path left empty, the client reaching it.
    #[test]
    fn round_trip_ghost() {
        use socket::UnixAddr;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("gone");
        let s = socket::socket(AddressFamily::Unix, SockType::Datagram, SockFlag::empty(), None).unwrap();
        socket::bind(s.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        let c = socket::socket(AddressFamily::Unix, SockType::Datagram, SockFlag::empty(), None).unwrap();
        socket::connect(c.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let fds = [s.as_raw_fd(), c.as_raw_fd()];
        let (before, back, after) = crate::files::round_trip::run_with(&fds, || drop((s, c)));
        assert_eq!(before.entries[0].usk.as_ref().unwrap().deleted, Some(true));
        assert_eq!(after.entries[0].usk.as_ref().unwrap().deleted, Some(true));
        assert_eq!(after.entries[1].usk.as_ref().unwrap().peer, after.entries[0].usk.as_ref().unwrap().ino);
        assert!(!path.exists());
        assert_eq!(name(&back[0]), std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()));
        socket::send(back[1].as_raw_fd(), b"hi", socket::MsgFlags::empty()).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(socket::recv(back[0].as_raw_fd(), &mut buf, socket::MsgFlags::MSG_DONTWAIT).unwrap(), 2);
    }

    /// How a dump names a socket's peer, and what it refuses.
    #[test]
    fn peers_resolved_or_refused() {
        use super::{resolve_peer, Diag, STATE_CLOSE, STATE_ESTABLISHED, STATE_LISTEN};
        let st = libc::SOCK_STREAM as u32;
        let d = |ino, state, peer| Diag { ino, ty: st, state, peer, ..Default::default() };
        let listener = Diag { icons: vec![5, 6], name: b"/l\0".to_vec(), ..d(1, STATE_LISTEN, 0) };
        let all: std::collections::HashMap<u32, Diag> =
            [listener.clone(), d(2, STATE_ESTABLISHED, 3), d(3, STATE_ESTABLISHED, 2), d(5, STATE_ESTABLISHED, 0)].into_iter().map(|x| (x.ino, x)).collect();
        // A pair names each other; a waiting client names its listener.
        assert_eq!(resolve_peer(&all[&2], &all, "t").unwrap(), 3);
        assert_eq!(resolve_peer(&all[&5], &all, "t").unwrap(), 1);
        assert_eq!(resolve_peer(&listener, &all, "t").unwrap(), 0);
        assert_eq!(resolve_peer(&d(9, STATE_CLOSE, 0), &all, "t").unwrap(), 0);
        // A waiting client that sent data: its bytes can't be read.
        let sent = Diag { wqlen: 3, ..d(6, STATE_ESTABLISHED, 0) };
        assert!(resolve_peer(&sent, &all, "t").unwrap_err().to_string().contains("not accepted yet"));
        // A listener whose waiting client closed.
        let closed = Diag { icons: vec![0], ..listener.clone() };
        assert!(resolve_peer(&closed, &all, "t").is_err());
        // Connected to nothing: fine when shut down both ways (the peer closed), refused otherwise.
        assert_eq!(resolve_peer(&Diag { shutdown: 3, ..d(7, STATE_ESTABLISHED, 0) }, &all, "t").unwrap(), 0);
        assert!(resolve_peer(&d(8, STATE_ESTABLISHED, 0), &all, "t").is_err());
        // A peer that is gone.
        assert!(resolve_peer(&d(4, STATE_ESTABLISHED, 99), &all, "t").is_err());
    }
}
