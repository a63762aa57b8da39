//! The memory side of a restore, before the restorer runs: lay every
//! private and anonymous-shared VMA of the image out in one free region of
//! the restoring process ("premap"), fill it from pages-N.img with one
//! pread per run, and describe how the restorer moves each area into place
//! (mremap), which shared file mappings it maps, and where the vDSO goes
//! (`super::vdso` decides: our block moved to the image's addresses, or the
//! image's vDSO premapped here as a patched proxy and our block placed in a
//! hole of its own).
//!
//! The premap region is chosen to overlap neither the image's VMAs nor the
//! restoring process's own mappings, so moving one area never clobbers
//! another that is still waiting to move.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};

use super::vdso::{self, Patch, VdsoPlan};
use super::vma::status;
use crate::files::reg;
use crate::images::pagemap::{Pagemap, PageRun, PAGE_SIZE};
use crate::images::pb::{MmEntry, RegFileEntry, VmaEntry};
use crate::images::ImageDir;
use crate::proc::maps::MapEntry;
use crate::sys::mm;

/// The lowest address we use (above vm.mmap_min_addr).
const LOW: u64 = 0x1_0000;

/// One premapped area and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub from: u64,
    pub to: u64,
    pub len: u64,
    /// Final protections (the premap is writable for filling).
    pub prot: i32,
    pub madv: u64,
}

/// A shared file mapping the restorer maps in place from an open fd.
#[derive(Debug)]
pub struct FileMap {
    pub to: u64,
    pub len: u64,
    pub prot: i32,
    pub flags: i32,
    pub pgoff: u64,
    pub fd: OwnedFd,
    pub madv: u64,
    /// Guard regions (MADV_GUARD_INSTALL) inside it, as (start, len).
    pub guards: Vec<(u64, u64)>,
}

/// Moving the running kernel's vDSO areas: to where the image had them,
/// or (proxy) to a hole no VMA of the image overlaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VdsoMove {
    /// Our [vvar] (+ [vvar_vclock]) area and [vdso], as (start, len).
    pub vvar_from: Option<(u64, u64)>,
    pub vdso_from: (u64, u64),
    pub vvar_to: Option<u64>,
    pub vdso_to: u64,
}

/// Everything the restorer needs to put memory in place.
#[derive(Debug, Default)]
pub struct MemPlan {
    /// The premap region (start, len).
    pub region: (u64, u64),
    pub moves: Vec<Move>,
    pub file_maps: Vec<FileMap>,
    pub vdso: Option<VdsoMove>,
    /// Our own mappings the restorer must drop (everything but the premap
    /// region, the restorer's own region and the vDSO areas).
    pub own: Vec<(u64, u64)>,
    /// AIO rings the restorer recreates over their premapped copies, and
    /// /dev/null for the requests that bring each ring's tail into place.
    pub aio_rings: Vec<super::aio::Ring>,
    pub aio_null: Option<OwnedFd>,
}

/// A free range of `len` bytes avoiding every range in `avoid`, searching
/// down from the top of the address space.
pub fn find_hole(len: u64, avoid: &[(u64, u64)]) -> Option<u64> {
    let mut busy: Vec<(u64, u64)> = avoid.iter().copied().filter(|(s, e)| e > s).collect();
    busy.sort_unstable();
    // Gaps between busy ranges, highest first.
    let mut top = crate::mem::TASK_SIZE;
    for &(s, e) in busy.iter().rev() {
        if e <= top && top - e >= len + 2 * PAGE_SIZE && e >= LOW {
            return Some(top - len - PAGE_SIZE);
        }
        top = top.min(s);
    }
    (top >= LOW + len + PAGE_SIZE).then(|| top - len - PAGE_SIZE)
}

/// The page size of hugetlb VMA `v` (None: not hugetlb). A hugetlb VMA
/// whose flags name no size has the default one.
fn huge_size(v: &VmaEntry) -> Option<u64> {
    (v.flags & libc::MAP_HUGETLB as u32 != 0).then(|| super::hugetlb::page_size(v.flags).unwrap_or_else(super::hugetlb::default_size))
}

