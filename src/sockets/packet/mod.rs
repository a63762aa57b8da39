//! Packet sockets (AF_PACKET: SOCK_RAW, SOCK_DGRAM and the old
//! SOCK_PACKET), as CRIU 4.2 records them (packet_sock_entry in
//! files.img, fd type PACKETSK): type, protocol, bound interface (by
//! index), PACKET_VERSION, RESERVE, TIMESTAMP, COPY_THRESH, the AUXDATA,
//! ORIGDEV, VNET_HDR and LOSS flags, multicast memberships, fanout, the rx
//! and tx ring parameters and the generic socket options (the classic BPF
//! filter among them). Read through packet_diag (`diag`) and, for the
//! fanout's flags (which packet_diag leaves out and CRIU 4.2 loses),
//! getsockopt(PACKET_FANOUT). A ring the task maps is recorded as a
//! VMA_AREA_SOCKET VMA naming the socket's file (`ring`); the restore maps
//! the new socket's ring there. A ring's frames and the kernel's place in
//! it are not carried (CRIU 4.2 does not either): a ring is carried only
//! while unused, and frames waiting in the receive queue are refused at
//! dump, as are a pending error, options the record
//! has no place for (PACKET_QDISC_BYPASS, TX_HAS_OFF, IGNORE_OUTGOING, a
//! virtio header size other than PACKET_VNET_HDR's), a fanout group that
//! steers through a BPF program, a socket whose interface is down or gone, and
//! sockets of another network namespace.

mod diag;
mod restore;
pub mod ring;

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{bail, Context, Result};

use crate::files::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{FdTypes, FileEntry, PacketMclist, PacketRing, PacketSockEntry};
use crate::sys::sockopt_raw::{get_int, poll_now, proto_name};

/// The packet socket kind (FD_TYPES PACKETSK).
pub struct PacketSk;

/// SOL_PACKET option numbers.
pub(crate) mod opt {
    pub const ADD_MEMBERSHIP: i32 = 1;
    pub const RX_RING: i32 = 5;
    pub const COPY_THRESH: i32 = 7;
    pub const AUXDATA: i32 = 8;
    pub const ORIGDEV: i32 = 9;
    pub const VERSION: i32 = 10;
    pub const RESERVE: i32 = 12;
    pub const TX_RING: i32 = 13;
    pub const LOSS: i32 = 14;
    pub const VNET_HDR: i32 = 15;
    pub const TIMESTAMP: i32 = 17;
    pub const FANOUT: i32 = 18;
    pub const TX_HAS_OFF: i32 = 19;
    pub const QDISC_BYPASS: i32 = 20;
    pub const IGNORE_OUTGOING: i32 = 23;
    pub const VNET_HDR_SZ: i32 = 24;
}

/// The old SOCK_PACKET type.
pub const SOCK_PACKET: u32 = 10;
/// Fanout types whose steering program can't be read back.
const FANOUT_CBPF: u32 = 6;
const FANOUT_EBPF: u32 = 7;
/// PACKET_FANOUT_FLAG_UNIQUEID in the flags byte (bits 24..32) of the
/// fanout word: the group's id was picked by the kernel, and a restore
/// joins it by that id.
const FANOUT_UNIQUEID: u32 = 0x20 << 24;
/// The virtio header size PACKET_VNET_HDR sets.
const VNET_HDR_LEN: i32 = 10;

/// What the dump keeps across fds: packet_diag's list (read once) and the
/// packet sockets recorded, by inode: (file id, bytes of its rings).
#[derive(Default)]
pub(crate) struct Dumped {
    listed: Option<HashMap<u32, diag::Diag>>,
    pub(crate) sockets: HashMap<u64, (u32, u64)>,
}

/// Refuse what a restore would lose: another network namespace, frames
/// waiting to be read, a pending error.
fn check_state(fd: BorrowedFd<'_>, who: &str) -> Result<()> {
    let ours = std::fs::metadata("/proc/self/ns/net").context("our network namespace")?.ino();
    if crate::sys::nlsock::netns_ino(fd).with_context(|| format!("the network namespace of {who}"))? != ours {
        bail!("{who} lives in another network namespace: not supported");
    }
    let ev = poll_now(fd, libc::POLLIN).with_context(|| format!("poll of {who}"))?;
    if ev & libc::POLLIN != 0 {
        bail!("{who} has frames waiting to be read (in its receive queue or rx ring): they can't be carried (CRIU 4.2 drops them)");
    }
    if ev & libc::POLLERR != 0 {
        bail!("{who} has a pending error: it can't be carried");
    }
    Ok(())
}

/// Refuse the SOL_PACKET options the record has no place for.
fn check_options(fd: BorrowedFd<'_>, who: &str) -> Result<()> {
    for (name, what) in
        [(opt::QDISC_BYPASS, "PACKET_QDISC_BYPASS"), (opt::TX_HAS_OFF, "PACKET_TX_HAS_OFF"), (opt::IGNORE_OUTGOING, "PACKET_IGNORE_OUTGOING")]
    {
        if get_int(fd, libc::SOL_PACKET, name).unwrap_or(0) != 0 {
            bail!("{who} has {what} set, which the image has no place for");
        }
    }
    let sz = get_int(fd, libc::SOL_PACKET, opt::VNET_HDR_SZ).unwrap_or(0);
    if sz != 0 && sz != VNET_HDR_LEN {
        bail!("{who} has a virtio header of {sz} bytes (PACKET_VNET_HDR_SZ): the image only holds PACKET_VNET_HDR's {VNET_HDR_LEN}");
    }
    Ok(())
}

