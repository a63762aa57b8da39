//! Socket options nix does not wrap: SO_PEEK_OFF.

use std::os::fd::{AsRawFd, BorrowedFd};

/// getsockopt(SO_PEEK_OFF): -1 when peeking by offset is off.
pub fn peek_off(fd: BorrowedFd<'_>) -> std::io::Result<i32> {
    let mut v: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes one int into `v` and its size into `len`.
    let r = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF, (&mut v as *mut libc::c_int).cast(), &mut len)
    };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(v) }
}

/// setsockopt(SO_PEEK_OFF, v).
pub fn set_peek_off(fd: BorrowedFd<'_>, v: i32) -> std::io::Result<()> {
    let v: libc::c_int = v;
    // SAFETY: the kernel reads one int from `v`.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEEK_OFF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}
