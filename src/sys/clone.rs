//! clone3 with set_tid: create the child that becomes a restored task, with
//! the exact pid it had.

use nix::errno::Errno;
use nix::unistd::Pid;

/// struct clone_args.
#[repr(C)]
#[derive(Default)]
pub(crate) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// Which side of the fork we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// Whether this process has a single thread. Then no other thread can
/// start one meanwhile, so a fork made now copies no lock held elsewhere.
/// A thread just joined may linger in /proc for a moment: asked again for
/// up to a second before answering no.
pub(crate) fn single_threaded() -> bool {
    for _ in 0..1000 {
        match std::fs::read_dir("/proc/self/task").map(Iterator::count) {
            Ok(1) => return true,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(_) => return false,
        }
    }
    false
}

/// fork(), but the child gets pid `pid` in our pid namespace (`flags` may
/// add CLONE_PARENT for --restore-sibling, CLONE_FS for a child sharing
/// its parent's fs info). EEXIST: the pid is taken;
/// EDEADLK: this process has other threads (see below).
///
/// Both sides return here. The child is a copy of this process with only
/// the calling thread, like fork(2)'s: that is sound only if no other
/// thread existed (its locks would stay held in the child), so this checks
/// the process is single-threaded first. criu's restore is: it starts no
/// thread (the probes' helper threads are joined before), and the child
/// goes on to become a restored task.
pub fn fork_with_pid(pid: i32, flags: u64) -> Result<Forked, Errno> {
    if !single_threaded() {
        return Err(Errno::EDEADLK);
    }
    let tids = [pid];
    let mut args = CloneArgs {
        flags,
        // With CLONE_PARENT the kernel wants no exit signal of ours: the
        // child reports to our parent as we do.
        exit_signal: if flags & libc::CLONE_PARENT as u64 != 0 { 0 } else { libc::SIGCHLD as u64 },
        set_tid: tids.as_ptr() as u64,
        set_tid_size: 1,
        ..Default::default()
    };
    // SAFETY: like fork(2) (no CLONE_VM, no new stack: the child runs on
    // its own copy of this stack); the process was checked single-threaded
    // above, so the child's copy of memory has no lock held by a thread
    // that does not exist there. `args` and `tids` are live locals.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match r {
        r if r < 0 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        r => Ok(Forked::Parent(Pid::from_raw(r as i32))),
    }
}

/// A child made with clone3 `flags` (CLONE_FILES, CLONE_FS: what kcmp is
/// to see shared) that does nothing until it is killed, and dies with us:
/// for tests.
#[cfg(test)]
pub(crate) fn spawn_sleeper(flags: u64) -> Result<Pid, Errno> {
    let mut args = CloneArgs { flags, exit_signal: libc::SIGCHLD as u64, ..Default::default() };
    // SAFETY: fork-like (no CLONE_VM, no new stack); the child calls only
    // prctl and pause (async-signal-safe, no allocation, no lock) until a
    // signal kills it, so it is sound from a process with other threads.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match r {
        r if r < 0 => Err(Errno::last()),
        0 => loop {
            // SAFETY: plain syscalls on integers; the child never returns.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                libc::pause();
            }
        },
        r => Ok(Pid::from_raw(r as i32)),
    }
}
