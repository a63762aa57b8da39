//! The contents of a shared memory object (anonymous shared memory, a
//! memfd inode) at restore: pagemap-shmem-SHMID.img and its pages file,
//! written into the object through its file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use crate::images::pagemap::{pages_file_name, Pagemap, PAGE_SIZE};
use crate::images::ImageDir;

/// Write the pages recorded for object `shmid` into `f`, an object of
/// `size` bytes. Nothing is written at or past `size` (the object never
/// grows); pages recorded past the object's last page are an error. An
/// object without a pagemap has no pages (all zero).
pub fn fill(dir: &ImageDir, shmid: u64, f: &File, size: u64, what: &str) -> Result<()> {
    let name = super::pages::shmem_pagemap_name(shmid);
    if !dir.exists(&name) {
        return Ok(());
    }
    let pm = Pagemap::read_named(dir, &name)?;
    let pages_name = pages_file_name(pm.head.pages_id);
    let pages = dir.open_file(&pages_name)?;
    let pages_len = pages.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![0u8; 1 << 20];
    for run in pm.runs(&name, pages_len)? {
        let Some(off) = run.pages_offset else { continue };
        if run.vaddr + run.len() > size.div_ceil(PAGE_SIZE) * PAGE_SIZE {
            bail!("{name}: pages at offset {:#x} lie beyond the {size} bytes of {what}", run.vaddr);
        }
        let len = run.len().min(size - run.vaddr);
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            pages.read_exact_at(&mut buf[..n], off + done).with_context(|| format!("reading {pages_name}"))?;
            f.write_all_at(&buf[..n], run.vaddr + done).with_context(|| format!("filling {what}"))?;
            done += n as u64;
        }
    }
    Ok(())
}
