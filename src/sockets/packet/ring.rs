//! The rings a dumped task maps: once the task's fds are recorded, each
//! VMA_AREA_SOCKET VMA (recorded by `mem::packet_ring` with the socket's
//! inode) gets the file id of its packet socket, as CRIU 4.2 writes it.
//! Refused by name: a mapping of a socket that is not a packet socket of
//! the task's fds (CRIU 4.2 restores a ring only through an fd of the
//! mapping task), and a mapping of part of a ring (the kernel maps a
//! ring only whole, from offset 0).

use anyhow::{bail, Result};

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
