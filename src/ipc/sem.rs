//! ipcns-sem-ID.img: each semaphore set (`ipc_sem_entry`: desc, nsems)
//! followed by its values, nsems u16, zero-padded to 8 bytes. Undo lists
//! (semadj) are not carried, as in CRIU 4.2.

use anyhow::{Context, Result};

use super::{check_id, desc, perm, round8, set_next_id};
use crate::images::kind::kinds;
use crate::images::pb::IpcSemEntry;
use crate::images::{ImageDir, ImageReader, ImageWriter};
use crate::sys::sysvipc;

pub fn dump(dir: &ImageDir, ns: u32) -> Result<()> {
    let name = kinds::ipcns_sem().file_name(u64::from(ns));
    // (No set, no image: as CRIU 4.2.)
    let mut img = None;
    let max = sysvipc::sem_max_index().context("SEM_INFO")?;
    for i in 0..=max {
        let Some(s) = sysvipc::sem_stat(i).with_context(|| format!("SEM_STAT {i}"))? else { continue };
        let vals = sysvipc::sem_getall(s.id, s.nsems as usize).with_context(|| format!("GETALL of SysV semaphore set {}", s.id))?;
        let w = match &mut img {
            Some(w) => w,
            None => img.insert(ImageWriter::create(dir, &name, kinds::ipcns_sem())?),
        };
        w.write(&IpcSemEntry { desc: desc(s.id, &s.perm), nsems: s.nsems as u32 })?;
        let mut raw: Vec<u8> = vals.iter().flat_map(|v| v.to_ne_bytes()).collect();
        raw.resize(round8(raw.len()), 0);
        w.payload(&raw)?;
    }
    if let Some(w) = img {
        w.finish()?;
    }
    Ok(())
}

pub fn restore(dir: &ImageDir, ns: u32) -> Result<()> {
    let name = kinds::ipcns_sem().file_name(u64::from(ns));
    if !dir.exists(&name) {
        return Ok(());
    }
    let mut r = ImageReader::open_kind(dir, &name, kinds::ipcns_sem())?;
    while let Some(s) = r.next_entry()? {
        let d = s.desc;
        let n = s.nsems as usize;
        let raw = r.payload(round8(n * 2) as u64)?;
        let vals: Vec<u16> = raw[..n * 2].chunks(2).map(|c| u16::from_ne_bytes([c[0], c[1]])).collect();
        set_next_id("sem", d.id)?;
        let id = sysvipc::sem_get(d.key as i32, s.nsems as i32, d.mode).with_context(|| format!("semget key {:#x} for set {}", d.key, d.id))?;
        check_id("semaphore set", id, &d)?;
        sysvipc::sem_set(id, &perm(&d)).with_context(|| format!("IPC_SET on SysV semaphore set {id}"))?;
        sysvipc::sem_setall(id, &vals).with_context(|| format!("SETALL on SysV semaphore set {id}"))?;
    }
    Ok(())
}
