//! A detached mount of a new filesystem instance (fsopen, fsconfig
//! CREATE, fsmount): read through its fd, never attached to the tree (a
//! sysfs made so shows the network namespace of the calling thread).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

fn fd_of(r: libc::c_long) -> Result<OwnedFd, Errno> {
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the syscall just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// A detached mount of a new `fstype` superblock.
pub fn detached(fstype: &CStr) -> Result<OwnedFd, Errno> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    // SAFETY: a NUL-terminated name and integer flags.
    let fs = fd_of(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 0 as libc::c_uint) })?;
    // SAFETY: CREATE takes no key or value (null pointers, 0).
    let r = unsafe {
        libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, std::ptr::null::<libc::c_char>(), std::ptr::null::<libc::c_void>(), 0 as libc::c_int)
    };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: integer-only arguments.
    fd_of(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), 0 as libc::c_uint, 0 as libc::c_uint) })
}
