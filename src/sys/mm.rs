//! Raw address-space operations of a restore: mapping at fixed addresses
//! and reading image data straight into such mappings. These act on memory
//! no Rust object owns (areas a restore maps for the task it becomes).

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// mmap(addr, len, prot, flags, fd, off); `flags` should hold MAP_FIXED or
/// MAP_FIXED_NOREPLACE when `addr` matters. Returns the address.
pub fn map(addr: u64, len: u64, prot: i32, flags: i32, fd: Option<BorrowedFd<'_>>, off: u64) -> Result<u64, Errno> {
    let fd = fd.map_or(-1, |f| f.as_raw_fd());
    // SAFETY: the caller maps over address ranges that hold no Rust object
    // (chosen holes or areas it mapped itself); the kernel validates the rest.
    let r = unsafe { libc::mmap(addr as *mut libc::c_void, len as usize, prot, flags, fd, off as libc::off_t) };
    if r == libc::MAP_FAILED { Err(Errno::last()) } else { Ok(r as u64) }
}

/// munmap(addr, len).
pub fn unmap(addr: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: as for `map`: only ranges the restore mapped itself.
    let r = unsafe { libc::munmap(addr as *mut libc::c_void, len as usize) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// pread `len` bytes at `off` of `fd` into memory at `addr` (a writable
/// mapping the caller created), looping until done.
pub fn pread_into(fd: BorrowedFd<'_>, addr: u64, len: u64, off: u64) -> Result<(), Errno> {
    let mut done = 0u64;
    while done < len {
        // SAFETY: [addr, addr + len) is a writable mapping made by the
        // caller for this data; nothing else references it.
        let n = unsafe {
            libc::pread(fd.as_raw_fd(), (addr + done) as *mut libc::c_void, (len - done) as usize, (off + done) as libc::off_t)
        };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(Errno::EIO);
        }
        done += n as u64;
    }
    Ok(())
}

/// madvise(addr, len, advice) on an area the restore mapped itself.
pub fn madvise(addr: u64, len: u64, advice: i32) -> Result<(), Errno> {
    // SAFETY: advice on a range the caller mapped for the task it is
    // becoming; no Rust object lives there.
    let r = unsafe { libc::madvise(addr as *mut libc::c_void, len as usize, advice) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to): move an area
/// the restore mapped (its pages, shared copy-on-write or not, go along).
pub fn remap(from: u64, len: u64, to: u64) -> Result<u64, Errno> {
    // SAFETY: both ranges are areas the restore mapped or chose itself
    // (premapped task memory, a hole of its premap region); no Rust object
    // lives there.
    let r = unsafe {
        libc::mremap(
            from as *mut libc::c_void,
            len as usize,
            len as usize,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to as *mut libc::c_void,
        )
    };
    if r == libc::MAP_FAILED { Err(Errno::last()) } else { Ok(r as u64) }
}

/// mremap(addr, len, new_len, 0): grow an area the restore mapped in
/// place, into the free range just past it (the same VMA, longer).
pub fn grow(addr: u64, len: u64, new_len: u64) -> Result<(), Errno> {
    // SAFETY: `addr` is an area the restore mapped; without MREMAP_MAYMOVE
    // the kernel only extends it over unmapped addresses.
    let r = unsafe { libc::mremap(addr as *mut libc::c_void, len as usize, new_len as usize, 0) };
    if r == libc::MAP_FAILED { Err(Errno::last()) } else { Ok(()) }
}

/// The first offset of `needle` in `hay` (libc's memmem: fast in
/// unoptimised builds too, where compel scans a libc's whole text).
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    // SAFETY: both pointers come from live slices with their lengths;
    // memmem only reads within them and returns a pointer into `hay` or NULL.
    let p = unsafe { libc::memmem(hay.as_ptr().cast(), hay.len(), needle.as_ptr().cast(), needle.len()) };
    if p.is_null() { None } else { Some(p as usize - hay.as_ptr() as usize) }
}
