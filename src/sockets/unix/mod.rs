//! Unix sockets: a pair connected to each other inside the task (socketpair,
//! or the two ends of a connection both held) is dumped as two
//! unix_sk_entry records naming each other as peers, with the bytes queued
//! in each receive queue in sk-queues.img (read without consuming them,
//! through MSG_PEEK on a copy of the fd); restored with socketpair() and
//! the queued data sent again, then each end shut down as it was
//! (shutdown(2) after the refill). Sockets bound to a name or connected
//! outside the task are refused by name, and so are queued messages whose
//! control data (passed fds, sender credentials) can't be carried.

mod diag;
mod queue;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, sockopt};

pub use diag::{diag, entry, Diag, STATE_ESTABLISHED};
pub use queue::{peek_queue, queue_entry, refill_and_shut, Queued};

use crate::files::kind::{DumpCx, FdKind, FdProbe, Images, OpenCx, State};
use crate::files::FileTable;
use crate::images::kind::kinds;
use crate::images::pb::{FdTypes, FdinfoEntry, FileEntry, SkPacketEntry, UnixSkEntry};
use crate::images::{ImageDir, ImageReader, ImageWriter};

/// The unix socket kind (FD_TYPES UNIXSK). It claims every socket for now
/// and refuses those that are not unix sockets.
pub struct UnixSk;

/// What the dump gathers: queued messages (sk-queues.img), every socket
/// dumped (ino, peer ino), and records held back until their peer's is in.
#[derive(Default)]
struct Dumped {
    queues: Vec<(SkPacketEntry, Vec<u8>)>,
    socks: Vec<(u32, u32)>,
    waiting: Vec<(u32, FileEntry)>,
}

/// sk-queues.img as a restore reads it: socket file id -> its messages.
#[derive(Default)]
struct Queues(HashMap<u32, Vec<Queued>>);

