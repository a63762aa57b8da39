//! ipcns-shm-ID.img: each SysV shared memory segment (`ipc_shm_entry`:
//! desc, size, in_pagemaps) and its contents as CRIU 4.2 writes them:
//! pagemap-shmem-SHMID.img (SHMID = the segment's IPC id, the inode of
//! its shm file) naming a pages-N.img of its data pages. Images of older
//! CRIUs carry the contents raw after the entry (size rounded up to 4).
//! Segments are read through a read-only attach in criu's process.
//! Hugetlb segments are refused by name; so is a segment in a namespace
//! with kernel.shm_rmid_forced set (the restore makes it from criu's
//! thread, whose exit would destroy it); attaches in tasks' memory are
//! refused by the VMA dump.

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use super::{check_id, desc, perm, set_next_id};
use crate::images::kind::kinds;
use crate::images::pagemap::PAGE_SIZE;
use crate::images::pb::IpcShmEntry;
use crate::images::{ImageDir, ImageReader, ImageWriter};
use crate::sys::sysvipc::{self, ShmAttach};

/// The shm file of an attach (of a `size`-byte segment).
fn file_of(a: &ShmAttach, size: u64, write: bool) -> Result<File> {
    let end = a.addr as u64 + size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let p = format!("/proc/self/map_files/{:x}-{end:x}", a.addr);
    std::fs::OpenOptions::new().read(true).write(write).open(&p).with_context(|| format!("can't open {p}"))
}

pub fn dump(dir: &ImageDir, ns: u32, rmid_forced: bool, pages_id: &mut u32) -> Result<()> {
    let name = kinds::ipcns_shm().file_name(u64::from(ns));
    // (No segment, no image: as CRIU 4.2.)
    let mut img = None;
    let max = sysvipc::shm_max_index().context("SHM_INFO")?;
    for i in 0..=max {
        let Some(s) = sysvipc::shm_stat(i).with_context(|| format!("SHM_STAT {i}"))? else { continue };
        let what = format!("SysV shared memory segment {} (key {:#x}, {} bytes) of ipc namespace {ns}", s.id, s.perm.key, s.size);
        if rmid_forced {
            bail!("{what}: kernel.shm_rmid_forced is set in the namespace: such segments are not supported yet");
        }
        let a = ShmAttach::new(s.id, true).with_context(|| format!("can't attach {what}"))?;
        let f = file_of(&a, s.size as u64, false).with_context(|| what.clone())?;
        if crate::mem::hugetlb::is_hugetlb(&f)? {
            bail!("{what}: hugetlb SysV shared memory is not supported yet");
        }
        let w = match &mut img {
            Some(w) => w,
            None => img.insert(ImageWriter::create(dir, &name, kinds::ipcns_shm())?),
        };
        w.write(&IpcShmEntry { desc: desc(s.id, &s.perm), size: s.size as u64, in_pagemaps: Some(true), hugetlb_flag: None })?;
        crate::mem::pages::dump_object(&f, s.id as u64, s.size as u64, dir, *pages_id).with_context(|| what.clone())?;
        *pages_id += 1;
    }
    if let Some(w) = img {
        w.finish()?;
    }
    Ok(())
}

pub fn restore(dir: &ImageDir, ns: u32, rmid_forced: bool) -> Result<()> {
    let name = kinds::ipcns_shm().file_name(u64::from(ns));
    if !dir.exists(&name) {
        return Ok(());
    }
    let mut r = ImageReader::open_kind(dir, &name, kinds::ipcns_shm())?;
    while let Some(s) = r.next_entry()? {
        let d = s.desc;
        let what = format!("{}: SysV shared memory segment {} (key {:#x}, {} bytes)", dir.display(&name), d.id, d.key, s.size);
        if s.hugetlb_flag.unwrap_or(0) != 0 {
            bail!("{what}: hugetlb SysV shared memory is not supported yet");
        }
        if rmid_forced {
            bail!("{what}: kernel.shm_rmid_forced is set in the namespace: such segments are not supported yet");
        }
        // (Old images: the contents follow the entry.)
        let raw = if s.in_pagemaps == Some(true) { None } else { Some(r.payload(s.size.div_ceil(4) * 4)?) };
        set_next_id("shm", d.id)?;
        let id = sysvipc::shm_get(d.key as i32, s.size as usize, d.mode).with_context(|| format!("shmget for {what}"))?;
        check_id("shared memory segment", id, &d)?;
        sysvipc::shm_set(id, &perm(&d)).with_context(|| format!("IPC_SET on {what}"))?;
        let a = ShmAttach::new(id, false).with_context(|| format!("can't attach {what}"))?;
        let f = file_of(&a, s.size, true).with_context(|| what.clone())?;
        match raw {
            Some(data) => f.write_all_at(&data[..s.size as usize], 0).with_context(|| format!("writing {what}"))?,
            None => crate::mem::shmem::fill(dir, u64::from(d.id), &f, s.size, &what)?,
        }
    }
    Ok(())
}