/// Whether `v` is premapped here. The image's vDSO and vvar are, only
/// when they are restored as memory (`proxy`).
fn needs_premap(v: &VmaEntry, proxy: bool) -> bool {
    // An AIO ring: its dumped copy, private, for the restorer to read.
    v.status & status::AREA_AIORING != 0
        || (v.status & status::AREA_REGULAR != 0
            && (proxy || v.status & (status::AREA_VDSO | status::AREA_VVAR) == 0)
            && v.status & (status::ANON_PRIVATE | status::FILE_PRIVATE | status::ANON_SHARED) != 0)
}

fn open_mapped(files: &HashMap<u32, RegFileEntry>, shared: &SharedShmem, v: &VmaEntry, write: bool) -> Result<File> {
    let id = u32::try_from(v.shmid).context("bad file id")?;
    if v.status & status::AREA_MEMFD != 0 {
        let acc = v.fdflags.map_or(if write { libc::O_RDWR } else { libc::O_RDONLY }, |f| f as i32);
        return shared.memfds.open(id, acc).with_context(|| format!("VMA {:#x}-{:#x}", v.start, v.end));
    }
    let e = files.get(&id).with_context(|| format!("VMA {:#x}-{:#x}: file id {id} is not in files.img", v.start, v.end))?;
    // The mode the task had the file open with (vma_entry.fdflags), so that
    // mprotect may later widen the mapping as far as it could before.
    let (read, write) = match v.fdflags.map(|f| f as i32 & libc::O_ACCMODE) {
        Some(libc::O_RDWR) => (true, true),
        Some(libc::O_WRONLY) => (false, true),
        Some(_) => (true, write),
        None => (true, write),
    };
    let f = std::fs::OpenOptions::new()
        .read(read)
        .write(write)
        .open(&e.name)
        .with_context(|| format!("can't open {} for the mapping at {:#x}", e.name, v.start))?;
    reg::validate(e, &f)?;
    Ok(f)
}

/// Anonymous shared memory objects that several tasks of a tree map:
/// made once, filled from their images, before the tasks fork (each
/// inherits the fds and maps the same object), by shmid; and the memfd
/// objects the tree's VMAs map.
#[derive(Debug, Default)]
pub struct SharedShmem {
    by_id: HashMap<u64, OwnedFd>,
    pub memfds: super::memfd::Memfds,
}

impl SharedShmem {
    /// Make each object (shmid, size in bytes) and fill it from
    /// pagemap-shmem-SHMID.img.
    pub fn create(dir: &ImageDir, objects: &[(u64, u64)]) -> Result<SharedShmem> {
        let mut by_id = HashMap::new();
        for &(shmid, size) in objects {
            let size = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
            let what = || format!("shared memory object {shmid} ({size} bytes)");
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            let at = mm::map(0, size, rw, libc::MAP_SHARED | libc::MAP_ANONYMOUS, None, 0).with_context(what)?;
            // The object itself, as a file, for every task to map.
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/self/map_files/{at:x}-{:x}", at + size))
                .with_context(what);
            let _ = mm::unmap(at, size);
            let f = f?;
            super::shmem::fill(dir, shmid, &f, size, &what())?;
            by_id.insert(shmid, OwnedFd::from(f));
        }
        Ok(SharedShmem { by_id, memfds: Default::default() })
    }

    fn get(&self, shmid: u64) -> Option<&OwnedFd> {
        self.by_id.get(&shmid)
    }
}

