//! Messages with descriptors (`SCM_RIGHTS`) on a seqpacket socket: the
//! compel control channel. Received descriptors come back as `OwnedFd`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// A received message: its length, whether it (or its descriptors) was
/// truncated, and the descriptors that came with it.
pub struct Received {
    pub len: usize,
    pub truncated: bool,
    pub fds: Vec<OwnedFd>,
}

/// Send `bufs` as one message with `fds` attached (no SIGPIPE).
pub fn send(sock: BorrowedFd<'_>, bufs: &[&[u8]], fds: &[BorrowedFd<'_>]) -> Result<usize, Errno> {
    let iov: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
}

/// Receive one message into `buf`, taking ownership of attached descriptors.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8], max_fds: usize) -> Result<Received, Errno> {
    let mut space = vec![0u8; nix::sys::socket::cmsg_space::<i32>() * max_fds.max(1) + 64];
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel installed these descriptors in our
                // table for this message; nothing else refers to them.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let truncated = msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    Ok(Received { len: msg.bytes, truncated, fds })
}

/// A message peeked off a socket's queue: its length, copies of the
/// descriptors it carries (`SCM_RIGHTS`), and whether it carried
/// credentials (`SCM_CREDENTIALS`).
pub struct Peeked {
    pub len: usize,
    pub fds: Vec<OwnedFd>,
    pub creds: bool,
}

/// Peek at the next message queued on `sock` (MSG_PEEK | MSG_DONTWAIT, so
/// EAGAIN when empty) into `buf`, with up to 253 descriptors (SCM_MAX_FD).
pub fn peek(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Peeked, Errno> {
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 253], libc::ucred);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT)?;
    let (mut fds, mut creds) = (Vec::new(), false);
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::ScmRights(raw) => {
                for fd in raw {
                    // SAFETY: the peek installed these copies in our table
                    // for this call; nothing else refers to them.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            ControlMessageOwned::ScmCredentials(_) => creds = true,
            _ => {}
        }
    }
    Ok(Peeked { len: msg.bytes, fds, creds })
}
