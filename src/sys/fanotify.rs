//! fanotify: a new group, its marks, and how many bytes of events wait in
//! it (FIONREAD).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::ret::{check_int, own_fd, Res};

/// `fanotify_init(flags, event_f_flags)`.
pub fn init(flags: u32, event_flags: u32) -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::fanotify_init(flags, event_flags) } as libc::c_long)
}

/// `fanotify_mark(fd, flags, mask, AT_FDCWD, path)`.
pub fn mark(fd: BorrowedFd<'_>, flags: u32, mask: u64, path: &CStr) -> Res<()> {
    // SAFETY: path is NUL-terminated; the rest are integers.
    check_int(unsafe { libc::fanotify_mark(fd.as_raw_fd(), flags, mask, libc::AT_FDCWD, path.as_ptr()) })?;
    Ok(())
}

/// Bytes of events queued in the group (`ioctl(FIONREAD)`).
pub fn queued(fd: BorrowedFd<'_>) -> Res<i32> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) })?;
    Ok(n)
}