/// Lay out and fill the task's memory. `own` is our /proc/self/maps;
/// `shared` the anonymous shared memory made for the whole tree; `vdso`
/// what `vdso::decide` made of the image's vDSO.
#[allow(clippy::too_many_arguments)]
pub fn premap(
    mm_e: &MmEntry,
    files: &HashMap<u32, RegFileEntry>,
    dir: &ImageDir,
    pid: u64,
    own: &[MapEntry],
    extra_avoid: &[(u64, u64)],
    shared: &SharedShmem,
    vdso: &VdsoPlan,
    parent: Option<&super::inherit::Premapped>,
) -> Result<MemPlan> {
    let vmas = &mm_e.vmas;
    let mut cow = super::inherit::Adopted::new(parent, mm_e.exe_file_id, own);
    let proxy = matches!(vdso, VdsoPlan::Proxy(_));
    // A hugetlb area starts at a multiple of its page size: room to align it.
    let total: u64 = vmas.iter().filter(|v| needs_premap(v, proxy)).map(|v| v.end - v.start + PAGE_SIZE + huge_size(v).unwrap_or(0)).sum();
    let mut avoid: Vec<(u64, u64)> = vmas.iter().map(|v| (v.start, v.end)).collect();
    avoid.extend(own.iter().map(|m| (m.start, m.end)));
    avoid.extend_from_slice(extra_avoid);
    let base = find_hole(total.max(PAGE_SIZE), &avoid).context("no room in the address space to premap the task's memory")?;
    let mut plan = MemPlan { region: (base, total), ..Default::default() };
    plan.aio_rings = super::aio::rings(mm_e)?;
    if !plan.aio_rings.is_empty() {
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").context("opening /dev/null for the AIO rings")?;
        plan.aio_null = Some(OwnedFd::from(null));
    }

    // Areas, laid out one page apart so the kernel never merges them.
    let mut at = base;
    let mut shm_first: HashMap<u64, (u64, u64, u64)> = HashMap::new(); // shmid -> (addr, pgoff, len)
    let mut placed: Vec<(VmaEntry, u64)> = Vec::new();
    let with_pages = vmas_with_pages(dir, pid, vmas)?;
    for v in vmas {
        let len = v.end - v.start;
        let prot = v.prot as i32;
        let madv = v.madv.unwrap_or(0);
        if v.status & status::FILE_SHARED != 0 {
            let write = v.prot as i32 & libc::PROT_WRITE != 0;
            let f = open_mapped(files, shared, v, write)?;
            plan.file_maps.push(FileMap {
                to: v.start,
                len,
                prot,
                flags: libc::MAP_SHARED | (v.flags & libc::MAP_LOCKED as u32) as i32,
                pgoff: v.pgoff,
                fd: OwnedFd::from(f),
                madv,
                guards: Vec::new(),
            });
            continue;
        }
        if !needs_premap(v, proxy) {
            continue;
        }
        // The kernel's flags (VM_ACCOUNT, and the merging it decides) should
        // come out as the task had them: a private area that is writable, or
        // read-only but holding copied-on-write pages (RELRO, data made
        // read-only), was writable once and is premapped writable; others
        // (text, PROT_NONE reservations) keep their protections and get
        // their pages through /proc/self/mem. The restorer sets final ones.
        let rw = if premap_writable(v, &with_pages) { prot | libc::PROT_READ | libc::PROT_WRITE } else { prot };
        // MAP_GROWSDOWN; MAP_NORESERVE (glibc's per-thread malloc arenas):
        // no VM_ACCOUNT when the area is (or later becomes) writable, as the
        // task had it.
        // MAP_LOCKED: locked (and populated) here already; mremap keeps it.
        let grows = (v.flags & (libc::MAP_GROWSDOWN | libc::MAP_NORESERVE | libc::MAP_LOCKED) as u32) as i32;
        // MAP_DROPPABLE is a mapping type of its own, in MAP_PRIVATE's place.
        let private = if v.flags & super::vma::MAP_DROPPABLE != 0 { super::vma::MAP_DROPPABLE as i32 } else { libc::MAP_PRIVATE };
        let locked = (v.flags & libc::MAP_LOCKED as u32) as i32;
        let what = || format!("premapping VMA {:#x}-{:#x}", v.start, v.end);
        // hugetlb: at a multiple of its page size (mremap moves it whole
        // pages), anonymous memory mapped with its page size.
        let huge = huge_size(v);
        let hugetlb = if huge.is_some() { (v.flags & (libc::MAP_HUGETLB as u32 | 0x3f << super::hugetlb::SIZE_SHIFT)) as i32 } else { 0 };
        if let Some(h) = huge {
            at = at.next_multiple_of(h);
        }
        if huge.is_none() && cow.adopt(v, rw, at) {
            // The parent's area, its pages shared copy-on-write.
        } else if v.status & status::ANON_SHARED != 0 {
            match shm_first.get(&v.shmid) {
                None if shared.get(v.shmid).is_some() => {
                    // The tree's object, filled already.
                    let fd = shared.get(v.shmid).context("shared memory object")?;
                    mm::map(at, len, rw, libc::MAP_SHARED | libc::MAP_FIXED | locked, Some(fd.as_fd()), v.pgoff).with_context(what)?;
                }
                None => {
                    mm::map(at, len, rw, libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_FIXED | locked, None, 0)
                        .with_context(what)?;
                    shm_first.insert(v.shmid, (at, v.pgoff, len));
                }
                Some(&(first, pgoff, flen)) => {
                    // The same object mapped again: map it through the first area.
                    let f = File::open(format!("/proc/self/map_files/{first:x}-{:x}", first + flen))
                        .with_context(what)?;
                    let off = v.pgoff.checked_sub(pgoff).context("shared memory mapped below its first mapping")?;
                    mm::map(at, len, rw, libc::MAP_SHARED | libc::MAP_FIXED | locked, Some(f.as_fd()), off).with_context(what)?;
                }
            }
        } else if v.status & status::FILE_PRIVATE != 0 {
            let f = open_mapped(files, shared, v, false)?;
            mm::map(at, len, rw, libc::MAP_PRIVATE | libc::MAP_FIXED | grows, Some(f.as_fd()), v.pgoff).with_context(what)?;
        } else {
            mm::map(at, len, rw, private | libc::MAP_ANONYMOUS | libc::MAP_FIXED | grows | hugetlb, None, 0)
                .with_context(what)?;
        }
        plan.moves.push(Move { from: at, to: v.start, len, prot, madv });
        let mut pv = *v;
        pv.prot = rw as u32;
        placed.push((pv, at));
        at += len + PAGE_SIZE;
    }

    // Pages never copied: the vvar's (the dumping kernel's data, if an
    // image holds any) and, when ours replaces it, the image's vDSO.
    let skip_bits = if proxy { status::AREA_VVAR } else { status::AREA_VVAR | status::AREA_VDSO };
    let mut skip: Vec<(u64, u64)> = vmas.iter().filter(|v| v.status & skip_bits != 0).map(|v| (v.start, v.end)).collect();
    // Areas taken from the parent are filled by comparison (`inherit`).
    skip.extend(cow.ranges());
    let fillable: Vec<(VmaEntry, u64)> =
        placed.iter().filter(|(v, _)| v.status & status::AREA_VVAR == 0 && !cow.holds(v.start)).cloned().collect();
    fill_private(dir, pid, &fillable, &skip)?;
    cow.fill(dir, pid)?;
    let own_shm: Vec<(VmaEntry, u64)> = placed.iter().filter(|(v, _)| shared.get(v.shmid).is_none() || v.status & status::ANON_SHARED == 0).cloned().collect();
    fill_shmem(dir, &own_shm)?;
    cow.clear_parent_guards()?;
    install_guards(vmas, &placed, &mut plan.file_maps)?;
    cow.release()?;
    avoid.push((base, base + total.max(PAGE_SIZE)));
    plan.vdso = match vdso {
        VdsoPlan::None => None,
        VdsoPlan::Remap => vdso_remap(vmas, own)?,
        VdsoPlan::Proxy(patches) => Some(vdso_proxy(own, &avoid, &placed, patches)?),
    };
    Ok(plan)
}

