//! Copy-on-write sharing of private memory between a restored parent and
//! its children, found again from the images (they hold each task's pages
//! in full; nothing at dump time marks the sharing).
//!
//! A task premaps and fills its memory before it forks its children, so
//! each child starts with the parent's premapped areas, shared
//! copy-on-write ([`Premapped`] says where they are). A child's private VMA
//! that is the parent's (same range, flags, kind, file and offset, both
//! tasks running the same executable) takes the parent's area (mremap into
//! its own premap) instead of a fresh one. Filling it ([`Adopted::fill`])
//! writes only the child's pages whose contents differ from the parent's
//! there (or that the parent lacks), and drops (MADV_DONTNEED) the
//! parent's pages the child doesn't have; every page left alone stays the
//! parent's frame. The parent's areas the child didn't take are unmapped
//! ([`Adopted::release`]).

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};

use super::premap::MemPlan;
use super::vma::status;
use crate::images::pagemap::{Pagemap, PAGE_SIZE};
use crate::images::pb::{MmEntry, VmaEntry};
use crate::images::ImageDir;
use crate::proc::maps::MapEntry;
use crate::sys::mm;

const MADV_GUARD_REMOVE: i32 = 103;
/// How much of the pages file is compared at once.
const CHUNK: u64 = 1 << 20;

/// What a task's children inherit of its premapped memory (a copy, by fork).
#[derive(Clone, Debug, Default)]
pub struct Premapped {
    pid: u64,
    exe_file_id: u32,
    /// The parent's VMAs, as its image has them (guard entries included).
    vmas: Vec<VmaEntry>,
    /// Every premapped area of the parent: (premap address, image address, length).
    areas: Vec<(u64, u64, u64)>,
}

impl Premapped {
    /// The premap `plan` of task `pid`, whose mm image is `mm`.
    pub fn new(pid: u64, mm: &MmEntry, plan: &MemPlan) -> Premapped {
        Premapped {
            pid,
            exe_file_id: mm.exe_file_id,
            vmas: mm.vmas.clone(),
            areas: plan.moves.iter().map(|m| (m.from, m.to, m.len)).collect(),
        }
    }

    /// The parent's VMA `v` can be, with the same pages: a private VMA of
    /// the same range, kind, flags, file and offset.
    fn same_vma(&self, v: &VmaEntry) -> Option<&VmaEntry> {
        let private = |w: &VmaEntry| {
            w.status & status::AREA_REGULAR != 0
                && w.status & (status::ANON_PRIVATE | status::FILE_PRIVATE) != 0
                && w.status & (status::AREA_VDSO | status::AREA_VVAR | status::AREA_GUARD) == 0
        };
        let p = self.vmas.iter().find(|p| p.start == v.start && private(p))?;
        let file = v.status & status::FILE_PRIVATE != 0;
        (private(v)
            && p.end == v.end
            && p.flags == v.flags
            && p.status == v.status
            && (!file || (p.shmid == v.shmid && p.pgoff == v.pgoff)))
            .then_some(p)
    }
}

/// A child's side: which of the parent's areas it took, and where.
pub struct Adopted<'a> {
    parent: Option<&'a Premapped>,
    own: &'a [MapEntry],
    /// Parent areas taken (by premap address).
    taken: Vec<u64>,
    /// The child's areas that are the parent's: (image start, end, premap address).
    areas: Vec<(u64, u64, u64)>,
}

/// Whether fork hands the child the parent's area as it was: not for a
/// locked area (mlock is not inherited), nor for one fork wipes
/// (MADV_WIPEONFORK, MAP_DROPPABLE), whose pages must all be written.
fn survives_fork(v: &VmaEntry) -> bool {
    const MADV_WIPEONFORK: u64 = 18;
    v.flags & (libc::MAP_LOCKED as u32 | super::vma::MAP_DROPPABLE) == 0 && v.madv.unwrap_or(0) & (1 << MADV_WIPEONFORK) == 0
}

fn prot_of(m: &MapEntry) -> i32 {
    let mut p = 0;
    if m.read {
        p |= libc::PROT_READ;
    }
    if m.write {
        p |= libc::PROT_WRITE;
    }
    if m.exec {
        p |= libc::PROT_EXEC;
    }
    p
}

