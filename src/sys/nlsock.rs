//! The calls the netlink socket kind makes that nix does not wrap: a
//! netlink socket of any protocol number, int options at any level, a
//! socket's protocol name (the `system.sockprotoname` xattr of its /proc
//! fd link) and the inode of its network namespace (SIOCGSKNS).

use std::ffi::CString;
use std::io::{Error, Result};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

fn check(r: libc::c_int) -> Result<libc::c_int> {
    if r < 0 { Err(Error::last_os_error()) } else { Ok(r) }
}

/// socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto).
pub fn socket(proto: i32) -> Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; it returns a new descriptor or -1.
    let fd = check(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// getsockopt(level, name) of one int.
pub fn get_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v` and the size into `len`.
    check(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&mut v as *mut libc::c_int).cast(), &mut len) })?;
    Ok(v)
}

/// setsockopt(level, name) of one int.
pub fn set_int(fd: BorrowedFd<'_>, level: i32, name: i32, v: i32) -> Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel reads one int from `v`.
    check(unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (&v as *const libc::c_int).cast(), len) }).map(drop)
}

/// The protocol name the kernel gives the socket behind `path` (a
/// /proc/PID/fd/N link): "NETLINK", "UNIX", "TCP", ...
pub fn proto_name(path: &str) -> Result<String> {
    let p = CString::new(path).map_err(|_| Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = [0u8; 64];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`; both names end in NUL.
    let n = unsafe { libc::getxattr(p.as_ptr(), c"system.sockprotoname".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Error::last_os_error());
    }
    let name = buf[..n as usize].split(|&b| b == 0).next().unwrap_or(&[]);
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// The inode of the network namespace socket `fd` lives in.
pub fn netns_ino(fd: BorrowedFd<'_>) -> Result<u64> {
    const SIOCGSKNS: libc::c_ulong = 0x894c;
    // SAFETY: the ioctl takes no argument; it returns a new fd or -1.
    let ns = check(unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSKNS as _) })?;
    // SAFETY: `ns` was just opened for us and nothing else owns it.
    let ns = unsafe { OwnedFd::from_raw_fd(ns) };
    Ok(std::fs::File::from(ns).metadata()?.ino())
}

/// How many instructions the classic BPF filter attached to socket `fd`
/// has (0: none).
pub fn filter_len(fd: BorrowedFd<'_>) -> Result<u32> {
    let mut len: libc::socklen_t = 0;
    // SAFETY: with a zero length the kernel writes nothing to the (null)
    // buffer and stores the filter's instruction count in `len`.
    check(unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_GET_FILTER, std::ptr::null_mut(), &mut len) })?;
    Ok(len)
}
