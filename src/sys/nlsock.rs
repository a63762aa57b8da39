//! The network namespace a socket lives in (SIOCGSKNS), for the netlink
//! socket kind's check that a socket is in ours.

use std::io::Result;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// The inode of the network namespace socket `fd` lives in.
pub fn netns_ino(fd: BorrowedFd<'_>) -> Result<u64> {
    const SIOCGSKNS: libc::c_ulong = 0x894c;
    // SAFETY: the ioctl takes no argument; it returns a new fd or -1.
    let ns = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSKNS as _) };
    if ns < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `ns` was just opened for us and nothing else owns it.
    let ns = unsafe { OwnedFd::from_raw_fd(ns) };
    Ok(std::fs::File::from(ns).metadata()?.ino())
}
