//! Memory probes: pagemap, PAGEMAP_SCAN, dirty tracking (soft-dirty and
//! userfaultfd async write-protect), userfaultfd, AIO ring and vDSO moves.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;

use super::{Ctx, Probe, ProbeError};
use crate::sys::pagemap::{self as pm, PageRegion, ScanRequest};
use crate::sys::probe::{self as k, AnonMap};

/// What /proc/PID/pagemap gives us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagemapMode {
    /// PFNs and flags.
    Full,
    /// Flags only (PFNs hidden without CAP_SYS_ADMIN).
    FlagsOnly,
    /// Opening it is not permitted.
    Disabled,
}

/// Ways to find the pages written since a reset (for pre-dump and
/// incremental dumps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirtyTrack {
    /// Soft-dirty bits (clear_refs 4 + pagemap bit 55; CONFIG_MEM_SOFT_DIRTY).
    pub soft_dirty: bool,
    /// PAGEMAP_SCAN with PAGE_IS_WRITTEN over a userfaultfd registered for
    /// asynchronous write-protect (UFFD_FEATURE_WP_ASYNC).
    pub uffd_wp_async: bool,
}

impl DirtyTrack {
    /// Is any way of tracking memory changes available?
    pub fn available(&self) -> bool {
        self.soft_dirty || self.uffd_wp_async
    }
}

const PME_PRESENT: u64 = 1 << 63;
const PME_PFRAME_MASK: u64 = (1 << 55) - 1;

/// The events lazy restore needs from userfaultfd (CRIU's
/// NEED_UFFD_API_FEATURES).
pub const UFFD_NONCOOP_FEATURES: u64 = k::UFFD_FEATURE_EVENT_FORK
    | k::UFFD_FEATURE_EVENT_REMAP
    | k::UFFD_FEATURE_EVENT_UNMAP
    | k::UFFD_FEATURE_EVENT_REMOVE;

fn open_pagemap() -> Probe<File> {
    File::open("/proc/self/pagemap").ctx("Can't open /proc/self/pagemap")
}

/// Read /proc/self/pagemap for a page we just dirtied.
pub fn probe_pagemap() -> Probe<PagemapMode> {
    let f = match File::open("/proc/self/pagemap") {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(PagemapMode::Disabled),
        Err(e) => return Err(e).ctx("Can't open /proc/self/pagemap"),
    };
    let map = AnonMap::rw(1).ctx("Can't mmap memory for pagemap test")?;
    let mut ent = 0u64;
    for _ in 0..3 {
        map.touch(0, 1).ctx("Can't touch the test page")?;
        let mut buf = [0u8; 8];
        let off = (map.addr() / k::page_size() * 8) as u64;
        f.read_exact_at(&mut buf, off).ctx("Can't read pagemap")?;
        ent = u64::from_ne_bytes(buf);
        if ent & PME_PRESENT != 0 {
            break;
        }
    }
    if ent & PME_PRESENT == 0 {
        return Err(ProbeError::msg("pagemap shows a just-written page as not present"));
    }
    Ok(if ent & PME_PFRAME_MASK == 0 { PagemapMode::FlagsOnly } else { PagemapMode::Full })
}

fn scan(f: &File, req: &ScanRequest, out: &mut [PageRegion]) -> Result<Vec<PageRegion>, Errno> {
    let (n, _) = pm::pagemap_scan(f.as_fd(), req, out)?;
    Ok(out[..n.min(out.len())].to_vec())
}

/// CRIU's pagemap scan arguments: present or swapped anonymous pages that
/// are not the zero page, reported with their soft-dirty bit.
fn criu_scan_request(map: &AnonMap) -> ScanRequest {
    ScanRequest {
        start: map.addr() as u64,
        end: (map.addr() + map.len()) as u64,
        category_inverted: pm::PAGE_IS_PFNZERO | pm::PAGE_IS_FILE,
        category_mask: pm::PAGE_IS_PFNZERO | pm::PAGE_IS_FILE,
        category_anyof_mask: pm::PAGE_IS_PRESENT | pm::PAGE_IS_SWAPPED,
        return_mask: pm::PAGE_IS_PRESENT | pm::PAGE_IS_SWAPPED | pm::PAGE_IS_SOFT_DIRTY,
        ..Default::default()
    }
}