/// The proxy: our block goes to a hole overlapping neither the image's
/// VMAs, our mappings nor the premap (the restorer's region is laid out
/// later around it); the image's vDSO, premapped and filled like any
/// private memory, gets a jump at each exported function into ours there.
///
/// The image's vvar area is premapped too, but as zero-filled read-only
/// memory, never with the dumping kernel's data. Zeroes rather than a hole
/// or PROT_NONE: a thread stopped in the middle of a vDSO function resumes
/// in the image's code, which reads its data from there; all-zero data
/// says "no usable clocksource" (VDSO_CLOCKMODE_NONE), so that one call
/// falls back to the real system call (time(), which reads a field
/// without that check, may return 0 that once), where an unmapped or
/// PROT_NONE page would kill the task with SIGSEGV. Every later call
/// enters through a patched entry and runs our vDSO against our vvar.
/// (`Tree::plan_vdso` logs each thread stopped in there.)
fn vdso_proxy(own: &[MapEntry], avoid: &[(u64, u64)], placed: &[(VmaEntry, u64)], patches: &[Patch]) -> Result<VdsoMove> {
    let ((vs, vl), vvar) = vdso::block(own).context("we have no [vdso]")?;
    let lo = vvar.map_or(vs, |(s, _)| s.min(vs));
    let hi = vvar.map_or(vs + vl, |(s, l)| (s + l).max(vs + vl));
    let at = find_hole(hi - lo, avoid).context("no room in the address space for this kernel's vDSO")?;
    let mv = VdsoMove { vvar_from: vvar, vdso_from: (vs, vl), vvar_to: vvar.map(|(s, _)| at + (s - lo)), vdso_to: at + (vs - lo) };
    let (img, premapped) = placed
        .iter()
        .find(|(v, _)| v.status & status::AREA_VDSO != 0)
        .context("the image's vDSO was not premapped")?;
    let len = img.end - img.start;
    for (off, bytes) in vdso::jumps(patches, mv.vdso_to) {
        if off + bytes.len() as u64 > len {
            bail!("a vDSO jump at {:#x} crosses the end of the image's vDSO", img.start + off);
        }
        write_forced(premapped + off, &bytes).with_context(|| format!("patching the image's vDSO at {:#x}", img.start + off))?;
    }
    tracing::info!(
        "vDSO proxy: the image's vDSO at {:#x} ({} entries patched) calls this kernel's, placed at {:#x}",
        img.start,
        patches.len(),
        mv.vdso_to
    );
    Ok(mv)
}

