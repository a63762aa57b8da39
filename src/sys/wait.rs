//! waitpid(-1) for a tracer following several threads: which one stopped,
//! with its raw status.

use nix::errno::Errno;
use nix::unistd::Pid;

/// waitpid(-1, &status, __WALL): the next tracee (or child) with news and
/// its raw status (ptrace stops with real-time signals included, which
/// typed wrappers may refuse to decode).
pub fn wait_any() -> Result<(Pid, i32), Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable int for the call's duration.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
    if r < 0 { Err(Errno::last()) } else { Ok((Pid::from_raw(r), status)) }
}