/// ioctl(PAGEMAP_SCAN): scan a 4-page mapping with the first two pages
/// written and expect exactly those two reported present.
pub fn probe_pagemap_scan() -> Probe<bool> {
    let f = open_pagemap()?;
    let map = AnonMap::rw(4).ctx("Can't mmap memory for PAGEMAP_SCAN test")?;
    let ps = k::page_size();
    map.touch(0, 1).ctx("Can't touch the test page")?;
    map.touch(ps, 1).ctx("Can't touch the test page")?;
    let mut out = [PageRegion::default(); 8];
    let regions = match scan(&f, &criu_scan_request(&map), &mut out) {
        Ok(r) => r,
        Err(Errno::EINVAL | Errno::ENOTTY) => return Ok(false),
        Err(e) => return Err(ProbeError::sys("PAGEMAP_SCAN failed with unexpected errno", e)),
    };
    let start = map.addr() as u64;
    match regions.as_slice() {
        [r] if r.start == start && r.end == start + 2 * ps as u64 && r.categories & pm::PAGE_IS_PRESENT != 0 => Ok(true),
        other => Err(ProbeError::msg(format!("PAGEMAP_SCAN returned unexpected regions {other:?}"))),
    }
}

/// madvise(MADV_GUARD_INSTALL) on a page of our own.
pub fn probe_madv_guard() -> Probe<bool> {
    let mut map = AnonMap::rw(1).ctx("Can't mmap a page for has_madv_guard feature test")?;
    match map.guard_page(0) {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL) => Ok(false),
        Err(e) => Err(ProbeError::sys("madvise failed (has_madv_guard check)", e)),
    }
}

/// PAGEMAP_SCAN accepts PAGE_IS_GUARD in its return mask; when guard
/// regions exist, a guard page must also be reported as one.
pub fn probe_pagemap_scan_guard_pages() -> Probe<bool> {
    if !probe_pagemap_scan()? {
        return Ok(false);
    }
    let f = open_pagemap()?;
    let mut map = AnonMap::rw(4).ctx("Can't mmap memory for PAGEMAP_SCAN test")?;
    let mut req = criu_scan_request(&map);
    req.return_mask |= pm::PAGE_IS_GUARD;
    let mut out = [PageRegion::default(); 8];
    match scan(&f, &req, &mut out) {
        Ok(_) => {}
        Err(Errno::EINVAL) => return Ok(false),
        Err(e) => return Err(ProbeError::sys("PAGEMAP_SCAN failed with unexpected errno", e)),
    }
    if map.guard_page(2).is_err() {
        // No guard regions on this kernel: accepting the flag is all we can check.
        return Ok(true);
    }
    let req = ScanRequest {
        start: map.addr() as u64,
        end: (map.addr() + map.len()) as u64,
        category_anyof_mask: pm::PAGE_IS_GUARD,
        return_mask: pm::PAGE_IS_GUARD,
        ..Default::default()
    };
    let regions = scan(&f, &req, &mut out).ctx("PAGEMAP_SCAN failed with unexpected errno")?;
    let ps = k::page_size() as u64;
    let g = map.addr() as u64 + 2 * ps;
    match regions.as_slice() {
        [r] if r.start == g && r.end == g + ps => Ok(true),
        _ => Ok(false),
    }
}

/// Soft-dirty tracking, tested in a child (clear_refs resets the bits of
/// the whole process).
pub fn probe_soft_dirty() -> Probe<bool> {
    let st = k::soft_dirty_child().ctx("Can't fork the soft-dirty test child")?;
    match k::exit_code(&st) {
        Some(0) => Ok(true),
        Some(2) => Ok(false),
        _ => Err(ProbeError::msg(format!("soft-dirty test child failed: {st:?}"))),
    }
}

/// userfaultfd() + UFFDIO_API: the feature bits offered, None when
/// userfaultfd is missing (ENOSYS) or not permitted (EPERM).
pub fn probe_uffd_features() -> Probe<Option<u64>> {
    let fd = match k::userfaultfd(libc::O_CLOEXEC | libc::O_NONBLOCK) {
        Ok(fd) => fd,
        Err(Errno::ENOSYS | Errno::EPERM) => return Ok(None),
        Err(e) => return Err(ProbeError::sys("Lazy pages are not available", e)),
    };
    let api = k::uffdio_api(fd.as_fd(), 0).ctx("Failed to get uffd API")?;
    Ok(Some(api.features))
}

pub fn probe_uffd() -> Probe<bool> {
    Ok(probe_uffd_features()?.is_some())
}

pub fn probe_uffd_noncoop() -> Probe<bool> {
    Ok(probe_uffd_features()?.is_some_and(|f| f & UFFD_NONCOOP_FEATURES == UFFD_NONCOOP_FEATURES))
}