/// Put back the guard regions (MADV_GUARD_INSTALL), recorded as CRIU 4.2
/// records them: VMA_AREA_GUARD entries after the task's VMAs, a run of
/// guard pages as one entry even where it spans the border of two VMAs.
/// Each piece is installed in its own VMA: in the premap (the markers
/// travel with the area when the restorer moves it), or, for a shared
/// file mapping, by the restorer once it has mapped it.
fn install_guards(vmas: &[VmaEntry], placed: &[(VmaEntry, u64)], file_maps: &mut [FileMap]) -> Result<()> {
    const MADV_GUARD_INSTALL: i32 = 102;
    for g in vmas.iter().filter(|v| v.status & status::AREA_GUARD != 0) {
        let what = || format!("guard region {:#x}-{:#x}", g.start, g.end);
        let mut covered = 0;
        for v in vmas.iter().filter(|v| v.status & status::AREA_GUARD == 0 && v.start < g.end && g.start < v.end) {
            let (s, e) = (g.start.max(v.start), g.end.min(v.end));
            covered += e - s;
            if let Some(f) = file_maps.iter_mut().find(|f| f.to == v.start && v.status & status::FILE_SHARED != 0) {
                f.guards.push((s, e - s));
                continue;
            }
            let (_, at) = placed
                .iter()
                .find(|(p, _)| p.start == v.start)
                .with_context(|| format!("{}: VMA {:#x}-{:#x} is not restored as memory", what(), v.start, v.end))?;
            mm::madvise(at + (s - v.start), e - s, MADV_GUARD_INSTALL)
                .with_context(|| format!("{}: installing it at {s:#x}", what()))?;
        }
        if covered != g.end - g.start {
            bail!("{}: part of it lies outside every VMA of the image", what());
        }
    }
    Ok(())
}

