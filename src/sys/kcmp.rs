//! kcmp(2): do two tasks share a kernel object (a file description, an
//! address space, an epoll target)?

use std::os::fd::RawFd;

use nix::unistd::Pid;

use super::ret::{check, Res};

pub const KCMP_FILE: libc::c_int = 0;
pub const KCMP_VM: libc::c_int = 1;
pub const KCMP_FILES: libc::c_int = 2;
pub const KCMP_FS: libc::c_int = 3;
pub const KCMP_EPOLL_TFD: libc::c_int = 7;

/// `kcmp(pid1, pid2, type, idx1, idx2)`: 0 equal, 1/2 ordered, 3 different.
pub fn kcmp(pid1: Pid, pid2: Pid, kind: libc::c_int, idx1: u64, idx2: u64) -> Res<i32> {
    // SAFETY: integer-only arguments for these kcmp types.
    Ok(check(unsafe { libc::syscall(libc::SYS_kcmp, pid1.as_raw(), pid2.as_raw(), kind, idx1, idx2) })? as i32)
}

#[repr(C)]
struct KcmpEpollSlot {
    efd: u32,
    tfd: u32,
    toff: u32,
}

/// `kcmp(pid, pid, KCMP_EPOLL_TFD, fd, &{efd, tfd, toff})`.
pub fn kcmp_epoll_tfd(pid: Pid, fd: RawFd, efd: RawFd, tfd: RawFd, toff: u32) -> Res<i32> {
    let slot = KcmpEpollSlot { efd: efd as u32, tfd: tfd as u32, toff };
    // SAFETY: idx2 points at a live kcmp_epoll_slot.
    Ok(check(unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid.as_raw(),
            pid.as_raw(),
            KCMP_EPOLL_TFD,
            fd as libc::c_ulong,
            &slot as *const KcmpEpollSlot,
        )
    })? as i32)
}

const _: () = assert!(std::mem::size_of::<KcmpEpollSlot>() == 12);
