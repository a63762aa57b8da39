//! The IPC namespace, as CRIU 4.2 lays out its images: `var` (the ipc
//! sysctls, ipcns-var-ID.img), `shm` (SysV shared memory segments and
//! their pages, ipcns-shm-ID.img), `msg` (message queues and their
//! messages, ipcns-msg-ID.img), `sem` (semaphore sets and values,
//! ipcns-sem-ID.img).
//!
//! Every object is made again with its key, id (through the kernel's
//! *_next_id sysctls), owner and mode; the next_id sysctls themselves are
//! set last, to their dumped values.

mod msg;
mod sem;
mod shm;
mod var;

use anyhow::{bail, Context, Result};

use crate::images::kind::kinds;
use crate::images::pb::IpcDescEntry;
use crate::images::ImageDir;
use crate::ns::ids::Kind;
use crate::ns::kind::NsKind;
use crate::sys::sysvipc::Perm;

pub struct Ipc;

fn desc(id: i32, p: &Perm) -> IpcDescEntry {
    IpcDescEntry { key: p.key as u32, uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid, mode: p.mode, id: id as u32 }
}

fn perm(d: &IpcDescEntry) -> Perm {
    Perm { key: d.key as i32, uid: d.uid, gid: d.gid, cuid: d.cuid, cgid: d.cgid, mode: d.mode }
}

/// Make the next object of `kind` ("msg", "sem", "shm") get id `id`.
fn set_next_id(kind: &str, id: u32) -> Result<()> {
    let p = format!("/proc/sys/kernel/{kind}_next_id");
    std::fs::write(&p, id.to_string()).with_context(|| format!("can't write {id} to {p}"))
}

/// Check the kernel gave object `want` its id back.
fn check_id(kind: &str, got: i32, want: &IpcDescEntry) -> Result<()> {
    if got as u32 != want.id {
        bail!("SysV {kind} with key {:#x} got id {got}, not its dumped id {}", want.key, want.id);
    }
    Ok(())
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

impl NsKind for Ipc {
    fn kind(&self) -> Kind {
        Kind::Ipc
    }

    fn images(&self, id: u32) -> Vec<String> {
        let id = u64::from(id);
        vec![kinds::ipc_var().file_name(id), kinds::ipcns_shm().file_name(id), kinds::ipcns_msg().file_name(id), kinds::ipcns_sem().file_name(id)]
    }

    fn dump(&self, dir: &ImageDir, id: u32, pages_id: &mut u32) -> Result<()> {
        let v = var::read()?;
        var::write_image(dir, id, &v)?;
        shm::dump(dir, id, v.shm_rmid_forced != 0, pages_id)?;
        msg::dump(dir, id, v.msg_ctlmax as usize)?;
        sem::dump(dir, id)
    }

    fn prepare(&self, dir: &ImageDir, id: u32) -> Result<()> {
        let v = var::load(dir, id)?;
        var::apply(&v)?;
        shm::restore(dir, id, v.shm_rmid_forced != 0)?;
        msg::restore(dir, id)?;
        sem::restore(dir, id)?;
        var::apply_next_ids(&v)
    }
}

#[cfg(test)]
mod tests;
