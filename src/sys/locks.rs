//! File locks and leases: flock(2), fcntl record locks (POSIX and OFD, set
//! and tested), leases (F_SETLEASE/F_GETLEASE), and taking one pending
//! signal off the thread (the I/O signal a lease break sends).

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::ret::{check_int, Res};

/// flock(fd, op) (LOCK_SH/LOCK_EX/LOCK_UN, with LOCK_NB or not).
pub fn flock(fd: BorrowedFd<'_>, op: i32) -> Res<()> {
    // SAFETY: flock takes a descriptor (borrowed, so open) and an integer.
    check_int(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(drop)
}

/// A record lock of `ty` (F_RDLCK/F_WRLCK/F_UNLCK) on `start`..`start+len`
/// (len 0: to the end), from the file's start.
pub fn record(ty: i32, start: i64, len: i64) -> libc::flock {
    libc::flock { l_type: ty as libc::c_short, l_whence: libc::SEEK_SET as libc::c_short, l_start: start, l_len: len, l_pid: 0 }
}

/// fcntl(fd, cmd, &lk) for the record-lock commands (F_SETLK, F_GETLK,
/// F_OFD_SETLK, F_OFD_GETLK, ...): F_GETLK-style commands rewrite `lk`.
pub fn fcntl_lock(fd: BorrowedFd<'_>, cmd: i32, lk: &mut libc::flock) -> Res<()> {
    // SAFETY: the record-lock commands read (and the GETLK ones write) one
    // struct flock, which `lk` is, valid for the call.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, lk as *mut libc::flock) }).map(drop)
}

/// F_SETLEASE: take (or drop, F_UNLCK) a lease of `ty` on the description.
pub fn set_lease(fd: BorrowedFd<'_>, ty: i32) -> Res<()> {
    // SAFETY: F_SETLEASE takes an integer.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, ty) }).map(drop)
}

/// F_GETLEASE: the description's lease (the target type while it breaks).
pub fn get_lease(fd: BorrowedFd<'_>) -> Res<i32> {
    // SAFETY: F_GETLEASE takes no argument.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLEASE) })
}

/// F_GETSIG: the signal I/O events on the description send (0: SIGIO).
pub fn get_sig(fd: BorrowedFd<'_>) -> Res<i32> {
    // fcntl.h's F_GETSIG (not in the libc crate for this target).
    const F_GETSIG: libc::c_int = 11;
    // SAFETY: F_GETSIG takes no argument.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), F_GETSIG) })
}

/// Whether `sig` is pending for this thread or process.
pub fn pending(sig: i32) -> Res<bool> {
    // SAFETY: sigset_t is plain data; sigpending fills it, sigismember reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        check_int(libc::sigpending(&mut set))?;
        Ok(libc::sigismember(&set, sig) == 1)
    }
}

/// Take `sig` off the pending signals without waiting (it must be blocked):
/// whether one was there.
pub fn take_pending(sig: i32) -> Res<bool> {
    // SAFETY: sigset_t is plain data, built with sigemptyset/sigaddset;
    // sigtimedwait writes no siginfo (NULL) and reads the zero timeout.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        match check_int(libc::sigtimedwait(&set, std::ptr::null_mut(), &zero)) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Fd `fd` of a restored task's table (installed at its number by the
/// restore, left open for the task), borrowed to lock through it.
pub fn installed(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: the restore installed `fd` for the task and closes none of
    // the task's fds after that: it stays open for as long as we run.
    unsafe { BorrowedFd::borrow_raw(fd) }
}
