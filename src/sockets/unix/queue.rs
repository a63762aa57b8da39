//! The messages queued on a unix socket: peeked at dump (the fds they
//! carry included), sk-queues.img records, and sent again at restore.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, sockopt, MsgFlags};

use crate::images::pb::{ScmEntry, SkPacketEntry, UnixSkEntry};

/// The messages queued for reading on socket `fd` (our copy), left in
/// place: each peeked in turn through SO_PEEK_OFF. A message carrying fds
/// (SCM_RIGHTS) or, on a socket with SO_PASSCRED, its sender's credentials
/// is refused: resending it would drop the fds or give another sender.
/// `shutdown` are the socket's sk_shutdown bits (a shut receive side reads
/// as end of file once the queue is empty).
pub fn peek_queue(fd: BorrowedFd<'_>, ty: u32, rqlen: u32, shutdown: u32) -> Result<Vec<(Vec<u8>, Vec<OwnedFd>)>> {
    // A stream's rqlen counts every byte; a datagram socket's only its
    // first message, which may be empty.
    if rqlen == 0 && ty == libc::SOCK_STREAM as u32 {
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
    let stream = ty == libc::SOCK_STREAM as u32;
    // A message is at most what a sender's buffer holds (SO_SNDBUF tops
    // at a few MiB): room for the largest.
    let mut buf = vec![0u8; if stream { rqlen.max(65536) as usize } else { (rqlen as usize).max(8 << 20) }];
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

/// Queue each end's messages again (sent by the other end, with the fds
/// they carry: `fd_of` gives our fd for a file id), then shut each end
/// down as it was (a shut sending side would refuse the refill).
pub fn refill_and_shut(ends: [(BorrowedFd<'_>, &UnixSkEntry, &[Queued]); 2], fd_of: &dyn Fn(u32) -> Result<i32>) -> Result<()> {
    for (i, (_, e, msgs)) in ends.iter().enumerate() {
        send_all(ends[1 - i].0, e.ino, msgs, fd_of)?;
    }
    for (fd, e, _) in ends {
        shut(fd, e)?;
    }
    Ok(())
}

/// Send `msgs` from `sender` (connected to unix socket `ino`), with the
/// fds they carry (`fd_of` gives our fd for a file id).
pub fn send_all(sender: BorrowedFd<'_>, ino: u32, msgs: &[Queued], fd_of: &dyn Fn(u32) -> Result<i32>) -> Result<()> {
    for m in msgs {
        let fds = m.rights.iter().map(|&id| fd_of(id)).collect::<Result<Vec<i32>>>()?;
        let iov = [std::io::IoSlice::new(&m.data)];
        let cmsg = [socket::ControlMessage::ScmRights(&fds)];
        let cmsgs: &[socket::ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
        socket::sendmsg::<()>(sender.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_DONTWAIT, None)
            .with_context(|| format!("refilling the queue of unix socket {ino}"))?;
    }
    Ok(())
}

/// Shut socket `fd` down as its record says.
pub fn shut(fd: BorrowedFd<'_>, e: &UnixSkEntry) -> Result<()> {
    let how = match e.shutdown.unwrap_or(0) & 3 {
        0 => return Ok(()),
        1 => socket::Shutdown::Read,
        2 => socket::Shutdown::Write,
        _ => socket::Shutdown::Both,
    };
    socket::shutdown(fd.as_raw_fd(), how).with_context(|| format!("shutdown of unix socket {}", e.ino))
}