/// End-to-end test of the dirty tracking dump would use when soft-dirty is
/// missing: register a mapping with userfaultfd for asynchronous
/// write-protect, reset it with PAGEMAP_SCAN(WP_MATCHING), write one page
/// and expect PAGEMAP_SCAN to report exactly that page as written.
pub fn probe_uffd_wp_async_tracking() -> Probe<bool> {
    let Some(features) = probe_uffd_features()? else { return Ok(false) };
    let want = k::UFFD_FEATURE_WP_ASYNC | k::UFFD_FEATURE_WP_UNPOPULATED;
    if features & want != want || !probe_pagemap_scan()? {
        return Ok(false);
    }
    let ps = k::page_size();
    let map = AnonMap::rw(4).ctx("Can't mmap memory for the write-tracking test")?;
    for p in 0..4 {
        map.touch(p * ps, 1).ctx("Can't touch the test page")?;
    }
    let uffd = k::userfaultfd(libc::O_CLOEXEC | libc::O_NONBLOCK).ctx("Can't open userfaultfd")?;
    k::uffdio_api(uffd.as_fd(), want).ctx("Failed to get uffd API")?;
    k::uffdio_register_wp(uffd.as_fd(), &map).ctx("Can't register memory for write-protect")?;
    let f = open_pagemap()?;
    let range = |flags, category| ScanRequest {
        flags,
        start: map.addr() as u64,
        end: (map.addr() + map.len()) as u64,
        category_mask: category,
        return_mask: category,
        ..Default::default()
    };
    let mut out = [PageRegion::default(); 8];
    // Reset: write-protect every page that was written.
    scan(&f, &range(pm::PM_SCAN_WP_MATCHING | pm::PM_SCAN_CHECK_WPASYNC, pm::PAGE_IS_WRITTEN), &mut out)
        .ctx("PAGEMAP_SCAN can't reset written pages")?;
    let clean = scan(&f, &range(0, pm::PAGE_IS_WRITTEN), &mut out).ctx("PAGEMAP_SCAN failed")?;
    if !clean.is_empty() {
        return Ok(false);
    }
    map.touch(2 * ps + 5, 2).ctx("Can't touch the test page")?;
    let dirty = scan(&f, &range(0, pm::PAGE_IS_WRITTEN), &mut out).ctx("PAGEMAP_SCAN failed")?;
    let p2 = (map.addr() + 2 * ps) as u64;
    Ok(matches!(dirty.as_slice(), [r] if r.start == p2 && r.end == p2 + ps as u64))
}

/// One line of /proc/self/maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapLine {
    pub start: usize,
    pub end: usize,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
    pub name: String,
}

/// Parse a maps file ("start-end perms offset maj:min inode   name").
pub fn parse_maps(text: &str) -> Probe<Vec<MapLine>> {
    let bad = |l: &str| ProbeError::msg(format!("Bad maps format ({l})"));
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(6, ' ');
        let (range, _perms, _off, dev, ino) = (it.next(), it.next(), it.next(), it.next(), it.next());
        let (Some(range), Some(dev), Some(ino)) = (range, dev, ino) else { return Err(bad(line)) };
        let (s, e) = range.split_once('-').ok_or_else(|| bad(line))?;
        let (maj, min) = dev.split_once(':').ok_or_else(|| bad(line))?;
        out.push(MapLine {
            start: usize::from_str_radix(s, 16).map_err(|_| bad(line))?,
            end: usize::from_str_radix(e, 16).map_err(|_| bad(line))?,
            dev_major: u32::from_str_radix(maj, 16).map_err(|_| bad(line))?,
            dev_minor: u32::from_str_radix(min, 16).map_err(|_| bad(line))?,
            inode: ino.parse().map_err(|_| bad(line))?,
            name: it.next().unwrap_or("").trim_start().to_string(),
        });
    }
    Ok(out)
}

pub fn self_maps() -> Probe<Vec<MapLine>> {
    parse_maps(&std::fs::read_to_string("/proc/self/maps").ctx("Can't read /proc/self/maps")?)
}

/// io_setup() a context, move its ring with mremap() and check the kernel
/// still finds it (io_getevents on the new address).
pub fn probe_aio_remap() -> Probe<()> {
    let mut ctx = k::AioCtx::setup(16).ctx("No AIO syscall")?;
    let maps = self_maps()?;
    let ring = maps
        .iter()
        .find(|m| m.start as u64 == ctx.id())
        .filter(|m| m.name == "/[aio] (deleted)")
        .ok_or_else(|| ProbeError::msg("No AIO ring at expected location"))?;
    ctx.remap(ring.end - ring.start).ctx("Can't remap AIO ring")?;
    ctx.getevents_nowait().ctx("AIO remap doesn't work properly")?;
    Ok(())
}

