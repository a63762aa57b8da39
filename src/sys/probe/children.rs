//! Probe experiments: forked children that try a feature and exit with the verdict.

#[allow(unused_imports)]
use super::*;

/// Fork; the child runs `child` (raw syscalls only) and `_exit`s with its
/// return value. Returns the child's wait status.
pub(crate) fn fork_run(child: impl FnOnce() -> i32) -> Res<WaitStatus> {
    // SAFETY: the child only runs `child`, which every caller in this file
    // limits to raw syscalls on memory prepared before the fork, then exits.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => child_exit(child()),
        nix::unistd::ForkResult::Parent { child } => wait_for(child),
    }
}

/// waitpid() that retries on EINTR.
pub fn wait_for(pid: Pid) -> Res<WaitStatus> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Exit code of a child that exited normally; None if it was killed.
pub fn exit_code(st: &WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, code) => Some(*code),
        _ => None,
    }
}

/// Seccomp filter program: kill on ptrace(), allow everything else.
pub(crate) fn ptrace_kill_filter() -> [libc::sock_filter; 4] {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_KILL: u32 = 0;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    [
        libc::sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: BPF_JMP_JEQ_K, jt: 0, jf: 1, k: libc::SYS_ptrace as u32 },
        libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL },
        libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW },
    ]
}

/// A forked child parked in `pause()`; SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct Sleeper {
    pid: Pid,
}

impl Sleeper {
    /// Fork a child that (optionally after installing a seccomp filter that
    /// kills it on `ptrace()`) reports ready and sleeps.
    pub fn spawn(with_seccomp_filter: bool) -> Res<Self> {
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let filter = ptrace_kill_filter();
        let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
        let wfd = wr.as_raw_fd();
        // SAFETY: the child only makes raw syscalls (prctl, write, pause) on
        // data prepared before the fork and never returns.
        let pid = match unsafe { nix::unistd::fork() }? {
            nix::unistd::ForkResult::Child => {
                if with_seccomp_filter {
                    // SAFETY: prctl with integer args / a pointer to `prog`,
                    // which lives in this child's copy of the stack.
                    let ok = unsafe {
                        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                            && libc::prctl(
                                libc::PR_SET_SECCOMP,
                                libc::SECCOMP_MODE_FILTER,
                                &prog as *const libc::sock_fprog,
                                0,
                                0,
                            ) == 0
                    };
                    if !ok {
                        child_exit(1);
                    }
                }
                let b = [1u8];
                // SAFETY: writes one byte from a local buffer.
                if unsafe { libc::write(wfd, b.as_ptr().cast(), 1) } != 1 {
                    child_exit(1);
                }
                loop {
                    // SAFETY: pause has no arguments.
                    unsafe { libc::pause() };
                }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        };
        drop(wr);
        let me = Self { pid };
        if let Err(e) = wait_readable(&rd, pid) {
            if e == Errno::ECHILD {
                // Already reaped: its pid may be reused, never kill it.
                std::mem::forget(me);
            }
            return Err(e);
        }
        let mut b = [0u8; 1];
        match nix::unistd::read(&rd, &mut b) {
            Ok(1) => Ok(me),
            Ok(_) => Err(Errno::ECHILD),
            Err(e) => Err(e),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The caller already reaped this child (a wait returned its exit):
    /// drop it without signalling a pid that may now be someone else's.
    pub fn forget_reaped(self) {
        std::mem::forget(self);
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        let _ = wait_for(self.pid);
    }
}

/// Wait (up to 10 s) until `fd` is readable, failing early if `pid` died.
pub(crate) fn wait_readable(fd: &OwnedFd, pid: Pid) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, 100) };
        if r > 0 {
            return Ok(());
        }
        if r < 0 && Errno::last() != Errno::EINTR {
            return Err(Errno::last());
        }
        // The child is reaped here if it died: the caller must not signal
        // that pid again.
        if let Ok(st) = waitpid(pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL))
            && !matches!(st, WaitStatus::StillAlive)
        {
            return Err(Errno::ECHILD);
        }
        if Instant::now() > deadline {
            return Err(Errno::ETIMEDOUT);
        }
    }
}

