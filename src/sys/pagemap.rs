//! PAGEMAP_SCAN on /proc/PID/pagemap: which pages of a range are present,
//! written, swapped... (the page dump and the memory probes).

use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::ret::{check_int, Res};

pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
pub const PAGE_IS_WPALLOWED: u64 = 1 << 0;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_FILE: u64 = 1 << 2;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;
pub const PAGE_IS_HUGE: u64 = 1 << 6;
pub const PAGE_IS_SOFT_DIRTY: u64 = 1 << 7;
pub const PAGE_IS_GUARD: u64 = 1 << 8;

const PAGEMAP_SCAN: libc::c_ulong = 0xc060_6610;

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// One `struct page_region` the kernel fills.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

/// The inputs of one `PAGEMAP_SCAN` ioctl.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanRequest {
    pub flags: u64,
    pub start: u64,
    pub end: u64,
    pub max_pages: u64,
    pub category_inverted: u64,
    pub category_mask: u64,
    pub category_anyof_mask: u64,
    pub return_mask: u64,
}

/// `ioctl(pagemap_fd, PAGEMAP_SCAN)`: fills `out`, returns (regions, walk_end).
pub fn pagemap_scan(fd: BorrowedFd<'_>, req: &ScanRequest, out: &mut [PageRegion]) -> Res<(usize, u64)> {
    let mut arg = PmScanArg {
        size: size_of::<PmScanArg>() as u64,
        flags: req.flags,
        start: req.start,
        end: req.end,
        walk_end: 0,
        vec: if out.is_empty() { 0 } else { out.as_mut_ptr() as u64 },
        vec_len: out.len() as u64,
        max_pages: req.max_pages,
        category_inverted: req.category_inverted,
        category_mask: req.category_mask,
        category_anyof_mask: req.category_anyof_mask,
        return_mask: req.return_mask,
    };
    // SAFETY: `arg` is a live pm_scan_arg; `vec`/`vec_len` describe `out`,
    // which the kernel fills with at most `vec_len` page_region entries.
    let n = check_int(unsafe { libc::ioctl(fd.as_raw_fd(), PAGEMAP_SCAN as _, &mut arg as *mut PmScanArg) })?;
    Ok((n as usize, arg.walk_end))
}

const _: () = assert!(size_of::<PmScanArg>() == 96);
const _: () = assert!(size_of::<PageRegion>() == 24);
