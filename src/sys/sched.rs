//! Scheduling and membarrier queries by raw syscall: another thread's
//! policy (with SCHED_RESET_ON_FORK, as sched_getscheduler reports it),
//! real-time priority and nice; membarrier commands for ourselves.

use std::io::{Error, Result};

fn ret(r: libc::c_long) -> Result<i64> {
    if r < 0 { Err(Error::last_os_error()) } else { Ok(r) }
}

/// sched_getscheduler(tid): the policy, SCHED_RESET_ON_FORK included.
pub fn policy(tid: i32) -> Result<u32> {
    // SAFETY: a plain syscall without pointers.
    Ok(ret(unsafe { libc::syscall(libc::SYS_sched_getscheduler, tid) })? as u32)
}

/// sched_getparam(tid): the real-time priority.
pub fn rt_priority(tid: i32) -> Result<u32> {
    let mut p = libc::sched_param { sched_priority: 0 };
    // SAFETY: the kernel writes one sched_param into a live local.
    ret(unsafe { libc::syscall(libc::SYS_sched_getparam, tid, &mut p as *mut libc::sched_param) })?;
    Ok(p.sched_priority as u32)
}

/// getpriority(PRIO_PROCESS, tid) as a nice value (the raw syscall
/// returns 20 - nice).
pub fn nice(tid: i32) -> Result<i32> {
    // SAFETY: a plain syscall without pointers.
    let raw = ret(unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, tid) })?;
    Ok(20 - raw as i32)
}

/// membarrier(cmd, 0, 0) in the calling process.
pub fn membarrier(cmd: u32) -> Result<i64> {
    // SAFETY: a plain syscall without pointers.
    ret(unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) })
}