pub(crate) extern "C" fn noop_handler(_: libc::c_int) {}

/// In a forked child: move the given special mappings (start, end) to a new
/// place keeping their relative layout, then send itself SIGUSR1 (handled)
/// and exit 0. A kernel that loses track of moved vDSO/sigpage kills the
/// child on signal return.
pub fn special_mappings_mremap_child(ranges: &[(usize, usize)]) -> Res<WaitStatus> {
    if ranges.is_empty() {
        return Err(Errno::EINVAL);
    }
    let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let ranges: Vec<(usize, usize)> = ranges.to_vec();
    fork_run(move || {
        // SAFETY: (the whole child) raw syscalls on our private copy of the
        // address space; nothing but this code runs afterwards.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = noop_handler as *const () as usize;
            if libc::sigaction(libc::SIGUSR1, &sa, ptr::null_mut()) != 0 {
                return 2;
            }
            let park =
                libc::mmap(ptr::null_mut(), hi - lo, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
            if park == libc::MAP_FAILED {
                return 3;
            }
            for &(s, e) in &ranges {
                let dst = park as usize + (s - lo);
                let r =
                    libc::syscall(libc::SYS_mremap, s, e - s, e - s, libc::MREMAP_FIXED | libc::MREMAP_MAYMOVE, dst);
                if r as usize != dst {
                    return 1;
                }
            }
            let me = raw_syscall0(libc::SYS_getpid);
            libc::syscall(libc::SYS_kill, me, libc::SIGUSR1);
        }
        0
    })
}

/// In a forked child: `arch_prctl(ARCH_MAP_VDSO_32)`. Exit 1 when the API
/// exists (mapped, or refused because a vDSO is already mapped), 0 if not.
#[cfg(target_arch = "x86_64")]
pub fn arch_map_vdso32_child() -> Res<WaitStatus> {
    const ARCH_MAP_VDSO_32: libc::c_long = 0x2002;
    fork_run(|| {
        // SAFETY: arch_prctl with integer arguments in our own child.
        let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_MAP_VDSO_32, 0 as libc::c_long) };
        if r == 0 || errno_now() == libc::EEXIST { 1 } else { 0 }
    })
}