/// Move [vvar]/[vvar_vclock]/[vdso]/[sigpage] in a child and take a signal
/// there: the kernel must track moved special mappings (restore puts the
/// vDSO back where the dumped task had it).
pub fn probe_special_mapping_mremap() -> Probe<()> {
    const SPECIAL: [&str; 4] = ["[vvar]", "[vvar_vclock]", "[vdso]", "[sigpage]"];
    let maps = self_maps()?;
    let mut ranges = Vec::new();
    for name in SPECIAL {
        let found: Vec<_> = maps.iter().filter(|m| m.name == name).collect();
        if found.len() > 1 {
            return Err(ProbeError::msg(format!("Special mapping meet twice: {name}")));
        }
        ranges.extend(found.iter().map(|m| (m.start, m.end)));
    }
    if ranges.is_empty() {
        return Ok(());
    }
    let st = k::special_mappings_mremap_child(&ranges)
        .map_err(|e| ProbeError::sys("check_special_mapping_mremap(): failed to fork()", e))?;
    match st {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        nix::sys::wait::WaitStatus::Exited(_, c) => Err(ProbeError::msg(format!("Child exited with {c}"))),
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => Err(ProbeError::msg(format!(
            "Child killed by signal {}\nYour kernel probably lacks the support for mremapping special mappings",
            sig as i32
        ))),
        other => Err(ProbeError::msg(format!("BUG: waitpid() returned stat={other:?}"))),
    }
}

/// arch_prctl(ARCH_MAP_VDSO_*) exists (restore can map the vDSO where the
/// image wants it instead of moving ours).
pub fn probe_can_map_vdso() -> Probe<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        let st = k::arch_map_vdso32_child().ctx("kdat_can_map_vdso(): failed to fork()")?;
        match k::exit_code(&st) {
            Some(c) => Ok(c == 1),
            None => Err(ProbeError::msg("Failed to wait for arch_prctl() test")),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Ok(false)
    }
}

/// memfd_create(MFD_HUGETLB).
pub fn probe_memfd_hugetlb() -> Probe<bool> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    match memfd_create(c"", MFdFlags::MFD_HUGETLB | MFdFlags::MFD_CLOEXEC) {
        Ok(_) => Ok(true),
        Err(Errno::EINVAL | Errno::ENOENT | Errno::ENOSYS) => Ok(false),
        Err(e) => Err(ProbeError::sys("Unexpected error from memfd_create(\"\", MFD_HUGETLB)", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parsing() {
        let text = "55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1234                       /usr/bin/cat\n\
                    7ffc1b9f0000-7ffc1b9f4000 r--p 00000000 00:00 0                          [vvar]\n\
                    7f0000000000-7f0000001000 rw-s 00000000 00:10 99 /[aio] (deleted)\n\
                    7f0000002000-7f0000003000 rw-p 00000000 00:00 0 \n";
        let m = parse_maps(text).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].start, 0x55d0c0a00000);
        assert_eq!((m[0].dev_major, m[0].dev_minor, m[0].inode), (0xfd, 1, 1234));
        assert_eq!(m[0].name, "/usr/bin/cat");
        assert_eq!(m[1].name, "[vvar]");
        assert_eq!(m[2].name, "/[aio] (deleted)");
        assert_eq!(m[3].name, "");
        assert!(parse_maps("garbage").is_err());
    }

    #[test]
    fn pagemap_is_readable() {
        assert_ne!(probe_pagemap().unwrap(), PagemapMode::Disabled);
    }

    #[test]
    fn pagemap_scan_and_uffd_agree_with_the_kernel() {
        // This machine's kernel (6.18) has both; the probes must say so.
        assert!(probe_pagemap_scan().unwrap());
        let f = probe_uffd_features().unwrap().expect("userfaultfd");
        assert_ne!(f & k::UFFD_FEATURE_WP_ASYNC, 0);
        assert!(probe_uffd_noncoop().unwrap());
        assert!(probe_uffd_wp_async_tracking().unwrap());
    }

    #[test]
    fn soft_dirty_probe_runs() {
        // Soft-dirty may be compiled out; the probe must answer either way.
        probe_soft_dirty().unwrap();
    }

    #[test]
    fn aio_and_vdso_moves() {
        probe_aio_remap().unwrap();
        probe_special_mapping_mremap().unwrap();
    }

    #[test]
    fn guard_pages() {
        let madv = probe_madv_guard().unwrap();
        let scan = probe_pagemap_scan_guard_pages().unwrap();
        if madv {
            // Kernels with guard regions (6.13+) also report them (6.14+);
            // at least the probe must not break.
            let _ = scan;
        }
    }
}
