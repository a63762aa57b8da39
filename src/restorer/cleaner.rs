//! The cleaner: a short-lived process that removes the restorer region
//! once the task runs, since nothing inside the task can unmap the code and
//! stack it is running on (CRIU has criu itself do this over ptrace).
//!
//! The restoring process forks it twice (so it is nobody's child but the
//! reaper's), and it attaches with PTRACE_SEIZE before the blob starts.
//! The blob stops on an `int3` just before its `rt_sigreturn`; the cleaner
//! follows the jump with syscall stops, and at the exit of `rt_sigreturn`
//! (the task's registers are loaded, all signals still blocked by the
//! frame) it runs `munmap(region)` through the blob's own `syscall`
//! instruction, puts the task's registers back, sets its signal mask
//! (PTRACE_SETSIGMASK), detaches, and only then sends the ready report.
//! If the task dies on the way (the blob reported its error), the cleaner
//! just leaves; if the cleaner itself fails, it kills the task and reports.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::arch::Regs;
use crate::sys::ptrace;
use crate::sys::restorer::{exit_now, fork, ptrace_syscall, wait_all, Forked};

/// What the cleaner needs to know.
pub struct Job {
    /// The restoring process (becoming the task).
    pub task: Pid,
    /// The restorer region to unmap.
    pub region: (u64, u64),
    /// The instruction pointer at the blob's sync stop (after its int3).
    pub sync_ip: u64,
    /// A `syscall` instruction in the blob.
    pub syscall_ip: u64,
    /// The task's signal mask, set once the region is gone.
    pub sigmask: u64,
    /// Tests: fail once the region is gone, as if the munmap had.
    pub fault: bool,
    /// criu's go-ahead fd (see `Plan::go_fd`).
    pub go: Option<i32>,
}

const NR_RT_SIGRETURN: u64 = 15;
const NR_MUNMAP: u64 = 11;