/// The record's memberships: each listed as often as it was added (the
/// kernel counts repeated adds of one membership).
fn mclist(d: &diag::Diag, who: &str) -> Result<Vec<PacketMclist>> {
    let mut out = Vec::new();
    for m in &d.mclist {
        let addr = match m.ty {
            // PACKET_MR_MULTICAST, PACKET_MR_UNICAST: an address.
            0 | 3 => m.addr.clone(),
            // PACKET_MR_PROMISC, PACKET_MR_ALLMULTI.
            1 | 2 => Vec::new(),
            t => bail!("{who} has a membership of unknown type {t} on interface {}", m.index),
        };
        for _ in 0..m.count {
            out.push(PacketMclist { index: m.index, r#type: u32::from(m.ty), addr: addr.clone() });
        }
    }
    Ok(out)
}

/// The fanout word to record: id, type and flags (from getsockopt, which
/// has the flags packet_diag leaves out), the unique-id flag dropped.
fn fanout(fd: BorrowedFd<'_>, d: &diag::Diag, who: &str) -> Result<Option<u32>> {
    let Some(listed) = d.fanout else { return Ok(None) };
    let val = get_int(fd, libc::SOL_PACKET, opt::FANOUT).with_context(|| format!("getsockopt(PACKET_FANOUT) of {who}"))? as u32;
    if val & 0x00ff_ffff != listed & 0x00ff_ffff {
        bail!("{who}: getsockopt(PACKET_FANOUT) gives {val:#x}, packet_diag {listed:#x}");
    }
    let ty = (val >> 16) & 0xff;
    if ty == FANOUT_CBPF || ty == FANOUT_EBPF {
        bail!("{who} is in fanout group {} steered by a BPF program (type {ty}), which can't be read back", val & 0xffff);
    }
    Ok(Some(val & !FANOUT_UNIQUEID))
}

fn ring(r: &diag::Ring) -> PacketRing {
    PacketRing {
        block_size: r.block_size,
        block_nr: r.block_nr,
        frame_size: r.frame_size,
        frame_nr: r.frame_nr,
        retire_tmo: r.retire_tmo,
        sizeof_priv: r.sizeof_priv,
        features: r.features,
    }
}

/// The record of packet socket `fd` (file `id`), from what packet_diag
/// lists of it.
fn entry(fd: BorrowedFd<'_>, id: u32, file_flags: u32, d: &diag::Diag, who: &str) -> Result<PacketSockEntry> {
    check_state(fd, who)?;
    if (d.ifindex as i32) < 0 {
        bail!("{who} was bound to an interface that is gone: it can't be carried");
    }
    if d.flags & diag::PDI_RUNNING == 0 && d.proto_be != 0 && d.ifindex != 0 {
        bail!("{who} is bound to interface {} but not receiving (the interface is down or gone): it can't be carried", d.ifindex);
    }
    let spkt = d.ty == SOCK_PACKET;
    if !spkt {
        check_options(fd, who)?;
    }
    ring::check_unused(fd, d, who)?;
    let opts = crate::sockets::opts::dump(fd).with_context(|| who.to_string())?;
    if let Some(n) = d.filter_len.filter(|&n| n != 0 && n != opts.so_filter.len()) {
        bail!("{who}: packet_diag lists a filter of {n} instructions, SO_GET_FILTER gave {}", opts.so_filter.len());
    }
    Ok(PacketSockEntry {
        id,
        r#type: d.ty,
        protocol: u32::from(d.proto_be),
        flags: file_flags,
        ifindex: d.ifindex,
        version: d.version,
        reserve: d.reserve,
        aux_data: d.flags & diag::PDI_AUXDATA != 0,
        orig_dev: d.flags & diag::PDI_ORIGDEV != 0,
        vnet_hdr: d.flags & diag::PDI_VNETHDR != 0,
        loss: d.flags & diag::PDI_LOSS != 0,
        timestamp: d.tstamp,
        copy_thresh: d.copy_thresh,
        mclist: mclist(d, who)?,
        fanout: if spkt { None } else { fanout(fd, d, who)? },
        rx_ring: d.rx.as_ref().map(ring),
        tx_ring: d.tx.as_ref().map(ring),
        ns_id: Some(crate::ns::sock_net_ns_id()),
        opts,
        ..Default::default()
    })
}

impl FdKind for PacketSk {
    fn name(&self) -> &'static str {
        "packet socket"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Packetsk
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_socket() && proto_name(&p.proc_path()).is_ok_and(|n| n == "PACKET")
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let ino = p.md.ino();
        let ours = p.dup()?;
        let who = format!("packet socket {ino:#x} ({})", p.who());
        let st = cx.fds.state.get_mut::<Dumped>();
        if st.listed.is_none() {
            st.listed = Some(diag::all().context("listing the packet sockets")?);
        }
        let d = st
            .listed
            .as_ref()
            .and_then(|all| all.get(&(ino as u32)))
            .with_context(|| format!("{who} is not listed by packet_diag"))?;
        let e = entry(ours.as_fd(), id, p.flags, d, &who)?;
        let bytes = d.rx.map_or(0, |r| r.bytes()) + d.tx.map_or(0, |r| r.bytes());
        st.sockets.insert(ino, (id, bytes));
        Ok(FileEntry { r#type: FdTypes::Packetsk as i32, id, psk: Some(e), ..Default::default() })
    }

    fn open(&self, fe: &FileEntry, _fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let pe = fe.psk.as_ref().with_context(|| format!("file {} has no packet socket entry", fe.id))?;
        restore::open(pe).map(Some)
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.psk.as_ref().map(|p| p.flags)
    }
}

#[cfg(test)]
mod tests;
