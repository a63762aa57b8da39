//! packet_diag: every packet socket of our network namespace (type,
//! protocol, interface, version, reserve, copy threshold, timestamp
//! source, flag options, multicast memberships, ring parameters, fanout,
//! owner, memory counters, filter length), by inode.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use nix::sys::socket::SockProtocol;

use crate::sockets::netlink::{attrs, DiagRequest, Netlink, NLM_F_DUMP, NLM_F_REQUEST, SOCK_DIAG_BY_FAMILY};

/// PACKET_SHOW_INFO | MCLIST | RING_CFG | FANOUT | MEMINFO | FILTER.
const SHOW_ALL: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20;
const DIAG_INFO: u16 = 0;
const DIAG_MCLIST: u16 = 1;
const DIAG_RX_RING: u16 = 2;
const DIAG_TX_RING: u16 = 3;
const DIAG_FANOUT: u16 = 4;
const DIAG_UID: u16 = 5;
const DIAG_MEMINFO: u16 = 6;
const DIAG_FILTER: u16 = 7;

/// packet_diag_info.pdi_flags bits.
pub const PDI_RUNNING: u32 = 0x1;
pub const PDI_AUXDATA: u32 = 0x2;
pub const PDI_ORIGDEV: u32 = 0x4;
pub const PDI_VNETHDR: u32 = 0x8;
pub const PDI_LOSS: u32 = 0x10;

/// One multicast membership (packet_diag_mclist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mc {
    pub index: u32,
    /// How many times it was added.
    pub count: u32,
    pub ty: u16,
    pub addr: Vec<u8>,
}

/// A ring's request parameters (packet_diag_ring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    pub retire_tmo: u32,
    pub sizeof_priv: u32,
    pub features: u32,
}

impl Ring {
    /// The bytes the ring takes in a mapping of the socket.
    pub fn bytes(&self) -> u64 {
        u64::from(self.block_size) * u64::from(self.block_nr)
    }
}

/// What packet_diag tells about one socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diag {
    pub ino: u32,
    pub ty: u32,
    /// The protocol in network order, as socket(2) takes it.
    pub proto_be: u16,
    pub ifindex: u32,
    pub version: u32,
    pub reserve: u32,
    pub copy_thresh: u32,
    pub tstamp: u32,
    pub flags: u32,
    pub mclist: Vec<Mc>,
    pub rx: Option<Ring>,
    pub tx: Option<Ring>,
    /// id | type << 16 (no flags: packet_diag leaves them out).
    pub fanout: Option<u32>,
    pub uid: Option<u32>,
    /// SK_MEMINFO_* counters (the first: receive memory in use).
    pub meminfo: Vec<u32>,
    /// Instructions of the attached classic filter (None: not listed).
    pub filter_len: Option<usize>,
}

/// A dump of every packet socket with everything packet_diag shows (the
/// shared [`DiagRequest`]: packet_diag_req has netlink_diag_req's layout).
fn request() -> DiagRequest {
    DiagRequest::dump(libc::AF_PACKET as u8, 0, SHOW_ALL)
}

fn word(b: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_ne_bytes(b.get(at..at + 4).context("short packet_diag answer")?.try_into()?))
}

fn ring(b: &[u8]) -> Result<Ring> {
    Ok(Ring {
        block_size: word(b, 0)?,
        block_nr: word(b, 4)?,
        frame_size: word(b, 8)?,
        frame_nr: word(b, 12)?,
        retire_tmo: word(b, 16)?,
        sizeof_priv: word(b, 20)?,
        features: word(b, 24)?,
    })
}

/// packet_diag_mclist entries: index, count, type, alen, 32 address bytes.
fn mclist(b: &[u8]) -> Result<Vec<Mc>> {
    const LEN: usize = 44;
    if !b.len().is_multiple_of(LEN) {
        bail!("packet_diag mclist of {} bytes", b.len());
    }
    b.chunks_exact(LEN)
        .map(|c| {
            let alen = usize::from(u16::from_ne_bytes([c[10], c[11]]));
            if alen > 32 {
                bail!("packet_diag mclist address of {alen} bytes");
            }
            Ok(Mc { index: word(c, 0)?, count: word(c, 4)?, ty: u16::from_ne_bytes([c[8], c[9]]), addr: c[12..12 + alen].to_vec() })
        })
        .collect()
}

