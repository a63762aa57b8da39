//! clone3 with set_tid: create the child that becomes a restored task, with
//! the exact pid it had; unshare of the time namespace for the tasks to come.

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

/// fork(), but the child gets pid `pid` in our pid namespace (`flags` may
/// add CLONE_PARENT for --restore-sibling). EEXIST: the pid is taken.
pub fn fork_with_pid(pid: i32, flags: u64) -> Result<Forked, Errno> {
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
    // SAFETY: like fork(2): the child gets a copy of the address space with
    // only this thread. criu forks only while single-threaded, and the child
    // goes on to become the restored task without returning into code that
    // relies on other threads.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match r {
        r if r < 0 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        r => Ok(Forked::Parent(Pid::from_raw(r as i32))),
    }
}

/// `unshare(CLONE_NEWTIME)`: the children forked from now on live in a new
/// time namespace (its offsets are writable until the first one enters).
pub fn unshare_time_ns() -> std::io::Result<()> {
    // SAFETY: unshare takes a flags word and touches no memory of ours.
    let r = unsafe { libc::unshare(libc::CLONE_NEWTIME) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}
