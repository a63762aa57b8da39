//! Descriptor operations: duplicates as `OwnedFd`, descriptors at exact
//! numbers for a restored task's table, closing all but a few, flags.
//! Descriptors we were started with are claimed through [`super::inherited`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Mark every fd from `first` up close-on-exec (close_range with
/// CLOSE_RANGE_CLOEXEC), so programs we start inherit only 0..first.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on fds;
    // it closes nothing, so no Rust-owned fd is invalidated.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// F_DUPFD_CLOEXEC: a new descriptor numbered `min` or above on `fd`'s
/// description (the lowest free one), close-on-exec.
pub fn dup_cloexec_from(fd: impl AsFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC reads an integer; `fd` is borrowed, so open.
    let r = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    super::ret::own_fd(r as libc::c_long).map_err(io::Error::from)
}

/// accept4(SOCK_CLOEXEC): the next connection on a listening socket.
pub fn accept_cloexec(sk: impl AsFd) -> Result<OwnedFd, nix::errno::Errno> {
    // SAFETY: NULL address and length: the kernel writes no peer address.
    let r = unsafe { libc::accept4(sk.as_fd().as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    super::ret::own_fd(r as libc::c_long)
}

/// Put a duplicate of `src` at descriptor number `target` (a restored
/// task's fd), close-on-exec if `cloexec`. `target` must be free: this
/// never replaces an open descriptor (EBUSY then), so it cannot pull a
/// descriptor from under whatever owns it. The new descriptor belongs to no
/// Rust object: it is the restored task's, left open on purpose.
pub fn dup_to(src: BorrowedFd<'_>, target: RawFd, cloexec: bool) -> io::Result<()> {
    let cmd = if cloexec { libc::F_DUPFD_CLOEXEC } else { libc::F_DUPFD };
    // SAFETY: F_DUPFD(_CLOEXEC) takes an integer and creates a descriptor
    // at the lowest free number >= target: it closes nothing.
    let r = unsafe { libc::fcntl(src.as_raw_fd(), cmd, target) };
    let got = super::ret::own_fd(r as libc::c_long)?;
    if got.as_raw_fd() != target {
        // `target` was taken; `got` (ours) closes on drop.
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    // Left open for the task: into_raw_fd gives up ownership without closing.
    let _ = std::os::fd::IntoRawFd::into_raw_fd(got);
    Ok(())
}

/// A pipe made before a series of forks, whose ends every forked process
/// inherits (the restore's per-task channels): each process takes the end
/// it uses, or closes the one it does not, from its own copy. The ends are
/// `OwnedFd`s behind `Cell`s, so taking or closing one in a process (its
/// own copy of memory) leaves the others' copies alone, and each end is
/// closed at most once per process.
pub struct ForkPipe {
    read: std::cell::Cell<Option<OwnedFd>>,
    write: std::cell::Cell<Option<OwnedFd>>,
}

impl ForkPipe {
    /// pipe2(O_CLOEXEC).
    pub fn new() -> io::Result<ForkPipe> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(ForkPipe { read: std::cell::Cell::new(Some(r)), write: std::cell::Cell::new(Some(w)) })
    }

    /// Own the read end (None if this process already took or closed it).
    pub fn take_read(&self) -> Option<OwnedFd> {
        self.read.take()
    }

    /// Own the write end (None if this process already took or closed it).
    pub fn take_write(&self) -> Option<OwnedFd> {
        self.write.take()
    }

    /// Close this process's copy of the read end.
    pub fn close_read(&self) {
        drop(self.read.take());
    }

    /// Close this process's copy of the write end.
    pub fn close_write(&self) {
        drop(self.write.take());
    }
}

/// Close every descriptor of this process but `keep`: the last step of a
/// process becoming a restored task (or the cleaner that holds it), whose
/// table must hold the task's fds and nothing else.
///
/// Sound, though it closes descriptors Rust objects may own: in criu no
/// memory safety rests on a descriptor staying open (mappings keep their
/// own reference to the file; no io_uring or shared ring is set up through
/// one), so what such an object can do afterwards is fail (EBADF) or act
/// on a later file with the same number, not corrupt memory. Callers use
/// it only where the process stops using what it did not keep (it goes on
/// to the restorer blob or `_exit`s). Descriptors we were started with
/// that are closed here can no longer be claimed ([`super::inherited`]).
pub fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().filter_map(|&k| u32::try_from(k).ok()).collect();
    keep.sort_unstable();
    keep.dedup();
    super::inherited::forget_all_but(&keep);
    // The gaps between kept numbers: [0, k0), (k0, k1), ..., (kn, MAX].
    let mut from = 0u32;
    for k in keep.iter().copied().chain(std::iter::once(u32::MAX)) {
        if k > from {
            let to = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: see the function's doc: closing has no memory-safety
            // effect on this process; close_range takes integers only.
            unsafe { libc::syscall(libc::SYS_close_range, from, to, 0u32) };
        }
        from = k.saturating_add(1);
    }
}

/// eventfd(initval) with close-on-exec; a 64-bit count is set by writing
/// what does not fit the initial value.
pub fn eventfd(count: u64) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::Write;
    let init = u32::try_from(count).unwrap_or(0);
    // SAFETY: eventfd takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::eventfd(init, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = super::ret::own_fd(fd as libc::c_long)?;
    if u64::from(init) != count {
        let mut f = std::fs::File::from(fd.try_clone()?);
        f.write_all(&count.to_ne_bytes())?;
    }
    Ok(fd)
}

