//! hugetlb memory as CRIU 4.2 records it: a hugetlb area's page size goes
//! into its mmap flags (MAP_HUGETLB with the size as log2 << 26) and, for a
//! hugetlb memfd or shared anonymous hugetlb memory (recorded as a memfd
//! named "/anon_hugepage"), into memfd.img's hugetlb_flag (MFD_HUGETLB with
//! the same size bits).

use std::fs::File;

use anyhow::{bail, Context, Result};

/// Where mmap and memfd_create take log2 of the huge page size.
pub const SIZE_SHIFT: u32 = 26;

/// The name /proc shows for anonymous hugetlb memory.
pub const ANON_NAME: &str = "/anon_hugepage";

/// Whether `f` lives on hugetlbfs.
pub fn is_hugetlb(f: &File) -> Result<bool> {
    let st = nix::sys::statfs::fstatfs(f).context("fstatfs")?;
    Ok(st.filesystem_type() == nix::sys::statfs::HUGETLBFS_MAGIC)
}

/// The size bits (log2 of the page size << [`SIZE_SHIFT`]) of `f`, a
/// hugetlbfs file (its block size is its huge page size).
pub fn size_bits(f: &File) -> Result<u32> {
    let st = nix::sys::statfs::fstatfs(f).context("fstatfs")?;
    let size = st.block_size() as u64;
    if !size.is_power_of_two() || size < 4096 {
        bail!("a hugetlbfs block size of {size} bytes");
    }
    Ok(size.trailing_zeros() << SIZE_SHIFT)
}

/// memfd.img's hugetlb_flag for a memfd on hugetlbfs `f`.
pub fn memfd_flag(f: &File) -> Result<u32> {
    Ok(libc::MFD_HUGETLB | size_bits(f)?)
}

/// The huge page size a hugetlb_flag or mmap flags word names (None: no
/// size bits, the default size).
pub fn page_size(flags: u32) -> Option<u64> {
    let log2 = (flags >> SIZE_SHIFT) & 0x3f;
    (log2 != 0).then(|| 1u64 << log2)
}

/// This system's default huge page size (/proc/meminfo's Hugepagesize;
/// 2 MiB when it can't be read).
pub fn default_size() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("Hugepagesize:").map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>())))
        .and_then(|r| r.ok())
        .map_or(2 << 20, |kb| kb << 10)
}

#[cfg(test)]
mod tests {
    #[test]
    fn size_bits_are_log2_of_the_page_size() {
        // CRIU 4.2's records of 2 MiB pages: MFD_HUGETLB | MFD_HUGE_2MB.
        assert_eq!(libc::MFD_HUGETLB | (21 << super::SIZE_SHIFT), 1_409_286_148);
        assert_eq!(super::page_size(1_409_286_148), Some(2 << 20));
        assert_eq!(super::page_size(libc::MFD_HUGETLB), None);
    }
}
