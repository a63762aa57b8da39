//! The contents of a shared memory object (anonymous shared memory, a
//! memfd inode) at restore: pagemap-shmem-SHMID.img and its pages file,
//! read into a mapping of the object.

use std::fs::File;
use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};

use crate::images::pagemap::{pages_file_name, Pagemap, PAGE_SIZE};
use crate::images::ImageDir;
use crate::sys::mm;

/// Put the pages recorded for object `shmid` into `f`, an object of `size`
/// bytes, through a shared mapping of it: whole pages (the tail of a last
/// partial page as the task saw it), and the object never grows. Pages
/// recorded past the object's last page are an error. An object without a
/// pagemap has no pages (all zero).
pub fn fill(dir: &ImageDir, shmid: u64, f: &File, size: u64, what: &str) -> Result<()> {
    let name = super::pages::shmem_pagemap_name(shmid);
    if !dir.exists(&name) {
        return Ok(());
    }
    let pm = Pagemap::read_named(dir, &name)?;
    let pages_name = pages_file_name(pm.head.pages_id);
    let pages = dir.open_file(&pages_name)?;
    let pages_len = pages.metadata().map(|m| m.len()).unwrap_or(0);
    let runs = pm.runs(&name, pages_len)?;
    let len = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    if let Some(r) = runs.iter().find(|r| r.vaddr + r.len() > len) {
        bail!("{name}: pages at offset {:#x} lie beyond the {size} bytes of {what}", r.vaddr);
    }
    if len == 0 {
        return Ok(());
    }
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let base = mm::map(0, len, rw, libc::MAP_SHARED, Some(f.as_fd()), 0).with_context(|| format!("mapping {what}"))?;
    let r = runs.iter().filter_map(|r| r.pages_offset.map(|off| (r, off))).try_for_each(|(r, off)| {
        mm::pread_into(pages.as_fd(), base + r.vaddr, r.len(), off)
            .with_context(|| format!("reading {} bytes of {pages_name} at {off} into {what}", r.len()))
    });
    let _ = mm::unmap(base, len);
    r
}
