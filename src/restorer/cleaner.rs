//! The cleaner: a short-lived process that removes the restorer region
//! once the task runs, since nothing inside the task can unmap the code and
//! stack it is running on (CRIU has criu itself do this over ptrace).
//!
//! The restoring process forks it twice (so it is nobody's child but the
//! reaper's), and it attaches with PTRACE_SEIZE (and PTRACE_O_TRACECLONE:
//! the threads the blob creates are traced from their first instruction)
//! before the blob starts. Each thread stops on an `int3` just before its
//! `rt_sigreturn`; the cleaner follows the jump with syscall stops and
//! holds each at the exit of its `rt_sigreturn` (its registers loaded, all
//! signals still blocked by the frame: out of the region for good). Once
//! every thread is out, it runs `munmap(region)` in the leader through the
//! blob's own `syscall` instruction, puts the leader's registers back,
//! reports HELD and waits for criu's go-ahead, sets each thread's signal
//! mask (PTRACE_SETSIGMASK), queues the task's stop signal if it was
//! stopped at dump time, detaches them all, and only then sends the ready
//! report. A child subreaper is made one (prctl, injected the same way
//! before the munmap) only after the go-ahead: until every restored task's
//! cleaner exists, an orphaned cleaner must not land on it.
//! If the task dies on the way (the blob reported its error), the cleaner
//! just leaves; if the cleaner itself fails, it kills the task and reports.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::arch::Regs;
use crate::sys::ptrace;
use crate::sys::restorer::{exit_now, fork, ptrace_syscall, Forked};
use crate::sys::wait::wait_any;

/// What the cleaner needs to know.
pub struct Job<'a> {
    /// The restoring process (becoming the task).
    pub task: Pid,
    /// The restorer region to unmap.
    pub region: (u64, u64),
    /// The instruction pointer at the blob's sync stop (after its int3).
    pub sync_ip: u64,
    /// A `syscall` instruction in the blob.
    pub syscall_ip: u64,
    /// The task's (its leader's) signal mask, set once the region is gone.
    pub sigmask: u64,
    /// The other threads the blob creates, with their signal masks.
    pub threads: Vec<(Pid, u64)>,
    /// Tests: fail once the region is gone, as if the munmap had.
    pub fault: bool,
    /// criu's go-ahead fd (see `Plan::go_fd`).
    pub go: Option<BorrowedFd<'a>>,
    /// The signal every thread is detached with: 0, or SIGSTOP for `-s`
    /// (each thread stops before its first user instruction; one SIGCONT
    /// resumes the group and drops the rest).
    pub detach_sig: i32,
    /// A thread enters seccomp strict mode before its jump: trace with
    /// PTRACE_O_SUSPEND_SECCOMP (the munmap runs in the task).
    pub suspend_seccomp: bool,
    /// The signal that had stopped the task at dump time (0: none), sent
    /// to it just before the detach (not with `detach_sig`).
    pub stop_sig: i32,
    /// Make the task a child subreaper after the go-ahead.
    pub subreaper: bool,
}

const NR_RT_SIGRETURN: u64 = 15;
const NR_MUNMAP: u64 = 11;
const NR_PRCTL: u64 = 157;
const PR_SET_CHILD_SUBREAPER: u64 = 36;

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
                run(job, ready, w)
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

fn run(job: &Job, ready: BorrowedFd<'_>, sync: OwnedFd) -> ! {
    let mut keep = vec![ready.as_raw_fd(), sync.as_raw_fd()];
    keep.extend(job.go.map(|g| g.as_raw_fd()));
    crate::sys::fd::close_all_except(&keep);
    // Out of the task's session and process group: signals to its group
    // must not reach us, and its pid must not stay in use as our sid/pgid.
    let _ = nix::unistd::setsid();
    // We were forked from the task-to-be (which already has its name).
    let _ = nix::sys::prctl::set_name(c"criu-cleaner");
    let mut options = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_TRACECLONE;
    if job.suspend_seccomp {
        options |= libc::PTRACE_O_SUSPEND_SECCOMP;
    }
    if ptrace::seize(job.task, options).is_err() {
        let _ = nix::unistd::write(&sync, b"0");
        exit_now(0);
    }
    let _ = nix::unistd::write(&sync, b"1");
    drop(sync);
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Until the blob's sync int3.
    Running,
    /// Resumed from the int3; next: entry of rt_sigreturn.
    Sync,
    /// Next: exit of rt_sigreturn.
    Sigreturn,
    /// Out of the region, registers loaded: held stopped until all are.
    Out,
    /// (The leader) syscall `nr` injected; next: its entry, then its exit.
    Enter(u64),
    Exit(u64),
}

fn resume(task: Pid, phase: Phase, sig: i32) -> Result<(), Errno> {
    if phase == Phase::Running { ptrace::cont(task, sig) } else { ptrace_syscall(task, sig) }
}

/// Report HELD and wait for criu's go-ahead (a `g` byte).
fn hold(job: &Job, ready: BorrowedFd<'_>) -> Result<(), Stop> {
    let Some(go) = job.go else { return Ok(()) };
    nix::unistd::write(ready, &crate::restorer::plan::HELD.to_le_bytes())?;
    let mut b = [0u8; 1];
    // `go` is kept open by `run`.
    let n = loop {
        match nix::unistd::read(go, &mut b) {
            Err(Errno::EINTR) => continue,
            r => break r?,
        }
    };
    if n == 1 && b[0] == b'g' { Ok(()) } else { Err(Stop::Failed(Errno::ECANCELED)) }
}

