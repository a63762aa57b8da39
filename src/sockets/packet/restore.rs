//! A packet socket made again from its record: created with its type and
//! protocol, bound to the interface of the same index (a SOCK_PACKET one
//! by that interface's name), its SOL_PACKET options set in the order the
//! kernel needs (version and reserve before the rings, the rings before
//! the fanout group), its memberships added (last listed first, so the
//! kernel lists them as before), then its generic socket options.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};

use super::{opt, FANOUT_UNIQUEID, SOCK_PACKET};
use crate::images::pb::{PacketRing, PacketSockEntry};
use crate::sys::packet as pk;
use crate::sys::sockopt_raw::{self as raw, set_int};

fn set(fd: BorrowedFd<'_>, name: i32, what: &str, val: u32, who: &str) -> Result<()> {
    set_int(fd, libc::SOL_PACKET, name, val as i32).with_context(|| format!("setsockopt({what}, {val}) on {who}"))
}

/// tpacket_req3: block size and count, frame size and count, block
/// timeout, private area size, features.
fn ring_bytes(r: &PacketRing) -> Vec<u8> {
    [r.block_size, r.block_nr, r.frame_size, r.frame_nr, r.retire_tmo, r.sizeof_priv, r.features].iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// packet_mreq_max: ifindex, type, address length, 32 address bytes.
fn mreq_bytes(index: u32, ty: u32, addr: &[u8]) -> Result<Vec<u8>> {
    if addr.len() > 32 {
        bail!("a membership address of {} bytes (at most 32)", addr.len());
    }
    let mut b = Vec::with_capacity(40);
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&(ty as u16).to_ne_bytes());
    b.extend_from_slice(&(addr.len() as u16).to_ne_bytes());
    b.extend_from_slice(addr);
    b.resize(40, 0);
    Ok(b)
}

/// Bind to interface `ifindex` of this network namespace (0: any).
fn bind(fd: BorrowedFd<'_>, pe: &PacketSockEntry, who: &str) -> Result<()> {
    let index = i32::try_from(pe.ifindex).with_context(|| format!("{who}: interface index {}", pe.ifindex))?;
    if pe.r#type == SOCK_PACKET {
        if index == 0 {
            return Ok(());
        }
        let name = pk::if_name(fd, index).with_context(|| format!("{who} was bound to interface {index}, which is not here"))?;
        return pk::bind_spkt(fd, &name).with_context(|| format!("binding {who} to interface {name} (index {index})"));
    }
    pk::bind_ll(fd, 0, index).with_context(|| {
        if index == 0 { format!("binding {who}") } else { format!("binding {who} to interface {index} (is there one of that index here?)") }
    })
}

/// The socket of record `pe`.
pub fn open(pe: &PacketSockEntry) -> Result<OwnedFd> {
    let who = format!("packet socket (file {})", pe.id);
    let proto = i32::try_from(pe.protocol).with_context(|| format!("{who}: protocol {}", pe.protocol))?;
    let sk = raw::socket(libc::AF_PACKET, pe.r#type as i32, proto).with_context(|| format!("creating {who} (type {}, protocol {:#x})", pe.r#type, u16::from_be(proto as u16)))?;
    let fd = sk.as_fd();
    bind(fd, pe, &who)?;
    if pe.r#type != SOCK_PACKET {
        set(fd, opt::VERSION, "PACKET_VERSION", pe.version, &who)?;
        set(fd, opt::RESERVE, "PACKET_RESERVE", pe.reserve, &who)?;
        set(fd, opt::TIMESTAMP, "PACKET_TIMESTAMP", pe.timestamp, &who)?;
        set(fd, opt::COPY_THRESH, "PACKET_COPY_THRESH", pe.copy_thresh, &who)?;
        for (on, name, what) in [
            (pe.aux_data, opt::AUXDATA, "PACKET_AUXDATA"),
            (pe.orig_dev, opt::ORIGDEV, "PACKET_ORIGDEV"),
            (pe.vnet_hdr, opt::VNET_HDR, "PACKET_VNET_HDR"),
            (pe.loss, opt::LOSS, "PACKET_LOSS"),
        ] {
            if on {
                set(fd, name, what, 1, &who)?;
            }
        }
        for m in pe.mclist.iter().rev() {
            let b = mreq_bytes(m.index, m.r#type, &m.addr).with_context(|| who.clone())?;
            raw::set_bytes(fd, libc::SOL_PACKET, opt::ADD_MEMBERSHIP, &b)
                .with_context(|| format!("PACKET_ADD_MEMBERSHIP (type {}, interface {}) on {who}", m.r#type, m.index))?;
        }
        for (r, name, what) in [(&pe.rx_ring, opt::RX_RING, "PACKET_RX_RING"), (&pe.tx_ring, opt::TX_RING, "PACKET_TX_RING")] {
            if let Some(r) = r {
                raw::set_bytes(fd, libc::SOL_PACKET, name, &ring_bytes(r)).with_context(|| format!("setsockopt({what}) on {who}: {r:?}"))?;
            }
        }
        if let Some(f) = pe.fanout.filter(|&f| f != u32::MAX) {
            set(fd, opt::FANOUT, "PACKET_FANOUT", f & !FANOUT_UNIQUEID, &who).with_context(|| format!("joining fanout group {}", f & 0xffff))?;
        }
    } else if !pe.mclist.is_empty() || pe.rx_ring.is_some() || pe.tx_ring.is_some() || pe.fanout.is_some_and(|f| f != u32::MAX) {
        bail!("{who} is a SOCK_PACKET socket whose record has memberships, rings or a fanout group, which such a socket can't have");
    }
    crate::sockets::opts::restore(fd, &pe.opts, &who)?;
    Ok(sk)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_layouts() {
        let r = crate::images::pb::PacketRing { block_size: 4096, block_nr: 2, frame_size: 2048, frame_nr: 4, retire_tmo: 5, sizeof_priv: 6, features: 7 };
        let b = super::ring_bytes(&r);
        assert_eq!(b.len(), 28);
        assert_eq!(u32::from_ne_bytes(b[16..20].try_into().unwrap()), 5);
        let m = super::mreq_bytes(1, 0, &[1, 0, 0x5e, 0, 0, 1]).unwrap();
        assert_eq!((m.len(), u16::from_ne_bytes([m[6], m[7]]), m[10]), (40, 6, 0x5e));
        assert!(super::mreq_bytes(1, 0, &[0; 33]).is_err());
    }
}