impl<'a> Adopted<'a> {
    /// For a task with executable `exe_file_id` whose parent premapped
    /// `parent` (None: nothing to inherit); `own` is our mappings.
    pub fn new(parent: Option<&'a Premapped>, exe_file_id: u32, own: &'a [MapEntry]) -> Adopted<'a> {
        // Tasks running different executables share nothing worth finding.
        let parent = parent.filter(|p| p.exe_file_id == exe_file_id);
        Adopted { parent, own, taken: Vec::new(), areas: Vec::new() }
    }

    /// Premap `v` at `at` with protections `prot` by taking the parent's
    /// area, if it is the same VMA and its area is still here as the
    /// parent made it. False: map it afresh.
    pub fn adopt(&mut self, v: &VmaEntry, prot: i32, at: u64) -> bool {
        let Some(p) = self.parent else { return false };
        if p.same_vma(v).is_none() || !survives_fork(v) {
            return false;
        }
        let len = v.end - v.start;
        let Some(&(from, _, _)) = p.areas.iter().find(|(_, to, l)| *to == v.start && *l == len) else { return false };
        // The parent's area, whole, private, with the same protections
        // (an area not copied by fork, MADV_DONTFORK, is not here at all).
        let parts: Vec<&MapEntry> = self.own.iter().filter(|m| m.start < from + len && from < m.end).collect();
        let covered: u64 = parts.iter().map(|m| m.end.min(from + len) - m.start.max(from)).sum();
        if covered != len || parts.iter().any(|m| m.shared || prot_of(m) != prot) {
            return false;
        }
        match mm::remap(from, len, at) {
            Ok(_) => {
                self.taken.push(from);
                self.areas.push((v.start, v.end, at));
                true
            }
            Err(e) => {
                tracing::warn!("VMA {:#x}-{:#x}: can't take the parent's area ({e}): mapped afresh", v.start, v.end);
                false
            }
        }
    }

    /// The image ranges (start, end) of the areas taken from the parent.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.areas.iter().map(|&(s, e, _)| (s, e)).collect()
    }

    /// Whether image address `addr` is in an area taken from the parent.
    pub fn holds(&self, addr: u64) -> bool {
        self.areas.iter().any(|&(s, e, _)| s <= addr && addr < e)
    }

    /// Fill the areas taken from the parent with task `pid`'s pages: only
    /// what differs from the parent's is written, the parent's pages the
    /// task lacks are dropped.
    pub fn fill(&self, dir: &ImageDir, pid: u64) -> Result<()> {
        let Some(p) = self.parent.filter(|_| !self.areas.is_empty()) else { return Ok(()) };
        let parent_pages = present_runs(dir, p.pid)?;
        let pm = Pagemap::read(dir, pid)?;
        let pages_name = crate::images::pagemap::pages_file_name(pm.head.pages_id);
        let pages = dir.open_file(&pages_name)?;
        let pages_len = pages.metadata().map(|m| m.len()).unwrap_or(0);
        let mem = std::fs::OpenOptions::new().read(true).write(true).open("/proc/self/mem").context("opening /proc/self/mem")?;
        let mut st = Stats::default();
        let mut child_pages = Vec::new();
        for run in pm.runs(&format!("pagemap-{pid}.img"), pages_len)? {
            let Some(off) = run.pages_offset else { continue };
            for &(s, e, at) in &self.areas {
                let (lo, hi) = (run.vaddr.max(s), (run.vaddr + run.len()).min(e));
                if lo >= hi {
                    continue;
                }
                child_pages.push((lo, hi));
                let copy = Copy { pages: &pages, mem: &mem, off: off + (lo - run.vaddr), dst: at + (lo - s) };
                // Where the parent has pages, compare; elsewhere, write.
                let mut a = lo;
                for (ps, pe) in clip(&parent_pages, lo, hi) {
                    if a < ps {
                        copy.write(a - lo, ps - a).with_context(|| format!("{pages_name} at {a:#x}"))?;
                        st.written += (ps - a) / PAGE_SIZE;
                    }
                    copy.differing(ps - lo, pe - ps, &mut st).with_context(|| format!("{pages_name} at {ps:#x}"))?;
                    a = pe;
                }
                if a < hi {
                    copy.write(a - lo, hi - a).with_context(|| format!("{pages_name} at {a:#x}"))?;
                    st.written += (hi - a) / PAGE_SIZE;
                }
            }
        }
        child_pages.sort_unstable();
        for &(s, e, at) in &self.areas {
            for (ds, de) in subtract(&clip(&parent_pages, s, e), &clip(&child_pages, s, e)) {
                mm::madvise(at + (ds - s), de - ds, libc::MADV_DONTNEED)
                    .with_context(|| format!("dropping the parent's pages at {ds:#x}-{de:#x}"))?;
                st.dropped += (de - ds) / PAGE_SIZE;
            }
        }
        tracing::info!(
            "task {pid}: {} area(s) shared with parent {}: {} page(s) shared, {} rewritten, {} written, {} dropped",
            self.areas.len(),
            p.pid,
            st.shared,
            st.differ,
            st.written,
            st.dropped
        );
        Ok(())
    }

    /// Remove the guard markers the parent's areas brought along where
    /// the parent had guard regions (the task's own are installed next).
    pub fn clear_parent_guards(&self) -> Result<()> {
        let Some(p) = self.parent else { return Ok(()) };
        for g in p.vmas.iter().filter(|g| g.status & status::AREA_GUARD != 0) {
            for &(s, e, at) in &self.areas {
                let (lo, hi) = (g.start.max(s), g.end.min(e));
                if lo < hi {
                    mm::madvise(at + (lo - s), hi - lo, MADV_GUARD_REMOVE)
                        .with_context(|| format!("removing the parent's guard region at {lo:#x}"))?;
                }
            }
        }
        Ok(())
    }

    /// Unmap the parent's premapped areas this task did not take.
    pub fn release(&self) -> Result<()> {
        let Some(p) = self.parent else { return Ok(()) };
        for &(from, to, len) in p.areas.iter().filter(|(f, _, _)| !self.taken.contains(f)) {
            // Only what is still there (an area fork did not copy is not).
            if self.own.iter().any(|m| m.start < from + len && from < m.end) {
                mm::unmap(from, len).with_context(|| format!("unmapping the parent's premap of {to:#x} at {from:#x}"))?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Stats {
    shared: u64,
    differ: u64,
    written: u64,
    dropped: u64,
}

/// One stretch of a pagemap run: pages at `off` of the pages file go to
/// `dst` in our address space (both advanced by the same offsets).
struct Copy<'a> {
    pages: &'a File,
    mem: &'a File,
    off: u64,
    dst: u64,
}

impl Copy<'_> {
    /// Write `len` bytes at `at` of the stretch, as they are in the image.
    fn write(&self, at: u64, len: u64) -> Result<()> {
        let mut buf = vec![0u8; len.min(CHUNK) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK) as usize;
            self.pages.read_exact_at(&mut buf[..n], self.off + at + done)?;
            self.mem.write_all_at(&buf[..n], self.dst + at + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Write, of `len` bytes at `at`, only the pages that differ from what
    /// is there (reading through /proc/self/mem leaves shared pages shared).
    fn differing(&self, at: u64, len: u64, st: &mut Stats) -> Result<()> {
        let mut img = vec![0u8; len.min(CHUNK) as usize];
        let mut cur = vec![0u8; img.len()];
        let page = PAGE_SIZE as usize;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK) as usize;
            self.pages.read_exact_at(&mut img[..n], self.off + at + done)?;
            self.mem.read_exact_at(&mut cur[..n], self.dst + at + done)?;
            let mut i = 0;
            while i < n {
                if img[i..i + page] == cur[i..i + page] {
                    st.shared += 1;
                    i += page;
                    continue;
                }
                // A run of differing pages, written at once.
                let mut j = i + page;
                while j < n && img[j..j + page] != cur[j..j + page] {
                    j += page;
                }
                self.mem.write_all_at(&img[i..j], self.dst + at + done + i as u64)?;
                st.differ += ((j - i) / page) as u64;
                i = j;
            }
            done += n as u64;
        }
        Ok(())
    }
}

/// The page runs of task `pid` whose pages its images hold (what its
/// premap was filled with), sorted: (start, end).
fn present_runs(dir: &ImageDir, pid: u64) -> Result<Vec<(u64, u64)>> {
    let pm = Pagemap::read(dir, pid)?;
    let name = crate::images::pagemap::pages_file_name(pm.head.pages_id);
    let len = dir.open_file(&name)?.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(pm.runs(&format!("pagemap-{pid}.img"), len)?.iter().filter(|r| r.pages_offset.is_some()).map(|r| (r.vaddr, r.vaddr + r.len())).collect())
}

/// The parts of sorted ranges `r` inside [lo, hi).
fn clip(r: &[(u64, u64)], lo: u64, hi: u64) -> Vec<(u64, u64)> {
    r.iter().filter(|(s, e)| *s < hi && lo < *e).map(|&(s, e)| (s.max(lo), e.min(hi))).collect()
}

/// Sorted ranges `a` minus sorted ranges `b`.
fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(s, e) in a {
        let mut at = s;
        for &(bs, be) in b.iter().filter(|(bs, be)| *bs < e && s < *be) {
            if at < bs {
                out.push((at, bs));
            }
            at = at.max(be);
        }
        if at < e {
            out.push((at, e));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_subtract_and_clip() {
        let a = [(0, 10), (20, 30)];
        let b = [(2, 4), (8, 22), (25, 26)];
        assert_eq!(subtract(&a, &b), vec![(0, 2), (4, 8), (22, 25), (26, 30)]);
        assert_eq!(subtract(&a, &[]), a.to_vec());
        assert_eq!(clip(&a, 5, 25), vec![(5, 10), (20, 25)]);
    }

    #[test]
    fn only_differing_pages_are_written() {
        let (ps, n) = (PAGE_SIZE as usize, 4usize);
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let at = mm::map(0, (n * ps) as u64, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, None, 0).unwrap();
        let mem = std::fs::OpenOptions::new().read(true).write(true).open("/proc/self/mem").unwrap();
        let old: Vec<u8> = (0..n * ps).map(|i| (i / ps) as u8 + 1).collect();
        mem.write_all_at(&old, at).unwrap();
        // The image: pages 1 and 3 differ from what is mapped.
        let mut img = old.clone();
        img[ps..2 * ps].fill(0xaa);
        img[3 * ps + 7] = 0xbb;
        let path = std::env::temp_dir().join(format!("inherit-test-{}", std::process::id()));
        std::fs::write(&path, &img).unwrap();
        let pages = File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut st = Stats::default();
        Copy { pages: &pages, mem: &mem, off: 0, dst: at }.differing(0, (n * ps) as u64, &mut st).unwrap();
        let mut now = vec![0u8; n * ps];
        mem.read_exact_at(&mut now, at).unwrap();
        mm::unmap(at, (n * ps) as u64).unwrap();
        assert_eq!((st.shared, st.differ), (2, 2));
        assert!(now == img, "the area holds the image's pages");
    }

    fn anon(start: u64, end: u64) -> VmaEntry {
        VmaEntry {
            start,
            end,
            status: status::AREA_REGULAR | status::ANON_PRIVATE,
            flags: (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u32,
            fd: -1,
            ..Default::default()
        }
    }

    #[test]
    fn only_the_same_private_vma_is_inherited() {
        let p = Premapped { pid: 1, exe_file_id: 3, vmas: vec![anon(0x1000, 0x3000)], areas: vec![] };
        assert!(p.same_vma(&anon(0x1000, 0x3000)).is_some());
        assert!(p.same_vma(&anon(0x1000, 0x4000)).is_none(), "another end");
        let mut g = anon(0x1000, 0x3000);
        g.flags |= libc::MAP_GROWSDOWN as u32;
        assert!(p.same_vma(&g).is_none(), "other flags");
        let mut s = anon(0x1000, 0x3000);
        s.status = status::AREA_REGULAR | status::ANON_SHARED;
        assert!(p.same_vma(&s).is_none(), "shared memory is not copy-on-write");
    }
}
