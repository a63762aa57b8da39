//! Unix sockets: a pair connected to each other inside the task (socketpair,
//! or the two ends of a connection both held) is dumped as two
//! unix_sk_entry records naming each other as peers, with the bytes queued
//! in each receive queue in sk-queues.img (read without consuming them,
//! through MSG_PEEK on a copy of the fd); restored with socketpair() and
//! the queued data sent again, then each end shut down as it was
//! (shutdown(2) after the refill). Sockets bound to a name or connected
//! outside the task are refused by name, and so are queued messages whose
//! control data (passed fds, sender credentials) can't be carried.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, sockopt, MsgFlags};

use crate::images::pb::{FownEntry, ScmEntry, SkOptsEntry, SkPacketEntry, UnixSkEntry};
use super::netlink::{attrs, Netlink, NLM_F_REQUEST};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_NAME: u32 = 1;
const UDIAG_SHOW_PEER: u32 = 4;
const UDIAG_SHOW_RQLEN: u32 = 16;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;
/// TCP_ESTABLISHED, as unix_diag reports a connected socket.
pub const STATE_ESTABLISHED: u32 = 1;

/// What unix_diag tells about one socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diag {
    pub ino: u32,
    pub ty: u32,
    pub state: u32,
    pub name: Vec<u8>,
    pub peer: u32,
    pub rqlen: u32,
    /// Bytes of the socket's send buffer in use (its unsent or unread
    /// messages), which CRIU records as `backlog`.
    pub wqlen: u32,
    /// The kernel's sk_shutdown bits (1 receive, 2 send), as
    /// unix_sk_entry.shutdown encodes them (SK_SHUTDOWN: 1 READ, 2 WRITE,
    /// 3 BOTH).
    pub shutdown: u32,
}

