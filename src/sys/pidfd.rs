//! pidfds: `pidfd_open(2)` and `pidfd_getfd(2)` (duplicate a descriptor out
//! of another process; needs ptrace access to it, which a tracer has).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// A pidfd for process `pid`.
pub fn open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags, no pointers.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    own(r)
}

/// A copy (close-on-exec) of descriptor `fd` of the process behind `pidfd`.
pub fn getfd(pidfd: BorrowedFd<'_>, fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd takes two descriptor numbers and flags, no pointers.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    own(r)
}

fn own(r: libc::c_long) -> Result<OwnedFd, Errno> {
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just created this descriptor for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// A pidfd for process `pid` with pidfd_open flags `flags` (PIDFD_NONBLOCK,
/// PIDFD_THREAD).
pub fn open_flags(pid: Pid, flags: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags, no pointers.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), flags) };
    own(r)
}

/// A child that does nothing until it is killed (it dies with us too):
/// a live process to open pidfds of and then kill, standing in for one
/// that had died.
pub fn stand_in() -> Result<Pid, Errno> {
    // SAFETY: the child calls only prctl and pause (async-signal-safe
    // syscalls, no allocation, no lock) until a signal kills it, so a fork
    // from a process with other threads is sound.
    let r = unsafe { libc::fork() };
    match r {
        r if r < 0 => Err(Errno::last()),
        0 => loop {
            // SAFETY: plain syscalls on integers; the child never returns.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                libc::pause();
            }
        },
        r => Ok(Pid::from_raw(r)),
    }
}

/// pidfd_send_signal(2) with no siginfo: signal `sig` (0: only check) to
/// the process behind `pidfd`.
pub fn send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    // SAFETY: a descriptor number, a signal number, a null siginfo and flags.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// The wait status of the process behind `pidfd` once it has exited
/// (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15): None while it
/// lives, or when the kernel keeps no exit information.
pub fn exit_status(pidfd: BorrowedFd<'_>) -> Option<i32> {
    // struct pidfd_info, its first version (64 bytes): mask, cgroupid,
    // eleven ids, exit_code.
    const PIDFD_INFO_EXIT: u64 = 1 << 3;
    const PIDFD_GET_INFO: libc::c_ulong = 0xC040_FF0B; // _IOWR(0xFF, 11, 64 bytes)
    let mut info = [0u64; 8];
    info[0] = PIDFD_INFO_EXIT;
    // SAFETY: the kernel writes at most the 64 bytes of `info`, whose size
    // the request number encodes.
    let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO as _, info.as_mut_ptr()) };
    if r != 0 || info[0] & PIDFD_INFO_EXIT == 0 {
        return None;
    }
    // exit_code: the last 4 bytes.
    Some((info[7] >> 32) as u32 as i32)
}
