//! The descriptors this process was started with (what its caller left
//! open: `--inherit-fd`, `swrk FD`, `--status-fd`, `--close`).
//!
//! They are recorded by a constructor that runs before `main` (before any
//! Rust code of ours could own a descriptor), so a recorded number that is
//! still here belongs to no Rust object. Each can then be taken (owned)
//! once, or duplicated; [`super::fd::close_all_except`] forgets the numbers
//! it closes, so a reused number is never handed out.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

/// Recorded numbers nobody has taken yet.
static FREE: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());

/// Runs before `main` (ELF `.init_array`), in every binary linking criu.
#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_AT_START: extern "C" fn() = record;

extern "C" fn record() {
    let fds = open_fds();
    free().extend(fds);
}

fn free() -> MutexGuard<'static, BTreeSet<RawFd>> {
    // Keeps the constructor linked in wherever the registry is used.
    std::hint::black_box(&RECORD_AT_START);
    FREE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The open descriptor numbers, read from /proc/self/fd with raw syscalls
/// (this runs before std is fully set up), the directory's own excluded.
fn open_fds() -> Vec<RawFd> {
    let mut out = Vec::new();
    // SAFETY: a NUL-terminated path and integer flags.
    let dir = unsafe { libc::open(c"/proc/self/fd".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if dir < 0 {
        return out;
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
        while off + 19 <= n as usize {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n as usize {
                break;
            }
            let name = &buf[off + 19..off + reclen];
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            if let Some(fd) = std::str::from_utf8(name).ok().and_then(|s| s.parse::<RawFd>().ok())
                && fd != dir
            {
                out.push(fd);
            }
            off += reclen;
        }
    }
    // SAFETY: `dir` is the descriptor opened above, ours alone.
    unsafe { libc::close(dir) };
    out
}

fn not_inherited(fd: RawFd) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("fd {fd} is not one this process was started with (or was already taken)"))
}

/// Own descriptor `fd` we were started with (once).
pub fn take(fd: RawFd) -> io::Result<OwnedFd> {
    if !free().remove(&fd) {
        return Err(not_inherited(fd));
    }
    // SAFETY: `fd` was open before main and nothing has taken or closed it
    // since (both remove it from FREE), so no Rust object owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Close descriptor `fd` we were started with (`--close`); other numbers
/// are left alone.
pub fn close(fd: RawFd) {
    drop(take(fd));
}

/// A close-on-exec duplicate of descriptor `fd` we were started with,
/// which stays open (and ours to duplicate again).
pub fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    let free = free();
    if !free.contains(&fd) {
        return Err(not_inherited(fd));
    }
    // SAFETY: `fd` is open and owned by nobody (see `take`); the lock keeps
    // it from being taken or closed while borrowed here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    super::fd::dup_cloexec_from(borrowed, 0)
}

/// Forget every recorded number but `keep` (they are being closed).
pub(super) fn forget_all_but(keep: &[u32]) {
    free().retain(|&fd| u32::try_from(fd).is_ok_and(|f| keep.contains(&f)));
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_we_were_started_with_is_recorded() {
        // The test harness starts us with (at least) stdout and stderr open.
        let recorded: Vec<i32> = super::free().iter().copied().collect();
        assert!(recorded.contains(&1) && recorded.contains(&2), "recorded at start: {recorded:?}");
        // A descriptor opened since is not ours to take.
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let n = std::os::fd::AsRawFd::as_raw_fd(&f);
        assert!(super::take(n).is_err());
        assert!(super::dup(n).is_err());
    }
}