/// Ask the kernel about unix socket `ino` (in our network namespace).
pub fn diag(ino: u32) -> Result<Diag> {
    let mut nl = Netlink::open(socket::SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let mut req = Vec::with_capacity(24);
    req.push(libc::AF_UNIX as u8);
    req.push(0);
    req.extend_from_slice(&0u16.to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // all states
    req.extend_from_slice(&ino.to_ne_bytes());
    req.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN).to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // no cookie
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    let msgs = nl.request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &req).with_context(|| format!("unix_diag for socket {ino}"))?;
    let m = msgs.iter().find(|m| m.ty == SOCK_DIAG_BY_FAMILY).with_context(|| format!("no unix_diag answer for socket {ino}"))?;
    let p = &m.payload;
    if p.len() < 16 {
        bail!("short unix_diag answer for socket {ino}");
    }
    let mut d = Diag { ino: u32::from_ne_bytes(p[4..8].try_into()?), ty: u32::from(p[1]), state: u32::from(p[2]), ..Default::default() };
    for (ty, data) in attrs(&p[16..]) {
        match ty {
            UNIX_DIAG_NAME => d.name = data.to_vec(),
            UNIX_DIAG_PEER if data.len() >= 4 => d.peer = u32::from_ne_bytes(data[..4].try_into()?),
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

fn opts(fd: BorrowedFd<'_>) -> Result<SkOptsEntry> {
    let snd = socket::getsockopt(&fd, sockopt::SndBuf).context("SO_SNDBUF")?;
    let rcv = socket::getsockopt(&fd, sockopt::RcvBuf).context("SO_RCVBUF")?;
    Ok(SkOptsEntry {
        so_sndbuf: snd as u32,
        so_rcvbuf: rcv as u32,
        reuseaddr: Some(false),
        so_priority: Some(0),
        so_rcvlowat: Some(1),
        so_passcred: Some(socket::getsockopt(&fd, sockopt::PassCred).unwrap_or(false)),
        so_passsec: Some(false),
        so_dontroute: Some(false),
        so_no_check: Some(false),
        so_reuseport: Some(false),
        so_broadcast: Some(false),
        so_keepalive: Some(false),
        so_oobinline: Some(0),
        so_buf_lock: Some(0),
        ..Default::default()
    })
}

/// The record of one socket of a pair, `fd` being our copy of it.
pub fn entry(id: u32, d: &Diag, file_flags: u32, fd: BorrowedFd<'_>) -> Result<UnixSkEntry> {
    if !d.name.is_empty() {
        bail!("unix socket {} is bound to {:?}: named unix sockets are not supported yet", d.ino, String::from_utf8_lossy(&d.name));
    }
    if d.state != STATE_ESTABLISHED || d.peer == 0 {
        bail!("unix socket {} is not connected (state {}): only socket pairs are supported yet", d.ino, d.state);
    }
    Ok(UnixSkEntry {
        id,
        ino: d.ino,
        r#type: d.ty,
        state: d.state,
        flags: file_flags,
        uflags: 0,
        backlog: d.wqlen,
        peer: d.peer,
        fown: FownEntry::default(),
        opts: opts(fd)?,
        name: Vec::new(),
        shutdown: (d.shutdown != 0).then_some(d.shutdown as i32),
        file_perms: None,
        name_dir: None,
        deleted: None,
        ns_id: Some(crate::ns::NET_NS_ID),
        mnt_id: None,
    })
}

/// The messages queued for reading on socket `fd` (our copy), left in
/// place: each peeked in turn through SO_PEEK_OFF. A message carrying fds
/// (SCM_RIGHTS) or, on a socket with SO_PASSCRED, its sender's credentials
/// is refused: resending it would drop the fds or give another sender.
/// `shutdown` are the socket's sk_shutdown bits (a shut receive side reads
/// as end of file once the queue is empty).
pub fn peek_queue(fd: BorrowedFd<'_>, ty: u32, rqlen: u32, shutdown: u32) -> Result<Vec<(Vec<u8>, Vec<OwnedFd>)>> {
    if rqlen == 0 {
        return Ok(Vec::new());
    }
    let saved = crate::sys::sockopt::peek_off(fd).unwrap_or(-1);
    crate::sys::sockopt::set_peek_off(fd, 0).context("SO_PEEK_OFF")?;
    let r = peek_all(fd, ty, rqlen, shutdown);
    let _ = crate::sys::sockopt::set_peek_off(fd, saved);
    r
}

fn peek_all(fd: BorrowedFd<'_>, ty: u32, rqlen: u32, shutdown: u32) -> Result<Vec<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut out: Vec<(Vec<u8>, Vec<OwnedFd>)> = Vec::new();
    let mut buf = vec![0u8; rqlen.max(65536) as usize];
    let stream = ty == libc::SOCK_STREAM as u32;
    let passcred = socket::getsockopt(&fd, sockopt::PassCred).unwrap_or(false);
    loop {
        // The peek gives us copies of the fds: ours.
        let (n, rights, creds) = match crate::sys::scm::peek(fd, &mut buf) {
            Ok(m) => (m.len, m.fds, m.creds),
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => return Err(e).context("peeking a socket queue"),
        };
        let total: usize = out.iter().map(|(d, _)| d.len()).sum();
        if creds && passcred {
            bail!(
                "the socket has SO_PASSCRED and {} byte(s) queued: the senders' credentials (SCM_CREDENTIALS) can't be carried",
                rqlen
            );
        }
        // End of file: a stream's 0, or a shut seqpacket socket's once
        // its queue is read through.
        if n == 0 && (stream || (shutdown & 1 != 0 && total >= rqlen as usize)) {
            break;
        }
        out.push((buf[..n].to_vec(), rights));
        if stream && total + n >= rqlen as usize {
            break;
        }
    }
    Ok(out)
}

/// The sk-queues.img record of one message queued on socket `id`, with
/// the file ids of the fds it carries (SCM_RIGHTS).
pub fn queue_entry(id: u32, data: Vec<u8>, rights: Vec<u32>) -> (SkPacketEntry, Vec<u8>) {
    let scm = if rights.is_empty() { Vec::new() } else { vec![ScmEntry { r#type: libc::SCM_RIGHTS as u32, rights }] };
    (SkPacketEntry { id_for: id, length: data.len() as u32, scm }, data)
}

/// A message to queue again: its bytes and the file ids of the fds it
/// carries.
#[derive(Clone, Debug, Default)]
pub struct Queued {
    pub data: Vec<u8>,
    pub rights: Vec<u32>,
}

impl Queued {
    /// From an sk-queues.img record and its bytes; control messages other
    /// than SCM_RIGHTS are refused, naming the socket.
    pub fn from_entry(e: &SkPacketEntry, data: Vec<u8>) -> Result<Queued> {
        let mut rights = Vec::new();
        for s in &e.scm {
            if s.r#type != libc::SCM_RIGHTS as u32 {
                bail!("sk-queues.img: a message for socket {} carries control message type {}: only SCM_RIGHTS is supported", e.id_for, s.r#type);
            }
            rights.extend_from_slice(&s.rights);
        }
        Ok(Queued { data, rights })
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

/// Queue each end's messages again (sent by the other end, with the fds
/// they carry: `fd_of` gives our fd for a file id), then shut each end
/// down as it was (a shut sending side would refuse the refill).
pub fn refill_and_shut(ends: [(BorrowedFd<'_>, &UnixSkEntry, &[Queued]); 2], fd_of: &dyn Fn(u32) -> Result<i32>) -> Result<()> {
    for (i, (_, e, msgs)) in ends.iter().enumerate() {
        let sender = ends[1 - i].0;
        for m in msgs.iter() {
            let fds = m.rights.iter().map(|&id| fd_of(id)).collect::<Result<Vec<i32>>>()?;
            let iov = [std::io::IoSlice::new(&m.data)];
            let cmsg = [socket::ControlMessage::ScmRights(&fds)];
            let cmsgs: &[socket::ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
            socket::sendmsg::<()>(sender.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_DONTWAIT, None)
                .with_context(|| format!("refilling the queue of unix socket {}", e.ino))?;
        }
    }
    for (fd, e, _) in ends {
        let how = match e.shutdown.unwrap_or(0) & 3 {
            0 => continue,
            1 => socket::Shutdown::Read,
            2 => socket::Shutdown::Write,
            _ => socket::Shutdown::Both,
        };
        socket::shutdown(fd.as_raw_fd(), how).with_context(|| format!("shutdown of unix socket {}", e.ino))?;
    }
    Ok(())
}
