//! The netlink client every netlink user of criu shares: the socket
//! (netlink-sys) and one request/ack/dump exchange framed by
//! netlink-packet-core, typed by the family's own crate
//! (netlink-packet-sock-diag's `SockDiagMessage`, netlink-packet-route's
//! `RouteNetlinkMessage`), plus what no crate models: a raw message
//! ([`Msg`]) for the sock_diag families without a crate (netlink_diag,
//! packet_diag), their common request ([`DiagRequest`]) and attribute
//! helpers over netlink-packet-core's NLA buffers.

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NlasIterator, Parseable, NLA_HEADER_SIZE, NLA_TYPE_MASK,
};
use nix::errno::Errno;
use nix::sys::socket::SockProtocol;

pub use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};

/// The largest datagram a dump reply comes in: the kernel sizes dump
/// replies by the reader's buffer, capped well below this.
const RECV_BUF: usize = 64 * 1024;

/// Round up to the 4-byte netlink alignment.
pub fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// What an exchange can fail with: the kernel's errno (a failed syscall,
/// NLMSG_ERROR or a negative NLMSG_DONE), or a reply the family's crate
/// cannot decode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Sys(#[from] Errno),
    #[error("undecodable netlink reply of type {ty}: {msg}")]
    Decode { ty: u16, msg: String },
}

impl Error {
    /// The errno standing for it (EBADMSG for an undecodable reply).
    pub fn errno(&self) -> Errno {
        match self {
            Error::Sys(e) => *e,
            Error::Decode { .. } => Errno::EBADMSG,
        }
    }
}

impl From<Error> for Errno {
    fn from(e: Error) -> Errno {
        e.errno()
    }
}

/// One message of a family no crate models: its type and payload, as
/// sent and as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub ty: u16,
    pub payload: Vec<u8>,
}

impl NetlinkSerializable for Msg {
    fn message_type(&self) -> u16 {
        self.ty
    }

    fn buffer_len(&self) -> usize {
        self.payload.len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        buffer[..self.payload.len()].copy_from_slice(&self.payload);
    }
}

impl NetlinkDeserializable for Msg {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(Msg { ty: header.message_type, payload: payload.to_vec() })
    }
}

/// The request netlink_diag and packet_diag share (struct
/// netlink_diag_req / packet_diag_req: family, protocol, pad, inode,
/// show flags, cookie), which netlink-packet-sock-diag does not model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagRequest {
    pub family: u8,
    pub protocol: u8,
    /// 0: every socket.
    pub ino: u32,
    pub show: u32,
    /// [u32::MAX; 2]: no cookie.
    pub cookie: [u32; 2],
}

impl DiagRequest {
    pub const LEN: usize = 20;

    /// A dump of every socket of `family`/`protocol` with `show`.
    pub fn dump(family: u8, protocol: u8, show: u32) -> Self {
        DiagRequest { family, protocol, ino: 0, show, cookie: [u32::MAX; 2] }
    }

    /// As a SOCK_DIAG_BY_FAMILY message.
    pub fn msg(&self) -> Msg {
        let mut payload = vec![0; Self::LEN];
        self.emit(&mut payload);
        Msg { ty: SOCK_DIAG_BY_FAMILY, payload }
    }
}

impl Emitable for DiagRequest {
    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, b: &mut [u8]) {
        b[0] = self.family;
        b[1] = self.protocol;
        b[2..4].fill(0);
        b[4..8].copy_from_slice(&self.ino.to_ne_bytes());
        b[8..12].copy_from_slice(&self.show.to_ne_bytes());
        b[12..16].copy_from_slice(&self.cookie[0].to_ne_bytes());
        b[16..20].copy_from_slice(&self.cookie[1].to_ne_bytes());
    }
}

/// The sock_diag message type every family's request and reply carries.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// An open netlink socket.
pub struct Netlink {
    sock: netlink_sys::Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket of `proto` in the calling thread's network namespace.
    pub fn open(proto: SockProtocol) -> Result<Self, Errno> {
        let sock = netlink_sys::Socket::new(proto as isize).map_err(|e| errno_of(&e))?;
        Ok(Self { sock, seq: 0x1000, buf: Vec::with_capacity(RECV_BUF) })
    }

    /// Send `req` with `flags` (NLM_F_ACK added unless it is a dump) and
    /// collect the replies of its sequence number: until NLMSG_DONE for a
    /// dump, until the ACK otherwise.
    pub fn exchange<I>(&mut self, req: I, flags: u16) -> Result<Vec<I>, Error>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
    {
        self.seq = self.seq.wrapping_add(1);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut header = NetlinkHeader::default();
        header.flags = if dump { flags } else { flags | NLM_F_ACK };
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(req));
        msg.finalize();
        let mut out_buf = vec![0u8; align(msg.buffer_len())];
        msg.serialize(&mut out_buf);
        let kernel = netlink_sys::SocketAddr::new(0, 0);
        retry(|| self.sock.send_to(&out_buf, &kernel, 0))?;

