//! Signal state of a traced task read from outside: PTRACE_PEEKSIGINFO.

use nix::errno::Errno;

const PTRACE_PEEKSIGINFO: libc::c_uint = 0x4209;
const PTRACE_PEEKSIGINFO_SHARED: u32 = 1;

/// The size of a siginfo_t.
pub const SIGINFO_SIZE: usize = 128;

#[repr(C)]
struct PeekArgs {
    off: u64,
    flags: u32,
    nr: i32,
}

/// Every queued siginfo of a ptrace-stopped task: its own queue, or the
/// process-wide one when `shared`.
pub fn peek_siginfo(pid: i32, shared: bool) -> Result<Vec<[u8; SIGINFO_SIZE]>, Errno> {
    let mut out = Vec::new();
    let mut buf = [[0u8; SIGINFO_SIZE]; 32];
    loop {
        let mut args = PeekArgs { off: out.len() as u64, flags: if shared { PTRACE_PEEKSIGINFO_SHARED } else { 0 }, nr: 32 };
        // SAFETY: PTRACE_PEEKSIGINFO reads `args` and writes at most
        // `args.nr` (32) siginfo_t of 128 bytes into `buf`, which has room
        // for exactly 32.
        let n = unsafe {
            libc::ptrace(PTRACE_PEEKSIGINFO, pid, &mut args as *mut PeekArgs, buf.as_mut_ptr())
        };
        if n < 0 {
            return Err(Errno::last());
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// get_robust_list(pid): the robust futex list head and its length.
pub fn robust_list(pid: i32) -> Result<(u64, u64), Errno> {
    let mut head: u64 = 0;
    let mut len: u64 = 0;
    // SAFETY: the kernel writes one pointer-sized value to each of the two
    // out-parameters, which are live u64 locals.
    let r = unsafe { libc::syscall(libc::SYS_get_robust_list, pid, &mut head as *mut u64, &mut len as *mut u64) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok((head, len))
}

/// tgkill(tgid, tid, sig): a signal for thread `tid` alone (its private
/// queue), as tkill does.
pub fn tgkill(tgid: i32, tid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: tgkill takes three integers and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}