/// In a forked child: reset soft-dirty bits (`clear_refs` 4), dirty a page
/// and read its pagemap entry. Exit 0: soft-dirty bit seen; 2: not
/// supported; 1: error.
pub fn soft_dirty_child() -> Res<WaitStatus> {
    let ps = page_size();
    fork_run(move || {
        const PM_SOFT_DIRTY: u64 = 1 << 55;
        // SAFETY: (the whole child) raw syscalls on local buffers and a page
        // mapped here.
        unsafe {
            let map = libc::mmap(
                ptr::null_mut(),
                ps,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if map == libc::MAP_FAILED {
                return 1;
            }
            let cr = libc::open(c"/proc/self/clear_refs".as_ptr(), libc::O_WRONLY);
            if cr < 0 {
                return 1;
            }
            if libc::write(cr, b"4".as_ptr().cast(), 1) != 1 {
                return if errno_now() == libc::EINVAL { 2 } else { 1 };
            }
            libc::close(cr);
            ptr::write_volatile(map as *mut u8, 1);
            let pm = libc::open(c"/proc/self/pagemap".as_ptr(), libc::O_RDONLY);
            if pm < 0 {
                return 1;
            }
            let mut ent: u64 = 0;
            let off = (map as usize / ps * 8) as libc::off_t;
            if libc::pread(pm, (&mut ent as *mut u64).cast(), 8, off) != 8 {
                return 1;
            }
            if ent & PM_SOFT_DIRTY != 0 { 0 } else { 2 }
        }
    })
}

/// In a forked child: unset the audit loginuid, then set it back to
/// `saved` (decimal bytes). Exit 0 on success, 1 if a write failed.
pub fn loginuid_child(saved: &[u8]) -> Res<WaitStatus> {
    let saved = saved.to_vec();
    fork_run(move || {
        let unset = b"4294967295";
        for val in [&unset[..], &saved[..]] {
            // SAFETY: raw open/write/close on local buffers.
            unsafe {
                let fd = libc::open(c"/proc/self/loginuid".as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return 1;
                }
                if libc::write(fd, val.as_ptr().cast(), val.len()) != val.len() as isize {
                    return 1;
                }
                libc::close(fd);
            }
        }
        0
    })
}

pub(crate) use crate::sys::clone::CloneArgs;

/// CRIU's cheap clone3() probe: an invalid `set_tid` pointer with a zero
/// size. Returns the errno (EINVAL: set_tid known, E2BIG: clone3 without
/// set_tid, ENOSYS: no clone3). Never creates a process.
pub fn clone3_set_tid_errno() -> Errno {
    let args = CloneArgs { set_tid: u64::MAX, ..Default::default() };
    // SAFETY: the kernel rejects these arguments before creating anything.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
    if r == -1 {
        Errno::last()
    } else {
        // Unexpected success: should be impossible; treat as a child that
        // must leave at once.
        if r == 0 {
            child_exit(0);
        }
        let _ = wait_for(Pid::from_raw(r as i32));
        Errno::UnknownErrno
    }
}

/// clone3(CLONE_NEWPID) asking for `tid` as the child's pid in the new
/// namespace. The child exits 0 when getpid() == tid. Returns the child's
/// pid in our namespace and its wait status.
pub fn clone3_newpid_set_tid(tid: libc::pid_t) -> Res<(Pid, WaitStatus)> {
    let tids = [tid];
    let args = CloneArgs {
        flags: libc::CLONE_NEWPID as u64,
        exit_signal: libc::SIGCHLD as u64,
        set_tid: tids.as_ptr() as u64,
        set_tid_size: 1,
        ..Default::default()
    };
    // SAFETY: without CLONE_VM the child runs on a private copy of this
    // stack, like fork(); it only makes raw syscalls and exits.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
    if r == 0 {
        let me = raw_syscall0(libc::SYS_getpid);
        child_exit(if me == tid as libc::c_long { 0 } else { 1 });
    }
    let pid = Pid::from_raw(check(r)? as i32);
    Ok((pid, wait_for(pid)?))
}

/// From a forked intermediate child, clone(CLONE_NEWPID | CLONE_PARENT):
/// the grandchild becomes our child. Returns Ok(true) if the clone worked
/// (both children reaped), Ok(false) if the kernel refused it.
pub fn clone_parent_newpid() -> Res<bool> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let wfd = wr.as_raw_fd();
    let st = fork_run(move || {
        let flags = (libc::CLONE_NEWPID | libc::CLONE_PARENT) as libc::c_long;
        // SAFETY: fork-like clone (no CLONE_VM, no new stack): the
        // grandchild continues on a private copy and exits at once.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags,
                0 as libc::c_long,
                0 as libc::c_long,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        };
        if r == 0 {
            child_exit(0);
        }
        let pid = r as i32;
        let bytes = pid.to_ne_bytes();
        // SAFETY: writes 4 bytes from a local buffer.
        unsafe { libc::write(wfd, bytes.as_ptr().cast(), 4) };
        if r < 0 { 1 } else { 0 }
    })?;
    drop(wr);
    let mut b = [0u8; 4];
    let n = nix::unistd::read(&rd, &mut b)?;
    let pid = if n == 4 { i32::from_ne_bytes(b) } else { -1 };
    if pid > 0 {
        let _ = wait_for(Pid::from_raw(pid));
    }
    Ok(exit_code(&st) == Some(0) && pid > 0)
}
