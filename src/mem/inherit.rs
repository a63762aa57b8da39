//! Copy-on-write sharing of private memory between a restored parent and
//! its children, found again from the images (they hold each task's pages
//! in full; nothing at dump time marks the sharing).
//!
//! A task premaps and fills its memory before it forks its children, so
//! each child starts with the parent's premapped areas, shared
//! copy-on-write ([`Premapped`] says where they are). A child's private VMA
//! whose first page lies in a parent VMA of the same kind (flags, kind,
//! file and consistent offset, both tasks running the same executable)
//! takes the part of the parent's area it overlaps (mremap into its own
//! premap); the rest of the VMA, past the parent's, is the same mapping
//! grown in place, so the VMA stays one kernel VMA as the task had it
//! (heaps, stacks and mremap'ed areas grow after a fork; mprotect splits
//! one task's VMA and not the other's). Filling it ([`Adopted::fill`])
//! writes only the child's pages whose contents differ from what is there
//! (or that the parent lacks), and drops (MADV_DONTNEED) the parent's pages
//! the child doesn't have; every page left alone stays the parent's frame.
//! What is left of the parent's areas is unmapped ([`Adopted::release`]).
//!
//! Not shared: a child VMA starting below every parent VMA of its kind
//! (an area can't be grown downwards), and of several parent VMAs under
//! one child VMA, those after the first (pages of two parent VMAs can only
//! be one kernel VMA's if it is split, which the task would see).

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

    /// Where the child's VMA `v` can start from the parent's premap: the
    /// premap address of `v.start` and the image address where the
    /// parent's VMA holding it ends within `v` (None: nothing to take).
    fn source(&self, v: &VmaEntry) -> Option<(u64, u64)> {
        let p = self.vmas.iter().find(|p| p.start <= v.start && v.start < p.end && private(p))?;
        if !private(v) || !same_kind(p, v) || !survives_fork(p) || !survives_fork(v) {
            return None;
        }
        let &(from, _, _) = self.areas.iter().find(|&&(_, to, len)| to == p.start && len == p.end - p.start)?;
        Some((from + (v.start - p.start), p.end.min(v.end)))
    }
}

/// A private VMA whose pages fork shares copy-on-write.
fn private(v: &VmaEntry) -> bool {
    v.status & status::AREA_REGULAR != 0
        && v.status & (status::ANON_PRIVATE | status::FILE_PRIVATE) != 0
        && v.status & (status::AREA_VDSO | status::AREA_VVAR | status::AREA_GUARD) == 0
}

/// Whether overlapping VMAs `p` and `v` map the same thing at the same
/// addresses: flags, kind, and for a file the same file at offsets that
/// move with the address.
fn same_kind(p: &VmaEntry, v: &VmaEntry) -> bool {
    let file = v.status & status::FILE_PRIVATE != 0;
    p.flags == v.flags
        && p.status == v.status
        && (!file || (p.shmid == v.shmid && p.pgoff.wrapping_sub(p.start) == v.pgoff.wrapping_sub(v.start)))
}

/// A child's side: which of the parent's areas it took, and where.
pub struct Adopted<'a> {
    parent: Option<&'a Premapped>,
    own: &'a [MapEntry],
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