/// Pairs made at restore, (file id, peer's file id): refilled once every
/// file is open, the files in flight included.
#[derive(Default)]
struct Pairs(Vec<(u32, u32)>);

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

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let (pid, fd, ino) = (p.pid, p.fd, p.md.ino() as u32);
        let ours = p.dup()?;
        let d = match diag(ino) {
            Ok(d) if d.ino == ino => d,
            _ => bail!("fd {fd} of task {pid} is a socket ({}) that is not a unix socket: not supported yet", p.link),
        };
        let e = entry(id, &d, p.flags, ours.as_fd()).with_context(|| p.who())?;
        let q = peek_queue(ours.as_fd(), d.ty, d.rqlen, d.shutdown).with_context(|| format!("queue of fd {fd} of task {pid}"))?;
        for (data, fds) in q {
            let mut rights = Vec::new();
            for f in fds {
                rights.push(crate::files::fds::in_flight(f, cx).with_context(|| format!("queue of fd {fd} of task {pid}"))?);
            }
            cx.fds.state.get_mut::<Dumped>().queues.push(queue_entry(id, data, rights));
        }
        Ok(FileEntry { r#type: FdTypes::Unixsk as i32, id, usk: Some(e), ..Default::default() })
    }

    /// As in CRIU, a socket's record follows its peer's.
    fn record(&self, e: FileEntry, cx: &mut DumpCx) {
        let (ino, peer) = e.usk.as_ref().map_or((0, 0), |u| (u.ino, u.peer));
        let st = cx.fds.state.get_mut::<Dumped>();
        if st.socks.iter().any(|(i, _)| *i == peer) {
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

    /// Each socket's peer must be one of the dumped sockets.
    fn dumped_all(&self, st: &mut State, _files: &mut FileTable, who: &str) -> Result<()> {
        let Some(d) = st.get::<Dumped>() else { return Ok(()) };
        for (ino, peer) in &d.socks {
            if !d.socks.iter().any(|(i, _)| i == peer) {
                bail!("unix socket {ino} of {who} is connected to socket {peer} outside the dumped tasks: not supported yet");
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

    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let a = fe.usk.as_ref().with_context(|| format!("file {} has no unix socket entry", fe.id))?;
        let (peer_id, b) = cx
            .images
            .values()
            .find_map(|f| f.usk.as_ref().filter(|u| u.ino == a.peer).map(|u| (f.id, u)))
            .with_context(|| format!("fd {fd}: the peer {} of unix socket {} is not in the image", a.peer, a.ino))?;
        let (fa, fb) = restore_pair(a, b)?;
        // The peer's fd is ready for when its fdinfo comes.
        cx.opened.insert(peer_id, fb);
        cx.state.get_mut::<Pairs>().0.push((fe.id, peer_id));
        if let Some(q) = cx.images.state.get::<Queues>() {
            for m in [fe.id, peer_id].iter().filter_map(|i| q.0.get(i)).flatten() {
                cx.more.extend(m.rights.iter().map(|&id| FdinfoEntry { id, fd: u32::MAX, ..Default::default() }));
            }
        }
        Ok(Some(fa))
    }

    fn opened_all(&self, cx: &mut OpenCx) -> Result<()> {
        let Some(pairs) = cx.state.get::<Pairs>() else { return Ok(()) };
        let none = Vec::new();
        let queues = cx.images.state.get::<Queues>();
        let queued = |id: u32| queues.and_then(|q| q.0.get(&id)).unwrap_or(&none);
        for &(a, b) in &pairs.0 {
            let (ea, eb) = match (cx.images.get(&a).and_then(|f| f.usk.as_ref()), cx.images.get(&b).and_then(|f| f.usk.as_ref())) {
                (Some(x), Some(y)) => (x, y),
                _ => bail!("unix sockets {a} and {b} lost their entries"),
            };
            let fd_of = |id: u32| cx.opened.get(&id).map(|f| f.as_raw_fd()).with_context(|| format!("file {id} in flight was not opened"));
            let (fa, fb) = (cx.opened.get(&a), cx.opened.get(&b));
            let (Some(fa), Some(fb)) = (fa, fb) else { bail!("unix sockets {a} and {b} were not opened") };
            refill_and_shut([(fa.as_fd(), ea, queued(a)), (fb.as_fd(), eb, queued(b))], &fd_of)?;
        }
        Ok(())
    }
}

/// Recreate a pair: (fd for `a`, fd for `b`), each with its file flags and
/// buffer sizes; [`refill_and_shut`] queues their messages after.
pub fn restore_pair(a: &UnixSkEntry, b: &UnixSkEntry) -> Result<(OwnedFd, OwnedFd)> {
    let ty = match a.r#type as i32 {
        libc::SOCK_STREAM => socket::SockType::Stream,
        libc::SOCK_DGRAM => socket::SockType::Datagram,
        libc::SOCK_SEQPACKET => socket::SockType::SeqPacket,
        t => bail!("unix socket {} has type {t}: not supported", a.ino),
    };
    let (fa, fb) = socket::socketpair(socket::AddressFamily::Unix, ty, None, socket::SockFlag::SOCK_CLOEXEC)
        .with_context(|| format!("socketpair for sockets {} and {}", a.ino, b.ino))?;
    for (fd, e) in [(&fa, a), (&fb, b)] {
        // The kernel doubles what is set; the image holds the doubled value.
        let _ = socket::setsockopt(fd, sockopt::SndBuf, &((e.opts.so_sndbuf / 2) as usize));
        let _ = socket::setsockopt(fd, sockopt::RcvBuf, &((e.opts.so_rcvbuf / 2) as usize));
        let fl = nix::fcntl::OFlag::from_bits_truncate(e.flags as i32 & !libc::O_ACCMODE);
        nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(fl)).context("F_SETFL on a socket")?;
    }
    Ok((fa, fb))
}


#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

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
}