        let mut out = Vec::new();
        loop {
            self.buf.clear();
            let n = retry(|| self.sock.recv(&mut self.buf, libc::MSG_TRUNC))?;
            if n == 0 {
                return Err(Errno::ECONNRESET.into());
            }
            if n > self.buf.len() {
                return Err(Errno::EMSGSIZE.into());
            }
            let mut off = 0;
            while off < n {
                let rest = &self.buf[off..n];
                let nb = NetlinkBuffer::new_checked(&rest).map_err(|_| Errno::EBADMSG)?;
                let len = nb.length() as usize;
                let (ty, seq) = (nb.message_type(), nb.sequence_number());
                off += align(len);
                if seq != self.seq {
                    continue;
                }
                let m = NetlinkMessage::<I>::parse(&nb).map_err(|e| Error::Decode { ty, msg: e.to_string() })?;
                match m.payload {
                    NetlinkPayload::Error(e) => match e.code {
                        Some(c) if c.get() < 0 => return Err(Errno::from_raw(-c.get()).into()),
                        _ if !dump => return Ok(out),
                        _ => {}
                    },
                    NetlinkPayload::Done(d) if d.code < 0 => return Err(Errno::from_raw(-d.code).into()),
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(i) => out.push(i),
                    NetlinkPayload::Overrun(_) => return Err(Errno::ENOBUFS.into()),
                    _ => {}
                }
            }
        }
    }

    /// [`Netlink::exchange`] of a raw message: send `payload` as a message
    /// of type `ty`, the replies as they came. Any failure is an errno.
    pub fn request(&mut self, ty: u16, flags: u16, payload: &[u8]) -> Result<Vec<Msg>, Errno> {
        Ok(self.exchange(Msg { ty, payload: payload.to_vec() }, flags)?)
    }
}

/// `f` again while it is interrupted by a signal.
fn retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(errno_of(&e)),
            Ok(v) => return Ok(v),
        }
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Encode one attribute (rtattr / nlattr share the layout); a type with
/// NLA_F_NESTED keeps the flag.
pub fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
    let nla = DefaultNla::new(ty, data.to_vec());
    let mut v = vec![0; nla.buffer_len()];
    nla.emit(&mut v);
    v
}

/// Split an attribute stream into (type without flag bits, data),
/// stopping at the first malformed attribute.
pub fn attrs(buf: &[u8]) -> Vec<(u16, &[u8])> {
    NlasIterator::new(buf)
        .map_while(Result::ok)
        .map(|nla| {
            let (ty, len) = (nla.kind() & NLA_TYPE_MASK, usize::from(nla.length()));
            (ty, &nla.into_inner()[NLA_HEADER_SIZE..len])
        })
        .collect()
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
        assert_eq!(u16::from_ne_bytes([stream[18], stream[19]]), 0x8000 | 18);
        let a = attrs(&stream);
        assert_eq!(a[0], (3, &b"veth"[..]));
        assert_eq!(a[1].0, 49);
        assert_eq!(i32::from_ne_bytes(a[1].1.try_into().unwrap()), -1);
        assert_eq!(a[2].0, 18);
        assert_eq!(attrs(a[2].1)[0], (1, &b"veth"[..]));
        // An attribute claiming more than there is ends the stream.
        let mut bad = attr(1, b"ab");
        bad.extend_from_slice(&[200, 0, 2, 0]);
        assert_eq!(attrs(&bad).len(), 1);
    }

    #[test]
    fn align_rounds_to_four() {
        assert_eq!(align(0), 0);
        assert_eq!(align(1), 4);
        assert_eq!(align(17), 20);
    }

    #[test]
    fn diag_request_layout() {
        let r = DiagRequest { family: 16, protocol: 255, ino: 7, show: 0xa, cookie: [1, 2] };
        let m = r.msg();
        assert_eq!(m.ty, SOCK_DIAG_BY_FAMILY);
        let mut want = vec![16u8, 255, 0, 0];
        for w in [7u32, 0xa, 1, 2] {
            want.extend_from_slice(&w.to_ne_bytes());
        }
        assert_eq!(m.payload, want);
    }

    #[test]
    fn a_refused_request_is_its_errno_and_a_dump_ends() {
        let mut nl = Netlink::open(SockProtocol::NetlinkSockDiag).unwrap();
        // A family sock_diag has no handler for.
        let e = nl.request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &DiagRequest::dump(200, 0, 0).msg().payload);
        assert!(e.is_err(), "{e:?}");
        // The same socket carries on with the next exchange.
        let all = nl.exchange(DiagRequest::dump(libc::AF_NETLINK as u8, 255, 0).msg(), NLM_F_REQUEST | NLM_F_DUMP).unwrap();
        assert!(!all.is_empty());
    }
}
