//! inotify: a new instance, watches, and the C/R ioctl that picks the next
//! watch descriptor (so a restore gets the dumped numbers back).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::ret::{check_int, own_fd, Res};

/// `inotify_init1(IN_CLOEXEC)`.
pub fn init() -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) } as libc::c_long)
}

/// `inotify_add_watch(fd, path, mask)`: the watch descriptor.
pub fn add_watch(fd: BorrowedFd<'_>, path: &CStr, mask: u32) -> Res<i32> {
    // SAFETY: path is NUL-terminated.
    check_int(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) })
}

/// `ioctl(inotify_fd, INOTIFY_IOC_SETNEXTWD, wd)`.
pub fn set_next_wd(fd: BorrowedFd<'_>, wd: i32) -> Res<()> {
    const INOTIFY_IOC_SETNEXTWD: libc::c_ulong = 0x4004_4900;
    // SAFETY: the argument is passed by value.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), INOTIFY_IOC_SETNEXTWD as _, wd as libc::c_long) })?;
    Ok(())
}
