//! The rings a dumped task maps: once the task's fds are recorded, each
//! VMA_AREA_SOCKET VMA (recorded by `mem::packet_ring` with the socket's
//! inode) gets the file id of its packet socket, as CRIU 4.2 writes it.
//! Refused by name: a mapping of a socket that is not a packet socket of
//! the task's fds (CRIU 4.2 restores a ring only through an fd of the
//! mapping task), and a mapping of part of a ring (the kernel maps a
//! ring only whole, from offset 0).
//!
//! A ring is carried only while no frame of it was used: the kernel's
//! place in a ring (the frame it fills or sends next) can't be read or
//! set, and a restore (ours or CRIU 4.2's) makes the ring anew, empty, at
//! its first frame. So the dump reads the ring's frame (or, for a v3 rx
//! ring, block) headers through a mapping of its own and refuses a ring
//! whose headers are not as the kernel made them.

use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use super::diag::{Diag, Ring};
use super::Dumped;
use crate::files::kind::State;
use crate::images::pb::{FdinfoEntry, MmEntry};
use crate::mem::vma::status;

/// Give each socket VMA of task `pid` (`mm`, fds `fdinfo`) its packet
/// socket's file id.
pub fn link_maps(pid: i32, mm: &mut MmEntry, fdinfo: &[FdinfoEntry], st: &State) -> Result<()> {
    let sockets = st.get::<Dumped>().map(|d| &d.sockets);
    for v in mm.vmas.iter_mut().filter(|v| v.status & status::AREA_SOCKET != 0) {
        let what = format!("VMA {:#x}-{:#x} of task {pid}", v.start, v.end);
        let ino = v.shmid;
        let Some(&(id, bytes)) = sockets.and_then(|s| s.get(&ino)) else {
            bail!("{what} maps socket:[{ino}], which is not a packet socket among the tree's fds: only packet rings are carried");
        };
        if !fdinfo.iter().any(|f| f.id == id) {
            bail!("{what} maps the ring of packet socket [{ino}], which the task holds no fd of: a restore maps a ring through the task's fd (as CRIU 4.2)");
        }
        if v.pgoff != 0 || v.end - v.start != bytes {
            bail!(
                "{what} maps {} bytes at offset {:#x} of the {bytes}-byte ring of packet socket [{ino}]: only a mapping of the whole ring can be restored",
                v.end - v.start,
                v.pgoff
            );
        }
        v.shmid = u64::from(id);
    }
    Ok(())
}

const TPACKET_V3: u32 = 2;
/// The header bytes read of each frame (every version's status and
/// lengths lie in them).
const HDR: usize = 32;

/// Where a used frame or block was found: (ring, index).
fn first_used(mem: &std::fs::File, base: u64, r: &Ring, v3_blocks: bool) -> Result<Option<usize>> {
    let mut h = [0u8; HDR];
    if v3_blocks {
        for b in 0..r.block_nr as u64 {
            mem.read_exact_at(&mut h, base + b * u64::from(r.block_size)).context("reading a ring block header")?;
            let word = |at: usize| u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            let seq = u64::from_ne_bytes(h[24..32].try_into().unwrap_or([0; 8]));
            // A fresh ring: block 0 open (sequence number 1), no block
            // handed to the user or holding a frame.
            let fresh_seq = u64::from(b == 0);
            if word(8) != 0 || word(12) != 0 || seq != fresh_seq {
                return Ok(Some(b as usize));
            }
        }
        return Ok(None);
    }
    let per_block = (r.block_size / r.frame_size.max(1)).max(1);
    for i in 0..r.frame_nr {
        let at = u64::from(i / per_block) * u64::from(r.block_size) + u64::from(i % per_block) * u64::from(r.frame_size);
        mem.read_exact_at(&mut h, base + at).context("reading a ring frame header")?;
        if h.iter().any(|&b| b != 0) {
            return Ok(Some(i as usize));
        }
    }
    Ok(None)
}

/// Refuse the rings of packet socket `fd` (`d`) once used (see above).
pub fn check_unused(fd: BorrowedFd<'_>, d: &Diag, who: &str) -> Result<()> {
    let (rx, tx) = (d.rx.unwrap_or_default(), d.tx.unwrap_or_default());
    let total = rx.bytes() + tx.bytes();
    if total == 0 {
        return Ok(());
    }
    let at = crate::sys::mm::map(0, total, libc::PROT_READ, libc::MAP_SHARED, Some(fd), 0)
        .with_context(|| format!("mapping the rings of {who} to read them"))?;
    let found = (|| -> Result<Vec<(&str, usize)>> {
        let mem = std::fs::File::open("/proc/self/mem").context("/proc/self/mem")?;
        let mut out = Vec::new();
        if d.rx.is_some() && let Some(i) = first_used(&mem, at, &rx, d.version == TPACKET_V3)? {
            out.push(("rx", i));
        }
        if d.tx.is_some() && let Some(i) = first_used(&mem, at + rx.bytes(), &tx, false)? {
            out.push(("tx", i));
        }
        Ok(out)
    })();
    crate::sys::mm::unmap(at, total).with_context(|| format!("unmapping the rings of {who}"))?;
    if let Some((ring, i)) = found.with_context(|| who.to_string())?.first() {
        let unit = if *ring == "rx" && d.version == TPACKET_V3 { "block" } else { "frame" };
        bail!(
            "{who}: its {ring} ring was used ({unit} {i} is not as the kernel made it): the kernel's place in a ring and its frames can't be carried, only a ring not used yet (a restore makes it anew, empty)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::pb::VmaEntry;

    fn mm(start: u64, len: u64, pgoff: u64, ino: u64) -> MmEntry {
        let v = VmaEntry { start, end: start + len, pgoff, shmid: ino, status: status::AREA_REGULAR | status::AREA_SOCKET, ..Default::default() };
        MmEntry { vmas: vec![v], ..Default::default() }
    }

    #[test]
    fn socket_vmas_get_their_file_id_or_are_refused() {
        let mut st = State::default();
        st.get_mut::<Dumped>().sockets.insert(77, (5, 0x6000));
        let fds = [FdinfoEntry { id: 5, fd: 3, ..Default::default() }];
        let mut ok = mm(0x10000, 0x6000, 0, 77);
        link_maps(1, &mut ok, &fds, &st).unwrap();
        assert_eq!(ok.vmas[0].shmid, 5);
        let e = link_maps(1, &mut mm(0x10000, 0x6000, 0, 78), &fds, &st).unwrap_err().to_string();
        assert!(e.contains("socket:[78]") && e.contains("not a packet socket"), "{e}");
        let e = link_maps(1, &mut mm(0x10000, 0x6000, 0, 77), &[], &st).unwrap_err().to_string();
        assert!(e.contains("holds no fd"), "{e}");
        let e = link_maps(1, &mut mm(0x10000, 0x1000, 0x1000, 77), &fds, &st).unwrap_err().to_string();
        assert!(e.contains("whole ring"), "{e}");
    }
}
