//! Socket calls nix does not wrap: SO_PEEK_OFF, SIOCUNIXFILE, connect(AF_UNSPEC).

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

/// SIOCUNIXFILE (SIOCPROTOPRIVATE): an O_PATH fd of the file a unix
/// socket is bound to (its dentry, also when the path was unlinked).
pub fn unix_file(fd: BorrowedFd<'_>) -> std::io::Result<std::os::fd::OwnedFd> {
    const SIOCUNIXFILE: libc::c_ulong = 0x89E0;
    // SAFETY: the ioctl takes no argument and returns a new fd or -1.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCUNIXFILE as _) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just installed `r` in our table, for us alone.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(r) })
}

/// connect(AF_UNSPEC): a datagram socket forgets its peer.
pub fn disconnect(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: a zeroed sockaddr is a valid AF_UNSPEC (0) address.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: the kernel reads `sa` of the size we pass.
    let r = unsafe { libc::connect(fd.as_raw_fd(), &sa, std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}
