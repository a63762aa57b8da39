//! The parasite's commands: one small function each, reading its
//! [`crate::proto`] arguments from the receive buffer and writing its reply
//! in place into the transmit buffer. Errors are positive errno values.

use core::mem::{align_of, size_of};

use crate::arch::{self, syscall};
use crate::proto::*;

const EINVAL: i32 = 22;
const ENOSYS: i32 = 38;

const SIGKILL: usize = 9;
const SIGSTOP: usize = 19;

const PR_GET_DUMPABLE: usize = 3;
const PR_GET_CHILD_SUBREAPER: usize = 37;
const PR_GET_THP_DISABLE: usize = 42;
const PR_GET_PDEATHSIG: usize = 2;
const PR_GET_SECUREBITS: usize = 27;
const PR_GET_TID_ADDRESS: usize = 40;

/// (reply length, descriptors to attach) or an errno.
pub type CmdResult = Result<(usize, usize), i32>;

/// Run command `cmd`. No command takes or returns descriptors today: the
/// transport carries them (`fds` in, `out_fds` back) for those that will.
pub fn dispatch(cmd: u32, args: &mut [u8], fds: &[i32], out: &mut [u8], out_fds: &mut [i32; MAX_FDS]) -> CmdResult {
    let _ = (fds, out_fds);
    match cmd {
        CMD_PING => ping(view(args)?, put(out)?),
        CMD_DUMP_SIGACTS => sigacts(put(out)?),
        CMD_DUMP_MISC => misc(put(out)?),
        _ => Err(ENOSYS),
    }
}

/// View exactly-sized argument bytes as `T` (all proto types are plain data).
fn view<T>(b: &mut [u8]) -> Result<&T, i32> {
    view_mut(b).map(|t| &*t)
}

fn view_mut<T>(b: &mut [u8]) -> Result<&mut T, i32> {
    if b.len() != size_of::<T>() || !(b.as_ptr() as usize).is_multiple_of(align_of::<T>()) {
        return Err(EINVAL);
    }
    // SAFETY: size and alignment were checked; proto types are plain
    // integers for which every bit pattern is valid.
    Ok(unsafe { &mut *(b.as_mut_ptr() as *mut T) })
}

/// The reply slot for `T` at the start of the transmit payload.
fn put<T>(out: &mut [u8]) -> Result<&mut T, i32> {
    if out.len() < size_of::<T>() || !(out.as_ptr() as usize).is_multiple_of(align_of::<T>()) {
        return Err(EINVAL);
    }
    // SAFETY: as in `view_mut`; the caller fills every field it reports.
    Ok(unsafe { &mut *(out.as_mut_ptr() as *mut T) })
}

fn check(r: isize) -> Result<usize, i32> {
    if r < 0 { Err(-r as i32) } else { Ok(r as usize) }
}

fn ping(a: &PingArgs, r: &mut PingReply) -> CmdResult {
    r.cookie = a.cookie;
    r.pid = syscall(arch::NR_GETPID, [0; 6]) as i32;
    r.tid = syscall(arch::NR_GETTID, [0; 6]) as i32;
    Ok((size_of::<PingReply>(), 0))
}

fn sigacts(r: &mut SigactsReply) -> CmdResult {
    for (i, act) in r.acts.iter_mut().enumerate() {
        *act = KSigaction::default();
        let sig = i + 1;
        if sig == SIGKILL || sig == SIGSTOP {
            continue;
        }
        check(syscall(arch::NR_RT_SIGACTION, [sig, 0, act as *mut KSigaction as usize, 8, 0, 0]))?;
    }
    Ok((size_of::<SigactsReply>(), 0))
}

fn misc(r: &mut MiscReply) -> CmdResult {
    let old = syscall(arch::NR_UMASK, [0, 0, 0, 0, 0, 0]);
    syscall(arch::NR_UMASK, [old as usize, 0, 0, 0, 0, 0]);
    r.umask = old as u32;
    r.personality = syscall(arch::NR_PERSONALITY, [0xffff_ffff, 0, 0, 0, 0, 0]) as u32;
    r.pid = syscall(arch::NR_GETPID, [0; 6]) as i32;
    r.ppid = syscall(arch::NR_GETPPID, [0; 6]) as i32;
    r.pgid = syscall(arch::NR_GETPGID, [0; 6]) as i32;
    r.sid = syscall(arch::NR_GETSID, [0; 6]) as i32;
    r.dumpable = syscall(arch::NR_PRCTL, [PR_GET_DUMPABLE, 0, 0, 0, 0, 0]) as i32;
    r.thp_disabled = syscall(arch::NR_PRCTL, [PR_GET_THP_DISABLE, 0, 0, 0, 0, 0]) as i32;
    let mut reaper: i32 = 0;
    check(syscall(arch::NR_PRCTL, [PR_GET_CHILD_SUBREAPER, &mut reaper as *mut i32 as usize, 0, 0, 0, 0]))?;
    r.child_subreaper = reaper;
    r._pad = 0;
    r.brk = syscall(arch::NR_BRK, [0; 6]) as u64;
    r.sas = StackT::default();
    check(syscall(arch::NR_SIGALTSTACK, [0, &mut r.sas as *mut StackT as usize, 0, 0, 0, 0]))?;
    for (which, t) in r.itimers.iter_mut().enumerate() {
        check(syscall(arch::NR_GETITIMER, [which, t as *mut Itimer as usize, 0, 0, 0, 0]))?;
    }
    let mut tid_address: u64 = 0;
    check(syscall(arch::NR_PRCTL, [PR_GET_TID_ADDRESS, &mut tid_address as *mut u64 as usize, 0, 0, 0, 0]))?;
    r.tid_address = tid_address;
    r.securebits = check(syscall(arch::NR_PRCTL, [PR_GET_SECUREBITS, 0, 0, 0, 0, 0]))? as u32;
    let mut pdeath: i32 = 0;
    check(syscall(arch::NR_PRCTL, [PR_GET_PDEATHSIG, &mut pdeath as *mut i32 as usize, 0, 0, 0, 0]))?;
    r.pdeath_sig = pdeath as u32;
    Ok((size_of::<MiscReply>(), 0))
}