/// One packet_diag_msg and its attributes.
pub fn parse(p: &[u8]) -> Result<Diag> {
    if p.len() < 16 {
        bail!("short packet_diag answer ({} bytes)", p.len());
    }
    // pdiag_num is the protocol in host order: back to network order.
    let mut d = Diag { ty: u32::from(p[1]), proto_be: u16::from_ne_bytes([p[2], p[3]]).to_be(), ino: word(p, 4)?, ..Default::default() };
    let mut info = false;
    for (ty, data) in attrs(&p[16..]) {
        match ty {
            DIAG_INFO => {
                d.ifindex = word(data, 0)?;
                d.version = word(data, 4)?;
                d.reserve = word(data, 8)?;
                d.copy_thresh = word(data, 12)?;
                d.tstamp = word(data, 16)?;
                d.flags = word(data, 20)?;
                info = true;
            }
            DIAG_MCLIST => d.mclist = mclist(data)?,
            DIAG_RX_RING => d.rx = Some(ring(data)?),
            DIAG_TX_RING => d.tx = Some(ring(data)?),
            DIAG_FANOUT => d.fanout = Some(word(data, 0)?),
            DIAG_UID => d.uid = Some(word(data, 0)?),
            DIAG_MEMINFO => d.meminfo = data.chunks_exact(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DIAG_FILTER => d.filter_len = Some(data.len() / 8),
            _ => {}
        }
    }
    if !info {
        bail!("packet_diag gave no PACKET_DIAG_INFO for socket {}", d.ino);
    }
    Ok(d)
}

/// Every packet socket of our network namespace, by inode.
pub fn all() -> Result<HashMap<u32, Diag>> {
    let mut nl = Netlink::open(SockProtocol::NetlinkSockDiag).context("sock_diag netlink")?;
    let msgs = nl.exchange(request().msg(), NLM_F_REQUEST | NLM_F_DUMP).context("packet_diag dump")?;
    let mut out = HashMap::new();
    for m in msgs.iter().filter(|m| m.ty == SOCK_DIAG_BY_FAMILY) {
        let d = parse(&m.payload).context("packet_diag dump")?;
        out.insert(d.ino, d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::netlink::attr;

    #[test]
    fn parses_a_message() {
        let mut p = vec![17u8, 3];
        p.extend_from_slice(&0x88b5u16.to_ne_bytes());
        p.extend_from_slice(&99u32.to_ne_bytes());
        p.extend_from_slice(&[0xff; 8]);
        let info: Vec<u8> = [1u32, 2, 4, 8, 64, PDI_RUNNING | PDI_LOSS].iter().flat_map(|v| v.to_ne_bytes()).collect();
        p.extend(attr(DIAG_INFO, &info));
        let mut mc = Vec::new();
        mc.extend_from_slice(&1u32.to_ne_bytes());
        mc.extend_from_slice(&2u32.to_ne_bytes());
        mc.extend_from_slice(&0u16.to_ne_bytes());
        mc.extend_from_slice(&6u16.to_ne_bytes());
        let mut addr = [0u8; 32];
        addr[..6].copy_from_slice(&[1, 0, 0x5e, 1, 2, 3]);
        mc.extend_from_slice(&addr);
        p.extend(attr(DIAG_MCLIST, &mc));
        let r: Vec<u8> = [4096u32, 2, 2048, 4, 0, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
        p.extend(attr(DIAG_RX_RING, &r));
        p.extend(attr(DIAG_FANOUT, &0x0001_4242u32.to_ne_bytes()));
        p.extend(attr(DIAG_MEMINFO, &[7u32, 1, 0].iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<u8>>()));
        let d = parse(&p).unwrap();
        assert_eq!((d.ino, d.ty, d.proto_be), (99, 3, 0x88b5u16.to_be()));
        assert_eq!((d.ifindex, d.version, d.reserve, d.copy_thresh, d.tstamp), (1, 2, 4, 8, 64));
        assert_eq!(d.mclist, vec![Mc { index: 1, count: 2, ty: 0, addr: vec![1, 0, 0x5e, 1, 2, 3] }]);
        assert_eq!(d.rx.map(|r| r.bytes()), Some(8192));
        assert_eq!((d.tx, d.fanout, d.meminfo.first()), (None, Some(0x1_4242), Some(&7)));
        assert!(parse(&p[..16]).is_err());
    }
}
