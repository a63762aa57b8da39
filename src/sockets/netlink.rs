//! A minimal netlink client (sock_diag and rtnetlink requests) built on
//! plain byte buffers, for socket dumps and the network probes.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_EXCL: u16 = 0x200;

const HDR_LEN: usize = 16;

/// Round up to the 4-byte netlink alignment.
pub fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// One received message.
#[derive(Clone, Debug)]
pub struct Msg {
    pub ty: u16,
    pub payload: Vec<u8>,
}

/// An open netlink socket.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open(proto: SockProtocol) -> Result<Self, Errno> {
        let fd = socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, proto)?;
        Ok(Self { fd, seq: 0x1000 })
    }

    /// Send one request and collect the replies: until NLMSG_DONE for
    /// dumps, until the ACK otherwise. A negative error in NLMSG_ERROR (or
    /// in NLMSG_DONE) becomes `Err(errno)`.
    pub fn request(&mut self, ty: u16, flags: u16, payload: &[u8]) -> Result<Vec<Msg>, Errno> {
        self.seq = self.seq.wrapping_add(1);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let flags = if dump { flags } else { flags | NLM_F_ACK };
        let len = HDR_LEN + payload.len();
        let mut buf = Vec::with_capacity(align(len));
        buf.extend_from_slice(&(len as u32).to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&self.seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(payload);
        buf.resize(align(len), 0);
        let kernel = NetlinkAddr::new(0, 0);
        socket::sendto(self.fd.as_raw_fd(), &buf, &kernel, MsgFlags::empty())?;

        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            let n = loop {
                match socket::recv(self.fd.as_raw_fd(), &mut rbuf, MsgFlags::empty()) {
                    Err(Errno::EINTR) => continue,
                    other => break other?,
                }
            };
            if n == 0 {
                return Err(Errno::ECONNRESET);
            }
            let mut off = 0;
            while off + HDR_LEN <= n {
                let mlen = u32::from_ne_bytes(rbuf[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
                let mty = u16::from_ne_bytes([rbuf[off + 4], rbuf[off + 5]]);
                let mseq = u32::from_ne_bytes(rbuf[off + 8..off + 12].try_into().unwrap_or([0; 4]));
                if mlen < HDR_LEN || off + mlen > n {
                    return Err(Errno::EBADMSG);
                }
                let body = &rbuf[off + HDR_LEN..off + mlen];
                off += align(mlen);
                if mseq != self.seq {
                    continue;
                }
                match mty {
                    NLMSG_ERROR | NLMSG_DONE => {
                        let err =
                            body.get(..4).map(|b| i32::from_ne_bytes(b.try_into().unwrap_or([0; 4]))).unwrap_or(0);
                        if err < 0 {
                            return Err(Errno::from_raw(-err));
                        }
                        if mty == NLMSG_DONE || !dump {
                            return Ok(out);
                        }
                    }
                    _ => out.push(Msg { ty: mty, payload: body.to_vec() }),
                }
            }
        }
    }
}

/// Encode one attribute (rtattr / nlattr share the layout).
pub fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
    let len = 4 + data.len();
    let mut v = Vec::with_capacity(align(len));
    v.extend_from_slice(&(len as u16).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(data);
    v.resize(align(len), 0);
    v
}

/// Split an attribute stream into (type without flag bits, data).
pub fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((ty, &buf[4..len]));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_round_trip() {
        let mut stream = attr(3, b"veth");
        stream.extend(attr(49, &(-1i32).to_ne_bytes()));
        stream.extend(attr(0x8000 | 18, &attr(1, b"veth")));
        assert_eq!(stream.len(), 8 + 8 + 4 + 8);
        let a = attrs(&stream);
        assert_eq!(a[0], (3, &b"veth"[..]));
        assert_eq!(a[1].0, 49);
        assert_eq!(i32::from_ne_bytes(a[1].1.try_into().unwrap()), -1);
        assert_eq!(a[2].0, 18);
        assert_eq!(attrs(a[2].1)[0], (1, &b"veth"[..]));
    }

    #[test]
    fn align_rounds_to_four() {
        assert_eq!(align(0), 0);
        assert_eq!(align(1), 4);
        assert_eq!(align(17), 20);
    }
}
