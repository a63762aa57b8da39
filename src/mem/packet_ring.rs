//! Packet-socket rings mapped by a task (VMA_AREA_SOCKET), as CRIU 4.2
//! records them: at dump the VMA is recorded with the socket's inode in
//! `shmid` (the packet socket kind replaces it with the socket's file id
//! once the task's fds are recorded, `sockets::packet::ring`); at restore
//! the restorer maps the task's restored socket there, shared, from
//! offset 0 (the kernel maps a ring only whole). The ring's frames are not
//! carried: the new ring starts empty.


use anyhow::{Context, Result};

use super::premap::FileMap;
use super::vma::status;
use crate::images::pb::{MmEntry, VmaEntry};
use crate::proc::maps::MapEntry;

/// Whether mapping `m` is of a socket.
pub fn is_socket(m: &MapEntry) -> bool {
    m.name.starts_with("socket:[")
}

/// Record socket mapping `m` of task `pid` in `e`: its inode stands in
/// `shmid` until the socket's file id is known.
pub fn dump_vma(pid: i32, m: &MapEntry, e: &mut VmaEntry) -> Result<()> {
    let path = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    e.fdflags = Some(super::memfd::link_access(&path).with_context(|| format!("VMA {:#x}-{:#x} of task {pid}", m.start, m.end))?);
    e.shmid = m.inode;
    e.pgoff = m.offset;
    e.flags |= if m.shared { libc::MAP_SHARED } else { libc::MAP_PRIVATE } as u32;
    e.status = status::AREA_REGULAR | status::AREA_SOCKET;
    Ok(())
}

/// The restorer's mappings of the rings task `mm` maps: each VMA gets a
/// copy of the restored socket of its file id (`opened`: the tree's
/// descriptions by file id).
pub fn file_maps(mm: &MmEntry, opened: &crate::files::restore::Opened) -> Result<Vec<FileMap>> {
    let mut out = Vec::new();
    for v in mm.vmas.iter().filter(|v| v.status & status::AREA_SOCKET != 0) {
        let what = || format!("the packet ring mapped at {:#x}-{:#x}", v.start, v.end);
        let id = u32::try_from(v.shmid).with_context(|| format!("{}: file id {}", what(), v.shmid))?;
        let sk = opened.get(id).with_context(|| format!("{}: its socket (file {id}) is not opened for the task", what()))?;
        let fd = sk.try_clone().with_context(|| format!("{}: copying its socket", what()))?;
        out.push(FileMap {
            to: v.start,
            len: v.end - v.start,
            prot: v.prot as i32,
            flags: (v.flags & (libc::MAP_SHARED | libc::MAP_PRIVATE | libc::MAP_LOCKED) as u32) as i32,
            pgoff: v.pgoff,
            fd,
            madv: v.madv.unwrap_or(0),
            guards: Vec::new(),
        });
    }
    Ok(out)
}