/// Starts of the image's VMAs that hold pages in the private pagemap.
fn vmas_with_pages(dir: &ImageDir, pid: u64, vmas: &[VmaEntry]) -> Result<Vec<u64>> {
    let pm = Pagemap::read(dir, pid)?;
    let mut out = Vec::new();
    for e in &pm.entries {
        let end = e.vaddr + crate::images::pagemap::entry_nr_pages(e) * PAGE_SIZE;
        for v in vmas.iter().filter(|v| v.start < end && e.vaddr < v.end) {
            if !out.contains(&v.start) {
                out.push(v.start);
            }
        }
    }
    Ok(out)
}

fn premap_writable(v: &VmaEntry, with_pages: &[u64]) -> bool {
    let prot = v.prot as i32;
    if v.status & status::ANON_SHARED != 0 || prot & libc::PROT_WRITE != 0 {
        return true;
    }
    prot & libc::PROT_EXEC == 0 && with_pages.contains(&v.start)
}

/// Where image address `addr` lives in the premap: (address, bytes left in
/// that area, whether the area is writable).
fn premap_addr(placed: &[(VmaEntry, u64)], addr: u64) -> Option<(u64, u64, bool)> {
    placed
        .iter()
        .find(|(v, _)| v.start <= addr && addr < v.end && v.status & status::ANON_SHARED == 0)
        .map(|(v, at)| (at + (addr - v.start), v.end - addr, v.prot as i32 & libc::PROT_WRITE != 0))
}

