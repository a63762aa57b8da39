//! The memory dump: which pages to store (found with one PAGEMAP_SCAN per
//! VMA, no per-page syscalls), and writing them as pagemap-ID.img +
//! pages-N.img. Contiguous runs with the same flags are merged, across VMA
//! boundaries, as CRIU does.
//!
//! Private anonymous pages are flagged PE_LAZY | PE_PRESENT; COW-ed pages of
//! private file mappings and the vDSO (every page of it, present or not)
//! are PE_PRESENT. Zero-page mappings and pages still backed by the file
//! are not stored.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use super::vma::{status, Vma};
use crate::images::pagemap::{flags, pages_file_name, Pagemap, PAGE_SIZE};
use crate::images::pb::{PagemapEntry, PagemapHead};
use crate::images::ImageDir;
use crate::sys::pagemap::{pagemap_scan, PageRegion, ScanRequest};

/// PAGEMAP_SCAN page categories.
mod category {
    pub const FILE: u64 = 1 << 2;
    pub const PRESENT: u64 = 1 << 3;
    pub const SWAPPED: u64 = 1 << 4;
    pub const PFNZERO: u64 = 1 << 5;
    /// A MADV_GUARD_INSTALL marker (kernel 6.14+): no data, never stored.
    pub const GUARD: u64 = 1 << 8;
}

/// A run of pages to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub end: u64,
    pub flags: u32,
}

/// Counters for stats-dump.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemStats {
    pub pages_scanned: u64,
    pub pages_written: u64,
    pub shpages_written: u64,
    /// Time spent finding and copying pages, microseconds.
    pub memdump_us: u64,
    /// Of which writing the pages out, microseconds.
    pub memwrite_us: u64,
}

/// Find the runs of pages in `[start, end)` of `pagemap` (an open
/// /proc/PID/pagemap) that match: present or swapped, never the zero page,
/// and not file-backed when `skip_file`.
pub fn scan(pagemap: &File, start: u64, end: u64, skip_file: bool) -> Result<Vec<(u64, u64)>> {
    let guard = if crate::kerndat::has_pagemap_scan_guard_pages() { category::GUARD } else { 0 };
    let excluded = category::PFNZERO | guard | if skip_file { category::FILE } else { 0 };
    let mut out = Vec::new();
    let mut buf = vec![PageRegion::default(); 512];
    let mut at = start;
    while at < end {
        let req = ScanRequest {
            flags: 0,
            start: at,
            end,
            max_pages: 0,
            category_inverted: excluded,
            category_mask: excluded,
            category_anyof_mask: category::PRESENT | category::SWAPPED,
            return_mask: category::PRESENT | category::SWAPPED,
        };
        let (n, walk_end) = pagemap_scan(pagemap.as_fd(), &req, &mut buf)
            .map_err(|e| anyhow::anyhow!("PAGEMAP_SCAN {at:#x}-{end:#x}: {e}"))?;
        for r in &buf[..n] {
            match out.last_mut() {
                Some((_, e)) if *e == r.start => *e = r.end,
                _ => out.push((r.start, r.end)),
            }
        }
        if walk_end <= at {
            bail!("PAGEMAP_SCAN made no progress at {at:#x}");
        }
        at = walk_end;
    }
    Ok(out)
}

/// CRIU's "pages scanned" for a VMA `[start, end)` holding the page runs
/// `found` (sorted, not adjacent): its walk counts every page it stores
/// and one step for each stretch it skips.
fn scanned_count(start: u64, end: u64, found: &[(u64, u64)]) -> u64 {
    let pages: u64 = found.iter().map(|(s, e)| (e - s) / PAGE_SIZE).sum();
    let mut at = start;
    let mut gaps = 0;
    for (s, e) in found {
        gaps += u64::from(*s > at);
        at = *e;
    }
    gaps += u64::from(at < end);
    pages + gaps
}

/// The runs of private pages to store for `vmas`, merged across VMAs.
pub fn private_runs(pagemap: &File, vmas: &[Vma]) -> Result<(Vec<Run>, MemStats)> {
    let mut runs: Vec<Run> = Vec::new();
    let mut st = MemStats::default();
    for v in vmas.iter().filter(|v| v.dumps_private_pages()) {
        // hugetlb pages are never lazy (as CRIU 4.2 flags them).
        let huge = v.entry.flags & libc::MAP_HUGETLB as u32 != 0;
        let lazy = v.is(status::ANON_PRIVATE) && !v.is(status::AREA_VDSO) && !huge;
        let fl = if lazy { flags::PE_LAZY | flags::PE_PRESENT } else { flags::PE_PRESENT };
        // The vDSO whole, present or not (as CRIU): a restore on another
        // kernel compares it with its own and may restore it as a proxy.
        let found = if v.is(status::AREA_VDSO) {
            vec![(v.entry.start, v.entry.end)]
        } else {
            scan(pagemap, v.entry.start, v.entry.end, v.is(status::FILE_PRIVATE))
                .with_context(|| format!("scanning VMA {:#x}-{:#x}", v.entry.start, v.entry.end))?
        };
        st.pages_scanned += scanned_count(v.entry.start, v.entry.end, &found);
        for (s, e) in found {
            match runs.last_mut() {
                Some(r) if r.end == s && r.flags == fl => r.end = e,
                _ => runs.push(Run { start: s, end: e, flags: fl }),
            }
        }
    }
    Ok((runs, st))
}

