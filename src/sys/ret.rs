//! Raw syscall returns as Rust results: -1 becomes the errno, a new
//! descriptor becomes an `OwnedFd`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// Result of a raw syscall: the value, or the errno it failed with.
pub type Res<T> = Result<T, Errno>;

pub(super) fn check(ret: libc::c_long) -> Res<libc::c_long> {
    if ret == -1 { Err(Errno::last()) } else { Ok(ret) }
}

pub(super) fn check_int(ret: libc::c_int) -> Res<libc::c_int> {
    if ret == -1 { Err(Errno::last()) } else { Ok(ret) }
}

/// The new descriptor a syscall returned (`ret`), owned. Only for the
/// return value of a syscall that creates a descriptor (callers in `sys`
/// pass it straight from the call).
pub(super) fn own_fd(ret: libc::c_long) -> Res<OwnedFd> {
    let fd = check(ret)?;
    // SAFETY: the kernel just installed this descriptor for us (the caller
    // passes a creating syscall's return value); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