/// Who gets the I/O signals of the description behind `fd` (F_GETSIG,
/// F_GETOWN_EX, F_GETOWNER_UIDS): (signal, owner type, owner pid, owner
/// uid, owner euid); pid 0: no owner (the uids are then 0).
pub fn owner(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(u32, u32, i32, u32, u32)> {
    use std::os::fd::AsRawFd;
    let fd = fd.as_raw_fd();
    let mut ex = FOwnerEx { kind: 0, pid: 0 };
    let mut uids = [0u32; 2];
    // SAFETY: F_GETSIG takes no argument; F_GETOWN_EX writes one
    // f_owner_ex and F_GETOWNER_UIDS two u32s, into locals.
    unsafe {
        let sig = libc::fcntl(fd, F_GETSIG);
        if sig < 0 || libc::fcntl(fd, F_GETOWN_EX, &mut ex as *mut FOwnerEx) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if ex.pid != 0 && libc::fcntl(fd, F_GETOWNER_UIDS, uids.as_mut_ptr()) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((sig as u32, ex.kind as u32, ex.pid, uids[0], uids[1]))
    }
}

/// The kernel's struct f_owner_ex.
#[repr(C)]
struct FOwnerEx {
    kind: libc::c_int,
    pid: libc::c_int,
}

const F_GETSIG: libc::c_int = 11;
const F_GETOWN_EX: libc::c_int = 16;
const F_GETOWNER_UIDS: libc::c_int = 17;

/// F_GETFL of fd number `fd` (of this process).
pub fn get_fl(fd: i32) -> std::io::Result<i32> {
    // SAFETY: F_GETFL takes no argument; a bad fd is EBADF.
    let r = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// F_SETFL of fd number `fd` (of this process).
pub fn set_fl(fd: i32, flags: i32) -> std::io::Result<()> {
    // SAFETY: F_SETFL takes an integer; a bad fd is EBADF.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags line of /proc/self/fdinfo/N (octal; O_CLOEXEC is 02000000).
    fn fdinfo_flags(n: RawFd) -> u32 {
        let s = std::fs::read_to_string(format!("/proc/self/fdinfo/{n}")).unwrap();
        let v = s.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
        u32::from_str_radix(v, 8).unwrap()
    }

    #[test]
    fn dup_to_takes_only_a_free_number() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        // A number free right now, far above what other tests open.
        let n = dup_cloexec_from(&f, 900).unwrap().as_raw_fd();
        dup_to(f.as_fd(), n, true).unwrap();
        assert_ne!(fdinfo_flags(n) & libc::O_CLOEXEC as u32, 0);
        // Taken now: a second install is refused and changes nothing.
        let e = dup_to(f.as_fd(), n, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY));
        assert_ne!(fdinfo_flags(n) & libc::O_CLOEXEC as u32, 0);
        // (fd n stays open: it belongs to no Rust object, as a task's would.)
    }

    #[test]
    fn fork_pipe_ends_are_taken_once() {
        let p = ForkPipe::new().unwrap();
        p.close_read();
        assert!(p.take_read().is_none());
        let w = p.take_write().unwrap();
        assert!(p.take_write().is_none());
        assert_ne!(fdinfo_flags(w.as_raw_fd()) & libc::O_CLOEXEC as u32, 0);
    }
}
