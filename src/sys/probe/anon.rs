//! Probe experiments: throwaway anonymous and file mappings.

#[allow(unused_imports)]
use super::*;

/// A private anonymous mapping owned by this value, unmapped on drop.
#[derive(Debug)]
pub struct AnonMap {
    addr: usize,
    len: usize,
    writable: bool,
    /// Pages turned into guard regions (never touched again).
    guarded: Vec<bool>,
}

impl AnonMap {
    /// Map `pages` read-write pages.
    pub fn rw(pages: usize) -> Res<Self> {
        Self::new(pages, libc::PROT_READ | libc::PROT_WRITE)
    }

    /// Map `pages` pages with the given protection.
    pub fn new(pages: usize, prot: libc::c_int) -> Res<Self> {
        let len = pages * page_size();
        // SAFETY: a fresh anonymous mapping at an address the kernel picks
        // overlaps nothing this process uses.
        let p = unsafe { libc::mmap(ptr::null_mut(), len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Self { addr: p as usize, len, writable: prot & libc::PROT_WRITE != 0, guarded: vec![false; pages] })
    }

    pub fn addr(&self) -> usize {
        self.addr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Write one byte at `off` (faults the page in, sets its dirty bits).
    pub fn touch(&self, off: usize, val: u8) -> Res<()> {
        if off >= self.len || !self.writable || self.guarded[off / page_size()] {
            return Err(Errno::EFAULT);
        }
        // SAFETY: `off` is inside our own read-write mapping and the page is
        // not a guard page; volatile so the store really happens.
        unsafe { ptr::write_volatile((self.addr + off) as *mut u8, val) };
        Ok(())
    }

    /// Read one byte at `off`.
    pub fn read(&self, off: usize) -> Res<u8> {
        if off >= self.len || !self.writable || self.guarded[off / page_size()] {
            return Err(Errno::EFAULT);
        }
        // SAFETY: as in `touch`, the address is inside our readable mapping.
        Ok(unsafe { ptr::read_volatile((self.addr + off) as *const u8) })
    }

    /// `madvise(MADV_GUARD_INSTALL)` on one page (Linux 6.13+).
    pub fn guard_page(&mut self, page: usize) -> Res<()> {
        const MADV_GUARD_INSTALL: libc::c_int = 102;
        if page >= self.guarded.len() {
            return Err(Errno::EINVAL);
        }
        let ps = page_size();
        // SAFETY: the range is one page of our own mapping; afterwards
        // `touch`/`read` refuse that page.
        check_int(unsafe { libc::madvise((self.addr + page * ps) as *mut libc::c_void, ps, MADV_GUARD_INSTALL) })?;
        self.guarded[page] = true;
        Ok(())
    }
}

impl Drop for AnonMap {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and nothing refers to it after drop.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// A shared mapping of (the start of) a file, never read or written
/// through; unmapped on drop. Used to see how /proc/PID/maps names it.
#[derive(Debug)]
pub struct FileMap {
    addr: usize,
    len: usize,
}

impl FileMap {
    pub fn shared(fd: BorrowedFd<'_>, len: usize) -> Res<Self> {
        // SAFETY: a new mapping at a kernel-chosen address; Rust code never
        // dereferences it, so the file changing underneath can't matter.
        let p = unsafe {
            libc::mmap(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0)
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Self { addr: p as usize, len })
    }

    pub fn addr(&self) -> usize {
        self.addr
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and nothing refers to it after drop.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}