/// Copy `runs` of `mem` (an open /proc/PID/mem) into `out`, in order.
pub fn copy_runs(mem: &File, runs: &[Run], out: &mut impl Write) -> Result<u64> {
    const CHUNK: u64 = 4 << 20;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut total = 0;
    for r in runs {
        let mut at = r.start;
        while at < r.end {
            let n = (r.end - at).min(CHUNK) as usize;
            mem.read_exact_at(&mut buf[..n], at).with_context(|| format!("reading task memory at {at:#x}"))?;
            out.write_all(&buf[..n]).context("writing pages")?;
            at += n as u64;
            total += n as u64;
        }
    }
    Ok(total)
}

/// Copy `runs` (page-aligned offsets) of a shared memory object to `out`,
/// through a mapping of it: whole pages, so the last page of an object
/// whose size is no multiple of the page comes whole, as the task sees it.
fn copy_object_runs(f: &File, runs: &[Run], out: &mut impl Write) -> Result<u64> {
    let Some(len) = runs.iter().map(|r| r.end).max() else { return Ok(0) };
    let base = crate::sys::mm::map(0, len, libc::PROT_READ, libc::MAP_SHARED, Some(f.as_fd()), 0).context("mapping the object")?;
    let shifted: Vec<Run> = runs.iter().map(|r| Run { start: base + r.start, end: base + r.end, flags: r.flags }).collect();
    let r = File::open("/proc/self/mem").context("opening /proc/self/mem").and_then(|mem| copy_runs(&mem, &shifted, out));
    let _ = crate::sys::mm::unmap(base, len);
    r
}

/// The pagemap of `runs` stored in pages-`pages_id`.img.
fn pagemap_of(pages_id: u32, runs: &[Run]) -> Pagemap {
    Pagemap {
        head: PagemapHead { pages_id },
        entries: runs
            .iter()
            .map(|r| PagemapEntry {
                vaddr: r.start,
                compat_nr_pages: 0,
                in_parent: None,
                flags: Some(r.flags),
                nr_pages: Some((r.end - r.start) / PAGE_SIZE),
            })
            .collect(),
    }
}

/// Write pagemap-`id`.img for `runs` stored in pages-`pages_id`.img.
pub fn write_pagemap(dir: &ImageDir, id: u64, pages_id: u32, runs: &[Run]) -> Result<()> {
    pagemap_of(pages_id, runs).write(dir, id)?;
    Ok(())
}

/// Dump the private memory of `pid`: pagemap-`pid`.img and pages-`pages_id`.img.
/// Returns the counters and the task's guard regions (MADV_GUARD_INSTALL),
/// which the mm image records as VMA_AREA_GUARD entries.
pub fn dump_private(pid: i32, vmas: &[Vma], dir: &ImageDir, pages_id: u32) -> Result<(MemStats, Vec<Run>)> {
    let pagemap = File::open(format!("/proc/{pid}/pagemap")).with_context(|| format!("can't open pagemap of {pid}"))?;
    let mem = crate::proc::mem(pid)?;
    let (runs, mut st) = private_runs(&pagemap, vmas)?;
    write_pagemap(dir, pid as u64, pages_id, &runs)?;
    let guards = if crate::kerndat::has_pagemap_scan_guard_pages() { guard_runs(&pagemap, vmas)? } else { Vec::new() };
    let name = pages_file_name(pages_id);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, dir.create_file(&name)?);
    let t_write = std::time::Instant::now();
    let bytes = copy_runs(&mem, &runs, &mut out)?;
    out.flush().with_context(|| format!("writing {name}"))?;
    st.memwrite_us = t_write.elapsed().as_micros() as u64;
    st.pages_written = bytes / PAGE_SIZE;
    Ok((st, guards))
}

/// The guard ranges of `vmas` (needs PAGEMAP_SCAN with PAGE_IS_GUARD).
pub fn guard_runs(pagemap: &File, vmas: &[Vma]) -> Result<Vec<Run>> {
    let mut out: Vec<Run> = Vec::new();
    let mut buf = vec![PageRegion::default(); 512];
    for v in vmas.iter().filter(|v| v.is(status::AREA_REGULAR) && !v.is(status::AREA_VVAR) && !v.is(status::AREA_VDSO)) {
        let mut at = v.entry.start;
        while at < v.entry.end {
            let req = ScanRequest {
                flags: 0,
                start: at,
                end: v.entry.end,
                max_pages: 0,
                category_inverted: 0,
                category_mask: 0,
                category_anyof_mask: category::GUARD,
                return_mask: category::GUARD,
            };
            let (n, walk_end) = pagemap_scan(pagemap.as_fd(), &req, &mut buf)
                .map_err(|e| anyhow::anyhow!("PAGEMAP_SCAN for guard regions at {at:#x}: {e}"))?;
            for r in &buf[..n] {
                match out.last_mut() {
                    Some(l) if l.end == r.start => l.end = r.end,
                    _ => out.push(Run { start: r.start, end: r.end, flags: 0 }),
                }
            }
            if walk_end <= at {
                bail!("PAGEMAP_SCAN made no progress at {at:#x}");
            }
            at = walk_end;
        }
    }
    Ok(out)
}

