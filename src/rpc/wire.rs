//! The RPC transport: one protobuf message per SOCK_SEQPACKET datagram, no
//! length prefix (CRIU's recv_criu_msg / send_criu_msg). Requests are
//! sized with MSG_PEEK|MSG_TRUNC first and refused past [`MAX_REQUEST`].

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};
use prost::Message;

use super::pb::{CriuReq, CriuResp};

/// The largest request we read. CRIU's biggest real requests (many
/// externals, inherit fds, mounts) are a few KiB.
pub const MAX_REQUEST: usize = 2 << 20;

/// Why no request could be read.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    #[error("the RPC client closed the connection")]
    Closed,
    #[error("reading a request: {0}")]
    Io(#[from] Errno),
    #[error("a request of {0} bytes is larger than the {MAX_REQUEST}-byte limit")]
    TooBig(usize),
    #[error("malformed request ({len} bytes): not a criu_req protobuf message: {err}")]
    Malformed { len: usize, err: prost::DecodeError },
}

fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Read one datagram (blocking). A zero-length read is the peer going
/// away, as CRIU reads it.
pub fn recv_raw(sk: &OwnedFd) -> Result<Vec<u8>, RecvError> {
    let fd = sk.as_raw_fd();
    let len = retry(|| recv(fd, &mut [], MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC))?;
    if len == 0 {
        // Consume the (empty) datagram or EOF.
        let _ = retry(|| recv(fd, &mut [0u8; 1], MsgFlags::MSG_TRUNC));
        return Err(RecvError::Closed);
    }
    if len > MAX_REQUEST {
        // Drop it from the queue without reading it.
        let _ = retry(|| recv(fd, &mut [0u8; 1], MsgFlags::MSG_TRUNC));
        return Err(RecvError::TooBig(len));
    }
    let mut buf = vec![0u8; len];
    let n = retry(|| recv(fd, &mut buf, MsgFlags::MSG_TRUNC))?;
    if n == 0 {
        return Err(RecvError::Closed);
    }
    buf.truncate(n.min(len));
    Ok(buf)
}

/// Read and decode one request.
pub fn recv_req(sk: &OwnedFd) -> Result<CriuReq, RecvError> {
    let buf = recv_raw(sk)?;
    CriuReq::decode(buf.as_slice()).map_err(|err| RecvError::Malformed { len: buf.len(), err })
}

/// Send one response as one datagram (no SIGPIPE if the client is gone).
pub fn send_resp(sk: &OwnedFd, resp: &CriuResp) -> Result<(), Errno> {
    let buf = resp.encode_to_vec();
    let n = retry(|| send(sk.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL))?;
    if n != buf.len() {
        return Err(Errno::EMSGSIZE);
    }
    Ok(())
}