/// Start the cleaner. Ok(true): it traces us and will report readiness
/// through `ready`; Ok(false): it could not attach (and is gone).
pub fn start(job: &Job, ready: BorrowedFd<'_>) -> Result<bool> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for the cleaner")?;
    match fork().context("fork for the cleaner")? {
        Forked::Child => {
            // The middle process: fork the cleaner and leave, so the
            // cleaner is reparented and never becomes the task's child.
            if let Ok(Forked::Child) = fork() {
                drop(r);
                run(job, ready, w.as_fd())
            }
            exit_now(0)
        }
        Forked::Parent(mid) => {
            drop(w);
            let _ = waitpid(mid, None);
            let mut b = [0u8; 1];
            let n = loop {
                match nix::unistd::read(&r, &mut b) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            Ok(matches!(n, Ok(1)) && b[0] == b'1')
        }
    }
}

/// Why tracing stopped.
enum Stop {
    /// The task died (its restorer already reported why).
    Gone,
    Failed(Errno),
}

impl From<Errno> for Stop {
    fn from(e: Errno) -> Stop {
        if e == Errno::ESRCH { Stop::Gone } else { Stop::Failed(e) }
    }
}

fn run(job: &Job, ready: BorrowedFd<'_>, sync: BorrowedFd<'_>) -> ! {
    let mut keep = vec![ready.as_raw_fd(), sync.as_raw_fd()];
    keep.extend(job.go);
    crate::sys::fd::close_all_but(&keep);
    // Out of the task's session and process group: signals to its group
    // must not reach us, and its pid must not stay in use as our sid/pgid.
    let _ = nix::unistd::setsid();
    // We were forked from the task-to-be (which already has its name).
    let _ = nix::sys::prctl::set_name(c"criu-cleaner");
    if ptrace::seize(job.task, libc::PTRACE_O_TRACESYSGOOD).is_err() {
        let _ = nix::unistd::write(sync, b"0");
        exit_now(0);
    }
    let _ = nix::unistd::write(sync, b"1");
    crate::sys::fd::close_raw(sync.as_raw_fd());
    match follow(job, ready) {
        Ok(()) => {
            let _ = nix::unistd::write(ready, &0u64.to_le_bytes());
            exit_now(0)
        }
        Err(Stop::Gone) => exit_now(0),
        Err(Stop::Failed(e)) => {
            let _ = nix::sys::signal::kill(job.task, Signal::SIGKILL);
            let code = (crate::restorer::proto::step::CLEANER << 32) | (-(e as i32) as u32 as u64);
            let _ = nix::unistd::write(ready, &code.to_le_bytes());
            exit_now(1)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Until the blob's sync int3.
    Running,
    /// Resumed from the int3; next: entry of rt_sigreturn.
    Sync,
    /// Next: exit of rt_sigreturn.
    Sigreturn,
    /// munmap injected; next: its entry, then its exit.
    MunmapEnter,
    MunmapExit,
}

fn resume(task: Pid, phase: Phase, sig: i32) -> Result<(), Errno> {
    if phase == Phase::Running { ptrace::cont(task, sig) } else { ptrace_syscall(task, sig) }
}

/// Report HELD and wait for criu's go-ahead (a `g` byte).
fn hold(job: &Job, ready: BorrowedFd<'_>) -> Result<(), Stop> {
    let Some(go) = job.go else { return Ok(()) };
    nix::unistd::write(ready, &crate::restorer::plan::HELD.to_le_bytes())?;
    let mut b = [0u8; 1];
    // SAFETY-free: `go` is our inherited pipe end, kept open above.
    let n = loop {
        match nix::unistd::read(crate::sys::fd::borrow_inherited(go).map_err(|_| Errno::EBADF)?, &mut b) {
            Err(Errno::EINTR) => continue,
            r => break r?,
        }
    };
    if n == 1 && b[0] == b'g' { Ok(()) } else { Err(Stop::Failed(Errno::ECANCELED)) }
}

fn follow(job: &Job, ready: BorrowedFd<'_>) -> Result<(), Stop> {
    let task = job.task;
    let mut phase = Phase::Running;
    let mut saved = Regs::default();
    loop {
        let st = match wait_all(task) {
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return Err(Stop::Gone),
            Err(e) => return Err(Stop::Failed(e)),
            Ok(st) => st,
        };
        if libc::WIFEXITED(st) || libc::WIFSIGNALED(st) {
            return Err(Stop::Gone);
        }
        if !libc::WIFSTOPPED(st) {
            continue;
        }
        let sig = libc::WSTOPSIG(st);
        if (st >> 16) & 0xff != 0 {
            // An event stop (group stop, interrupt): just go on.
            resume(task, phase, 0)?;
            continue;
        }
        if sig != libc::SIGTRAP | 0x80 {
            // A signal on its way to the task.
            if sig == libc::SIGTRAP && phase == Phase::Running && Regs::get(task)?.rip == job.sync_ip {
                // Our own int3: swallow it and follow the jump.
                phase = Phase::Sync;
                ptrace_syscall(task, 0)?;
            } else {
                resume(task, phase, sig)?;
            }
            continue;
        }
        let regs = Regs::get(task)?;
        match phase {
            Phase::Running => resume(task, phase, 0)?,
            Phase::Sync => {
                if regs.orig_rax != NR_RT_SIGRETURN {
                    return Err(Stop::Failed(Errno::EPROTO));
                }
                phase = Phase::Sigreturn;
                ptrace_syscall(task, 0)?;
            }
            Phase::Sigreturn => {
                // The task's registers are loaded; borrow the thread for
                // one munmap.
                saved = regs;
                let mut inj = regs;
                inj.rip = job.syscall_ip;
                inj.rax = NR_MUNMAP;
                inj.orig_rax = u64::MAX;
                inj.rdi = job.region.0;
                inj.rsi = job.region.1;
                inj.set(task)?;
                phase = Phase::MunmapEnter;
                ptrace_syscall(task, 0)?;
            }
            Phase::MunmapEnter => {
                if regs.orig_rax != NR_MUNMAP {
                    return Err(Stop::Failed(Errno::EPROTO));
                }
                phase = Phase::MunmapExit;
                ptrace_syscall(task, 0)?;
            }
            Phase::MunmapExit => {
                let r = regs.rax as i64;
                if r != 0 {
                    return Err(Stop::Failed(Errno::from_raw((-r) as i32)));
                }
                if job.fault {
                    return Err(Stop::Failed(Errno::ECANCELED));
                }
                saved.set(task)?;
                hold(job, ready)?;
                ptrace::set_sigmask(task, job.sigmask)?;
                ptrace::detach(task, 0)?;
                return Ok(());
            }
        }
    }
}