/// Dump the first `len` bytes of shared memory object `shmid` (`f`, the
/// object as a file): pagemap-shmem-SHMID.img, whose vaddrs are offsets
/// in the object, naming pages-`pages_id`.img, which holds its data pages
/// (found with SEEK_DATA). Returns the bytes written.
pub fn dump_object(f: &File, shmid: u64, len: u64, dir: &ImageDir, pages_id: u32) -> Result<u64> {
    let runs: Vec<Run> = data_runs(f, len)
        .with_context(|| format!("finding pages of shared memory {shmid}"))?
        .into_iter()
        .map(|(s, e)| Run { start: s, end: e, flags: flags::PE_PRESENT })
        .collect();
    let pm = pagemap_of(pages_id, &runs);
    pm.write_named(dir, &shmem_pagemap_name(shmid))?;
    let pname = pages_file_name(pages_id);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, dir.create_file(&pname)?);
    let written = copy_object_runs(f, &runs, &mut out).with_context(|| format!("dumping shared memory {shmid}"))?;
    out.flush().with_context(|| format!("writing {pname}"))?;
    Ok(written)
}

/// The name of the pagemap of anonymous shared memory object `shmid`.
pub fn shmem_pagemap_name(shmid: u64) -> String {
    format!("pagemap-shmem-{shmid}.img")
}

/// Data runs of a file (SEEK_DATA/SEEK_HOLE), page aligned, in `[0, len)`.
fn data_runs(f: &File, len: u64) -> Result<Vec<(u64, u64)>> {
    use nix::unistd::{lseek, Whence};
    let mut out = Vec::new();
    let mut at = 0i64;
    while (at as u64) < len {
        let start = match lseek(f, at, Whence::SeekData) {
            Ok(s) => s,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e).context("SEEK_DATA"),
        };
        let end = lseek(f, start, Whence::SeekHole).context("SEEK_HOLE")?;
        let s = (start as u64) / PAGE_SIZE * PAGE_SIZE;
        let e = ((end as u64).min(len)).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        if e > s {
            out.push((s, e));
        }
        at = end;
    }
    Ok(out)
}

/// Dump each anonymous shared memory object and memfd inode mapped by
/// `pid` (once per object): pagemap-shmem-SHMID.img, whose vaddrs are offsets in the
/// object, and its own pages-N.img. Pages are found with SEEK_DATA on the
/// object (through /proc/PID/map_files) and copied without touching the task.
/// Objects in `done` (dumped for another task of the tree) are skipped and
/// the new ones added. Returns the next free pages id.
pub fn dump_shmem(pid: i32, vmas: &[Vma], dir: &ImageDir, mut pages_id: u32, done: &mut Vec<u64>) -> Result<(u32, u64)> {
    let mut written = 0u64;
    for v in vmas.iter().filter(|v| v.is(status::ANON_SHARED) || v.is(status::AREA_MEMFD)) {
        // A memfd's contents are its inode's (whole file, whatever maps
        // it), under the inode number; anonymous shared memory's shmid is
        // that number already.
        let memfd = v.is(status::AREA_MEMFD);
        let shmid = if memfd { u64::from(v.map.inode as u32) } else { v.entry.shmid };
        if done.contains(&shmid) {
            continue;
        }
        done.push(shmid);
        let path = format!("/proc/{pid}/map_files/{:x}-{:x}", v.entry.start, v.entry.end);
        let f = File::open(&path).with_context(|| format!("can't open shared memory {path}"))?;
        let size = f.metadata()?.len();
        let len = if memfd { size } else { size.max(v.entry.pgoff + (v.entry.end - v.entry.start)) };
        written += dump_object(&f, shmid, len, dir, pages_id)?;
        pages_id += 1;
    }
    Ok((pages_id, written / PAGE_SIZE))
}

#[cfg(test)]
mod scanned {
    #[test]
    fn pages_and_skipped_stretches() {
        let p = super::PAGE_SIZE;
        assert_eq!(super::scanned_count(0, 10 * p, &[]), 1);
        assert_eq!(super::scanned_count(0, 10 * p, &[(0, 10 * p)]), 10);
        assert_eq!(super::scanned_count(0, 10 * p, &[(2 * p, 3 * p), (5 * p, 7 * p)]), 3 + 3);
    }
}