/// Copy `len` bytes at `off` of `pages` to `dst` in our address space:
/// straight into a writable area, through /proc/self/mem (a forced write,
/// as a debugger's) into one that is not.
fn copy_pages(pages: &File, off: u64, dst: u64, len: u64, writable: bool) -> Result<()> {
    if writable {
        return mm::pread_into(pages.as_fd(), dst, len, off).map_err(anyhow::Error::from);
    }
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        pages.read_exact_at(&mut buf[..n], off + done)?;
        write_forced(dst + done, &buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

/// Write `b` at `dst` in our address space through /proc/self/mem (a
/// forced write, as a debugger's: the area need not be writable).
fn write_forced(dst: u64, b: &[u8]) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::OpenOptions::new().write(true).open("/proc/self/mem").context("opening /proc/self/mem")?;
    mem.write_all_at(b, dst).with_context(|| format!("writing pages at {dst:#x}"))
}

fn fill_private(dir: &ImageDir, pid: u64, placed: &[(VmaEntry, u64)], vdso: &[(u64, u64)]) -> Result<()> {
    let pm = Pagemap::read(dir, pid)?;
    let pages_name = crate::images::pagemap::pages_file_name(pm.head.pages_id);
    let pages = dir.open_file(&pages_name)?;
    let pages_len = pages.metadata().map(|m| m.len()).unwrap_or(0);
    let runs = pm.runs(&format!("pagemap-{pid}.img"), pages_len)?;
    for run in runs {
        fill_run(&pages, &pages_name, &run, |a| premap_addr(placed, a), vdso)?;
    }
    Ok(())
}

/// Copy one pagemap run from the pages file into the premap, split at VMA
/// boundaries. Pages of the vDSO are skipped: the running kernel's is used.
fn fill_run(
    pages: &File,
    pages_name: &str,
    run: &PageRun,
    locate: impl Fn(u64) -> Option<(u64, u64, bool)>,
    skip: &[(u64, u64)],
) -> Result<()> {
    let Some(mut off) = run.pages_offset else { return Ok(()) };
    let mut addr = run.vaddr;
    let end = run.vaddr + run.len();
    while addr < end {
        let Some((dst, room, writable)) = locate(addr) else {
            if let Some(&(_, e)) = skip.iter().find(|(s, e)| *s <= addr && addr < *e) {
                // Not filled here (the vDSO, areas taken from the parent):
                // skip what of the run lies in it.
                let n = e.min(end) - addr;
                addr += n;
                off += n;
                continue;
            }
            bail!("{pages_name}: pages at {addr:#x} fall outside every VMA of the image");
        };
        let n = room.min(end - addr);
        copy_pages(pages, off, dst, n, writable).with_context(|| format!("reading {n} bytes of {pages_name} at {off}"))?;
        addr += n;
        off += n;
    }
    Ok(())
}

fn fill_shmem(dir: &ImageDir, placed: &[(VmaEntry, u64)]) -> Result<()> {
    let mut done = Vec::new();
    for (v, _) in placed.iter().filter(|(v, _)| v.status & status::ANON_SHARED != 0) {
        if done.contains(&v.shmid) {
            continue;
        }
        done.push(v.shmid);
        let name = super::pages::shmem_pagemap_name(v.shmid);
        if !dir.exists(&name) {
            continue;
        }
        let pm = Pagemap::read_named(dir, &name)?;
        let pages_name = crate::images::pagemap::pages_file_name(pm.head.pages_id);
        let pages = dir.open_file(&pages_name)?;
        let pages_len = pages.metadata().map(|m| m.len()).unwrap_or(0);
        let shmid = v.shmid;
        // Offsets in the object map to the premap of any VMA of it.
        let locate = |off: u64| {
            placed.iter().filter(|(w, _)| w.status & status::ANON_SHARED != 0 && w.shmid == shmid).find_map(|(w, at)| {
                let len = w.end - w.start;
                (w.pgoff <= off && off < w.pgoff + len)
                    .then(|| (at + (off - w.pgoff), w.pgoff + len - off, w.prot as i32 & libc::PROT_WRITE != 0))
            })
        };
        for run in pm.runs(&name, pages_len)? {
            fill_run(&pages, &pages_name, &run, locate, &[])?;
        }
    }
    Ok(())
}

/// The remap: our block where the image had its vDSO and vvar
/// (`vdso::decide` found them the same).
fn vdso_remap(vmas: &[VmaEntry], own: &[MapEntry]) -> Result<Option<VdsoMove>> {
    let Some(vdso_t) = vmas.iter().find(|v| v.status & status::AREA_VDSO != 0) else { return Ok(None) };
    let vvar_t = vdso::vvar_of(vmas);
    let ((vs, vl), vvar) = vdso::block(own).context("we have no [vdso]")?;
    if vl != vdso_t.end - vdso_t.start {
        bail!("the image's vDSO is {} bytes, this kernel's {vl}, yet it was found the same", vdso_t.end - vdso_t.start);
    }
    if let (Some((s, e)), Some((_, len))) = (vvar_t, vvar)
        && e - s != len
    {
        bail!("the image's vvar area is {} bytes, this kernel's {len}, yet it was found the same", e - s);
    }
    Ok(Some(VdsoMove { vvar_from: vvar, vdso_from: (vs, vl), vvar_to: vvar_t.map(|(s, _)| s), vdso_to: vdso_t.start }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_avoid_busy_ranges() {
        let busy = [(0x7fff_0000_0000, crate::mem::TASK_SIZE), (0x7000_0000_0000, 0x7100_0000_0000)];
        let h = find_hole(0x10_0000, &busy).unwrap();
        assert!(busy.iter().all(|(s, e)| h + 0x10_0000 <= *s || h >= *e), "{h:#x}");
        assert!(h + 0x10_0000 <= 0x7fff_0000_0000);
        assert_eq!(find_hole(u64::MAX / 2, &busy), None);
    }
}