/// Follow the leader and every thread the blob creates (auto-attached
/// through PTRACE_O_TRACECLONE) to the exit of their rt_sigreturn; once
/// all are out of the region, unmap it through the leader, hold, set each
/// thread's signal mask and let them all go.
fn follow(job: &Job, ready: BorrowedFd<'_>) -> Result<(), Stop> {
    let task = job.task;
    let expected = 1 + job.threads.len();
    let mut phases: HashMap<Pid, Phase> = HashMap::from([(task, Phase::Running)]);
    let mut out = 0usize;
    let mut saved = Regs::default();
    let mut held = false;
    loop {
        let (tid, st) = match wait_any() {
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return Err(Stop::Gone),
            Err(e) => return Err(Stop::Failed(e)),
            Ok(x) => x,
        };
        if libc::WIFEXITED(st) || libc::WIFSIGNALED(st) {
            // A thread (or all) died: the blob reported why.
            return Err(Stop::Gone);
        }
        if !libc::WIFSTOPPED(st) {
            continue;
        }
        if tid != task && !job.threads.iter().any(|(t, _)| *t == tid) {
            // Not a thread of the image: something is badly wrong.
            return Err(Stop::Failed(Errno::EPROTO));
        }
        // A new thread's first stop is its PTRACE_EVENT_STOP.
        let phase = *phases.entry(tid).or_insert(Phase::Running);
        let sig = libc::WSTOPSIG(st);
        if (st >> 16) & 0xff != 0 {
            // An event stop (clone, group stop, interrupt): just go on.
            if phase != Phase::Out {
                resume(tid, phase, 0)?;
            }
            continue;
        }
        if sig != libc::SIGTRAP | 0x80 {
            // A signal on its way to the thread.
            if sig == libc::SIGTRAP && phase == Phase::Running && Regs::get(tid)?.rip == job.sync_ip {
                // Our own int3: swallow it and follow the jump.
                phases.insert(tid, Phase::Sync);
                ptrace_syscall(tid, 0)?;
            } else if phase != Phase::Out {
                resume(tid, phase, sig)?;
            }
            continue;
        }
        let regs = Regs::get(tid)?;
        match phase {
            Phase::Running => resume(tid, phase, 0)?,
            Phase::Sync => {
                if regs.orig_rax != NR_RT_SIGRETURN {
                    return Err(Stop::Failed(Errno::EPROTO));
                }
                phases.insert(tid, Phase::Sigreturn);
                ptrace_syscall(tid, 0)?;
            }
            Phase::Sigreturn => {
                // Its registers are loaded: it is out; hold it there.
                phases.insert(tid, Phase::Out);
                if tid == task {
                    saved = regs;
                }
                out += 1;
                if out == expected {
                    // Borrow the leader for the syscalls: a subreaper is
                    // made one after the go-ahead, when no restored task
                    // starts a cleaner any more; then the munmap.
                    let first = if job.subreaper {
                        hold(job, ready)?;
                        held = true;
                        NR_PRCTL
                    } else {
                        NR_MUNMAP
                    };
                    inject(job, task, &saved, first)?;
                    phases.insert(task, Phase::Enter(first));
                }
            }
            Phase::Out => {}
            Phase::Enter(nr) => {
                if regs.orig_rax != nr {
                    return Err(Stop::Failed(Errno::EPROTO));
                }
                phases.insert(task, Phase::Exit(nr));
                ptrace_syscall(task, 0)?;
            }
            Phase::Exit(nr) => {
                let r = regs.rax as i64;
                if r != 0 {
                    return Err(Stop::Failed(Errno::from_raw((-r) as i32)));
                }
                if nr != NR_MUNMAP {
                    inject(job, task, &saved, NR_MUNMAP)?;
                    phases.insert(task, Phase::Enter(NR_MUNMAP));
                    continue;
                }
                if job.fault {
                    return Err(Stop::Failed(Errno::ECANCELED));
                }
                saved.set(task)?;
                if !held {
                    hold(job, ready)?;
                }
                for (t, mask) in &job.threads {
                    ptrace::set_sigmask(*t, *mask)?;
                }
                ptrace::set_sigmask(task, job.sigmask)?;
                if job.detach_sig == 0 && job.stop_sig != 0 {
                    // Queued for the whole process while every thread is
                    // held: the first to run takes it and stops them all.
                    let sig = Signal::try_from(job.stop_sig).map_err(|_| Stop::Failed(Errno::EINVAL))?;
                    nix::sys::signal::kill(task, sig)?;
                }
                for (t, _) in &job.threads {
                    ptrace::detach(*t, job.detach_sig)?;
                }
                ptrace::detach(task, job.detach_sig)?;
                return Ok(());
            }
        }
    }
}

/// Run syscall `nr` in the leader (held at `saved`) through the blob's
/// `syscall` instruction; its entry and exit stops follow.
fn inject(job: &Job, task: Pid, saved: &Regs, nr: u64) -> Result<(), Stop> {
    let mut inj = *saved;
    inj.rip = job.syscall_ip;
    inj.rax = nr;
    inj.orig_rax = u64::MAX;
    (inj.rdi, inj.rsi) = match nr {
        NR_PRCTL => (PR_SET_CHILD_SUBREAPER, 1),
        _ => (job.region.0, job.region.1),
    };
    inj.set(task)?;
    ptrace_syscall(task, 0)?;
    Ok(())
}