impl<'a> Adopted<'a> {
    /// For a task with executable `exe_file_id` whose parent premapped
    /// `parent` (None: nothing to inherit); `own` is our mappings.
    pub fn new(parent: Option<&'a Premapped>, exe_file_id: u32, own: &'a [MapEntry]) -> Adopted<'a> {
        // Tasks running different executables share nothing worth finding.
        let parent = parent.filter(|p| p.exe_file_id == exe_file_id);
        Adopted { parent, own, areas: Vec::new() }
    }

    /// Premap `v` at `at` with protections `prot` by taking the part of
    /// the parent's area it overlaps, if there is one still here as the
    /// parent made it, and growing it in place to `v`'s length. False: map
    /// it afresh.
    pub fn adopt(&mut self, v: &VmaEntry, prot: i32, at: u64) -> bool {
        let Some((from, end)) = self.parent.and_then(|p| p.source(v)) else { return false };
        let (len, part) = (v.end - v.start, end - v.start);
        // The parent's part, whole, private, with the same protections
        // (an area not copied by fork, MADV_DONTFORK, is not here at all).
        let parts: Vec<&MapEntry> = self.own.iter().filter(|m| m.start < from + part && from < m.end).collect();
        let covered: u64 = parts.iter().map(|m| m.end.min(from + part) - m.start.max(from)).sum();
        if covered != part || parts.iter().any(|m| m.shared || super::vma::prot(m) as i32 != prot) {
            return false;
        }
        let taken = mm::remap(from, part, at).and_then(|_| if part < len { mm::grow(at, part, len) } else { Ok(()) });
        if let Err(e) = taken {
            tracing::warn!("VMA {:#x}-{:#x}: can't take the parent's area ({e}): mapped afresh", v.start, v.end);
            // The caller maps the VMA over whatever was moved here.
            return false;
        }
        self.areas.push((v.start, v.end, at));
        true
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

    /// Unmap what is left of the parent's premapped areas (the parts this
    /// task took are gone from there already).
    pub fn release(&self) -> Result<()> {
        let Some(p) = self.parent else { return Ok(()) };
        for &(from, to, len) in &p.areas {
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

    fn parent(vmas: Vec<VmaEntry>) -> Premapped {
        // Each VMA premapped at 0x100000 above its image address.
        let areas = vmas.iter().map(|v| (v.start + 0x10_0000, v.start, v.end - v.start)).collect();
        Premapped { pid: 1, exe_file_id: 3, vmas, areas }
    }

    #[test]
    fn the_overlapping_part_of_a_vma_of_the_same_kind_is_taken() {
        let p = parent(vec![anon(0x1000, 0x3000), anon(0x8000, 0xc000)]);
        assert_eq!(p.source(&anon(0x1000, 0x3000)), Some((0x10_1000, 0x3000)), "the same VMA");
        assert_eq!(p.source(&anon(0x1000, 0x2000)), Some((0x10_1000, 0x2000)), "the parent's grew (brk, mremap)");
        assert_eq!(p.source(&anon(0x1000, 0x5000)), Some((0x10_1000, 0x3000)), "the child's grew: the rest is fresh");
        // A parent VMA split into several child VMAs (mprotect in the child).
        assert_eq!(p.source(&anon(0x8000, 0x9000)), Some((0x10_8000, 0x9000)));
        assert_eq!(p.source(&anon(0x9000, 0xc000)), Some((0x10_9000, 0xc000)));
        // Several parent VMAs under one child VMA: the first one's part.
        assert_eq!(p.source(&anon(0x2000, 0x9000)), Some((0x10_2000, 0x3000)));
        assert_eq!(p.source(&anon(0x4000, 0x9000)), None, "no parent VMA holds its start");
        assert_eq!(p.source(&anon(0x0, 0x2000)), None, "it starts below the parent's");
    }

    #[test]
    fn only_a_private_vma_of_the_same_kind_is_inherited() {
        let p = parent(vec![anon(0x1000, 0x3000)]);
        let mut g = anon(0x1000, 0x3000);
        g.flags |= libc::MAP_GROWSDOWN as u32;
        assert_eq!(p.source(&g), None, "other flags");
        let mut s = anon(0x1000, 0x3000);
        s.status = status::AREA_REGULAR | status::ANON_SHARED;
        assert_eq!(p.source(&s), None, "shared memory is not copy-on-write");
        let mut l = anon(0x1000, 0x3000);
        l.flags |= libc::MAP_LOCKED as u32;
        assert_eq!(parent(vec![l]).source(&l), None, "mlock is not inherited");
        let mut w = anon(0x1000, 0x3000);
        w.madv = Some(1 << 18);
        assert_eq!(parent(vec![w]).source(&w), None, "fork wipes it");
    }

    #[test]
    fn file_offsets_must_move_with_the_address() {
        let file = |start, end, pgoff| VmaEntry {
            status: status::AREA_REGULAR | status::FILE_PRIVATE,
            flags: libc::MAP_PRIVATE as u32,
            shmid: 7,
            pgoff,
            ..anon(start, end)
        };
        let p = parent(vec![file(0x10000, 0x14000, 0x2000)]);
        assert_eq!(p.source(&file(0x11000, 0x13000, 0x3000)), Some((0x11_1000, 0x13000)));
        assert_eq!(p.source(&file(0x11000, 0x13000, 0x2000)), None, "another part of the file");
        let mut other = file(0x10000, 0x14000, 0x2000);
        other.shmid = 8;
        assert_eq!(p.source(&other), None, "another file");
    }
}
