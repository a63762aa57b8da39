//! [`Seized`]: a task held with ptrace, its saved thread state, syscalls run
//! inside it, and its release (state restored, stopped again if it was).

use std::marker::PhantomData;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::rescue::Rescue;
use super::{Ctx, Error, Result};

mod syscalls;
use crate::arch::{FpuState, Regs};
use crate::sys::ptrace;

/// `PTRACE_EVENT_STOP`: group stop or `PTRACE_INTERRUPT` trap.
const PTRACE_EVENT_STOP: i32 = 128;
/// si_code of an `int3` trap.
const SI_KERNEL: i32 = 0x80;
/// Every signal blocked but SIGTRAP (the kernel keeps SIGKILL and SIGSTOP
/// deliverable). Our `int3` raises a forced SIGTRAP, and a forced signal
/// that is blocked has its handler reset to SIG_DFL: the task would lose
/// its own SIGTRAP handler (CRIU's compel leaves SIGTRAP open for this).
const BLOCK_ALL: u64 = !(1 << (libc::SIGTRAP - 1));

/// A thread's state as seized: what release puts back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadState {
    pub regs: Regs,
    pub fpu: FpuState,
    /// Blocked signals (bit n-1 = signal n).
    pub sigmask: u64,
    /// Its rseq critical section, if it was stopped in one (`regs` then
    /// already holds the abort handler's address).
    pub rseq: super::rseq::RseqSeen,
}

/// A task stopped under our ptrace. Dropping it releases the task.
pub struct Seized {
    pid: Pid,
    tgid: Pid,
    /// The signal that had stopped it before we came (a group stop, or a
    /// queued SIGSTOP), what the image records; None: it was running. It
    /// is stopped again on release (see `stop_pending`).
    stop_signo: Option<Signal>,
    /// The thread uses a CET shadow stack (the parasite cannot run there).
    pub(super) shadow_stack: bool,
    /// A stop signal we took from it (a queued SIGSTOP, or one that
    /// arrived while we held it): sent again on release. A group stop in
    /// effect needs none: the kernel puts a detached task back into it.
    stop_pending: Option<Signal>,
    /// SIGSTOPs queued (thread, process) on top of a group stop, taken to
    /// run our code: queued again on release.
    requeue: (bool, bool),
    /// Something we ran may have changed the FPU state.
    pub(super) fpu_dirty: bool,
    saved: ThreadState,
    /// Where remote syscalls are injected: the start of the task's first
    /// executable mapping, as CRIU's compel picks it (so the same text page,
    /// which the poke makes private, is touched by either tool).
    syscall_ip: u64,
    /// The rescue chain once armed (see `rescue`); None with `armed_tried`:
    /// this thread cannot have one, remote syscalls use `syscall_ip`.
    rescue: Option<Rescue>,
    armed_tried: bool,
    released: bool,
    /// ptrace requests must come from the seizing thread.
    _not_send: PhantomData<*const ()>,
}

/// `PTRACE_O_SUSPEND_SECCOMP`: our injected syscalls bypass the task's filters.
const PTRACE_O_SUSPEND_SECCOMP: i32 = 0x20_0000;
/// `PTRACE_O_TRACESYSGOOD`: syscall stops are told apart from SIGTRAPs.
const PTRACE_O_TRACESYSGOOD: i32 = 0x1;
/// `MAP_FIXED_NOREPLACE`.
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;

/// What /proc/PID/status tells about a task we are seizing.
struct Status {
    state: char,
    tgid: i32,
    /// SIGSTOP queued for the thread alone (SigPnd), for the process (ShdPnd).
    sigstop_private: bool,
    sigstop_shared: bool,
    seccomp: bool,
    shadow_stack: bool,
}

fn status(pid: Pid) -> Result<Status> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| Error::Gone { pid: pid.as_raw(), what: format!("/proc/{pid}/status: {e}") })?;
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let sigstop_bit = 1u64 << (libc::SIGSTOP - 1);
    let pending = |name| field(name).and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(0) & sigstop_bit != 0;
    Ok(Status {
        state: field("State:").and_then(|v| v.chars().next()).unwrap_or('?'),
        tgid: field("Tgid:").and_then(|v| v.parse().ok()).unwrap_or(pid.as_raw()),
        sigstop_private: pending("SigPnd:"),
        sigstop_shared: pending("ShdPnd:"),
        seccomp: field("Seccomp:").is_some_and(|v| v != "0"),
        shadow_stack: field("x86_Thread_features:").is_some_and(|v| v.split_whitespace().any(|f| f == "shstk")),
    })
}

/// TracerPid of /proc/PID/status (None: unreadable).
fn tracer(pid: Pid) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("TracerPid:")).and_then(|v| v.trim().parse().ok())
}

/// The start of the first executable mapping in /proc/PID/maps (at
/// seize, before any parasite mapping exists), or None.
fn first_executable_area(pid: Pid) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let perms = rest.split_whitespace().next()?;
        if perms.as_bytes().get(2) != Some(&b'x') {
            return None;
        }
        u64::from_str_radix(range.split_once('-')?.0, 16).ok()
    })
}

/// Let go of threads seized and interrupted but not (or not fully)
/// stopped: PTRACE_DETACH needs a ptrace stop, so wait a little for the
/// interrupt's (a signal caught meanwhile is handed back on detach).
fn abandon(tids: &[Pid]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(250);
    for &tid in tids {
        if ptrace::detach(tid, 0).is_ok() {
            continue;
        }
        loop {
            match waitpid(tid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(WaitStatus::Stopped(_, sig)) => {
                    let _ = ptrace::detach(tid, sig as i32);
                    break;
                }
                Ok(WaitStatus::PtraceEvent(..)) => {
                    let _ = ptrace::detach(tid, 0);
                    break;
                }
                _ => break, // gone, or still not stopped: our exit detaches it
            }
        }
    }
}

/// The thread ids of process `pid` (/proc/PID/task).
fn list_threads(pid: Pid) -> Result<Vec<Pid>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| Error::Gone { pid: pid.as_raw(), what: format!("/proc/{pid}/task: {e}") })?;
    Ok(dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).map(Pid::from_raw).collect())
}

/// Seize and interrupt every thread of `pid` listed now that is neither
/// the leader nor in `known` or `pending` (added to `pending`); threads
/// that exit meanwhile are skipped.
fn attach_threads(pid: Pid, known: &[Pid], pending: &mut Vec<Pid>) -> Result<()> {
    for tid in list_threads(pid)? {
        if tid == pid || known.contains(&tid) || pending.contains(&tid) {
            continue;
        }
        match Seized::attach(tid) {
            Ok(()) => pending.push(tid),
            Err(Error::Gone { .. }) => {} // exited meanwhile
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_stop_signal(sig: Signal) -> bool {
    matches!(sig, Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU)
}

impl Seized {
    /// Seize `pid` (a thread id) and stop it; save its registers, FPU state
    /// and signal mask.
    pub fn seize(pid: Pid) -> Result<Seized> {
        Self::seize_with(pid, || Ok(()))
    }

    /// Like [`Seized::seize`], running `between` after the task is seized
    /// and interrupted but before waiting for it to stop: a task frozen by
    /// the cgroup freezer is thawed there, and takes the ptrace stop before
    /// running any user code.
    pub fn seize_with(pid: Pid, between: impl FnOnce() -> Result<()>) -> Result<Seized> {
        Self::attach(pid)?;
        if let Err(e) = between() {
            let _ = ptrace::detach(pid, 0);
            return Err(e);
        }
        match Self::stop(pid) {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = ptrace::detach(pid, 0);
                Err(e)
            }
        }
    }

    /// PTRACE_SEIZE + PTRACE_INTERRUPT (the stop is waited for by
    /// [`Seized::stop`]); detached again if the interrupt fails.
    fn attach(pid: Pid) -> Result<()> {
        ptrace::seize(pid, 0).map_err(|errno| match errno {
            Errno::ESRCH => Error::Gone { pid: pid.as_raw(), what: "no such task".into() },
            // A zombie, or a thread exiting right now (gone by the time we look).
            Errno::EPERM if status(pid).map_or(true, |s| matches!(s.state, 'Z' | 'X')) => {
                Error::Gone { pid: pid.as_raw(), what: "zombie".into() }
            }
            Errno::EPERM if tracer(pid).is_some_and(|t| t != 0) => {
                Error::Traced { pid: pid.as_raw(), tracer: tracer(pid).unwrap_or(0) }
            }
            errno => Error::Sys { pid: pid.as_raw(), op: "PTRACE_SEIZE", errno },
        })?;
        if let Err(errno) = ptrace::interrupt(pid) {
            let _ = ptrace::detach(pid, 0);
            return Err(Error::Sys { pid: pid.as_raw(), op: "PTRACE_INTERRUPT", errno });
        }
        Ok(())
    }

    /// Seize every thread of process `pid` (its leader first), as CRIU
    /// does: /proc/PID/task is listed again after each round of stops
    /// until a round finds no new thread, so none escapes (only a running
    /// thread can make another). Threads that exit on the way are skipped;
    /// the leader must stay. `between` runs once every thread listed so
    /// far is seized and interrupted, before any stop is waited for (the
    /// cgroup freezer is thawed there: no thread can clone while frozen).
    /// On error every thread is released again.
    pub fn seize_process(pid: Pid, between: impl FnOnce() -> Result<()>) -> Result<(Seized, Vec<Seized>)> {
        let mut all = Self::seize_processes(&[pid], between)?;
        all.pop().ok_or_else(|| Error::Unexpected { pid: pid.as_raw(), what: "no process seized".into() })
    }

    /// [`Seized::seize_process`] for several processes at once: every
    /// thread of every process is seized and interrupted first, then
    /// `between` runs (a frozen cgroup is thawed there), then each process
    /// is stopped and its thread list re-read until stable. On error every
    /// thread of every process is released again.
    pub fn seize_processes(pids: &[Pid], between: impl FnOnce() -> Result<()>) -> Result<Vec<(Seized, Vec<Seized>)>> {
        // (leader, threads attached but not yet stopped)
        let mut attached: Vec<(Pid, Vec<Pid>)> = Vec::with_capacity(pids.len());
        let undo = |attached: &[(Pid, Vec<Pid>)]| {
            for (leader, pending) in attached {
                abandon(pending);
                abandon(&[*leader]);
            }
        };
        for &pid in pids {
            let r = Self::attach(pid).and_then(|()| {
                let mut pending = Vec::new();
                match attach_threads(pid, &[], &mut pending) {
                    Ok(()) => Ok(pending),
                    Err(e) => {
                        abandon(&pending);
                        abandon(&[pid]);
                        Err(e)
                    }
                }
            });
            match r {
                Ok(pending) => attached.push((pid, pending)),
                Err(e) => {
                    undo(&attached);
                    return Err(e);
                }
            }
        }
        if let Err(e) = between() {
            undo(&attached);
            return Err(e);
        }
        let mut done: Vec<(Seized, Vec<Seized>)> = Vec::with_capacity(pids.len());
        let mut rest = attached.into_iter();
        while let Some((pid, pending)) = rest.next() {
            match Self::stop_process(pid, pending) {
                Ok(s) => done.push(s),
                Err(e) => {
                    // `done` is released on drop; the others are let go.
                    undo(&rest.collect::<Vec<_>>());
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Stop process `pid` (seized and interrupted, with the threads in
    /// `pending` too), then seize threads that appeared until none does.
    fn stop_process(pid: Pid, mut pending: Vec<Pid>) -> Result<(Seized, Vec<Seized>)> {
        const ROUNDS: usize = 64;
        let leader = match Self::stop(pid) {
            Ok(s) => s,
            Err(e) => {
                abandon(&pending);
                abandon(&[pid]);
                return Err(e);
            }
        };
        let mut threads: Vec<Seized> = Vec::new();
        for round in 0.. {
            let mut failed = None;
            for tid in pending.drain(..) {
                if failed.is_some() {
                    abandon(&[tid]);
                    continue;
                }
                match Self::stop(tid) {
                    Ok(s) => threads.push(s),
                    Err(Error::Gone { .. }) => abandon(&[tid]),
                    Err(e) => {
                        abandon(&[tid]);
                        failed = Some(e);
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e); // `leader` and `threads` are released on drop
            }
            let known: Vec<Pid> = threads.iter().map(Seized::pid).collect();
            if let Err(e) = attach_threads(pid, &known, &mut pending) {
                abandon(&pending);
                return Err(e);
            }
            if pending.is_empty() {
                break;
            }
            if round == ROUNDS {
                abandon(&pending);
                return Err(Error::Unexpected { pid: pid.as_raw(), what: format!("threads keep appearing after {ROUNDS} rounds of seizing") });
            }
        }
        threads.sort_by_key(|t| t.pid.as_raw());
        tracing::debug!(pid = pid.as_raw(), threads = threads.len(), "compel: seized every thread");
        Ok((leader, threads))
    }

    fn stop(pid: Pid) -> Result<Seized> {
        // Signals that were on their way before our interrupt are delivered
        // first (the task handles them as if we were not there).
        let sig = loop {
            match waitpid(pid, Some(WaitPidFlag::__WALL)).ctx(pid, "waitpid")? {
                WaitStatus::PtraceEvent(_, sig, PTRACE_EVENT_STOP) => break sig,
                WaitStatus::Stopped(_, sig) => ptrace::cont(pid, sig as i32).ctx(pid, "PTRACE_CONT")?,
                other => return Err(Error::Gone { pid: pid.as_raw(), what: format!("{other:?}") }),
            }
        };
        let st = status(pid)?;
        // A group stop (its signal reported) or queued SIGSTOPs: consume
        // them so the task can run our code, and stop it again on release.
        let stops = st.sigstop_private as u32 + st.sigstop_shared as u32 + is_stop_signal(sig) as u32;
        let mut last = sig;
        for _ in 0..stops {
            ptrace::cont(pid, 0).ctx(pid, "PTRACE_CONT")?;
            match waitpid(pid, Some(WaitPidFlag::__WALL)).ctx(pid, "waitpid")? {
                WaitStatus::PtraceEvent(_, s, _) | WaitStatus::Stopped(_, s) => last = s,
                other => return Err(Error::Gone { pid: pid.as_raw(), what: format!("{other:?}") }),
            }
        }
        // Which signal stopped it: the one the last stop reports (the
        // group stop still in effect, or the queued SIGSTOP just taken),
        // as CRIU reads it with PTRACE_GETSIGINFO; SIGSTOP if that one is
        // no stop signal.
        let stop_signo = (stops > 0).then(|| if is_stop_signal(last) { last } else { Signal::SIGSTOP });
        // In a group stop (the interrupt reported its signal), the task
        // goes back into it when detached, its parent's wait status as it
        // was; SIGSTOPs it had queued on top are queued again as they were.
        // Not stopped yet, it is sent the queued SIGSTOP we took.
        let group_stop = is_stop_signal(sig);
        let stop_pending = stop_signo.filter(|_| !group_stop);
        let requeue = (group_stop && st.sigstop_private, group_stop && st.sigstop_shared);
        let options = PTRACE_O_TRACESYSGOOD | if st.seccomp { PTRACE_O_SUSPEND_SECCOMP } else { 0 };
        ptrace::set_options(pid, options).ctx(pid, "PTRACE_SETOPTIONS")?;
        let mut saved = ThreadState {
            regs: Regs::get(pid).ctx(pid, "get registers")?,
            fpu: FpuState::get(pid).ctx(pid, "get FPU state")?,
            sigmask: ptrace::get_sigmask(pid).ctx(pid, "PTRACE_GETSIGMASK")?,
            rseq: Default::default(),
        };
        let (abort_ip, rseq) = super::rseq::inspect(pid, saved.regs.ip()).ctx(pid, "read its struct rseq / rseq_cs")?;
        if let Some(ip) = abort_ip {
            tracing::warn!(pid = pid.as_raw(), from = saved.regs.ip(), to = ip, "compel: stopped inside an rseq critical section: IP moved to its abort handler");
            saved.regs.rip = ip;
        }
        saved.rseq = rseq;
        tracing::debug!(pid = pid.as_raw(), stopped = ?stop_signo, first = ?sig, last = ?last, ip = saved.regs.ip(), "compel: seized");
        let syscall_ip = first_executable_area(pid).unwrap_or(saved.regs.ip());
        Ok(Seized {
            pid,
            tgid: Pid::from_raw(st.tgid),
            stop_signo,
            shadow_stack: st.shadow_stack,
            stop_pending,
            requeue,
            fpu_dirty: false,
            saved,
            syscall_ip,
            rescue: None,
            armed_tried: false,
            released: false,
            _not_send: PhantomData,
        })
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The process (thread group) the task belongs to.
    pub fn tgid(&self) -> Pid {
        self.tgid
    }

    /// Whether the task was stopped when seized (it is stopped on release).
    pub fn was_stopped(&self) -> bool {
        self.stop_signo.is_some()
    }

    /// The signal that had stopped the task when seized (None: it ran).
    pub fn stop_signo(&self) -> Option<Signal> {
        self.stop_signo
    }

    /// The state saved at seize time, put back on release.
    pub fn state(&self) -> &ThreadState {
        &self.saved
    }

    /// Set registers, block signals and let the task go (registers first:
    /// what they run returns through the rescue chain, which restores the
    /// mask too).
    pub(super) fn start(&mut self, regs: &Regs) -> Result<()> {
        let pid = self.pid;
        regs.set(pid).ctx(pid, "set registers")?;
        ptrace::set_sigmask(pid, BLOCK_ALL).ctx(pid, "PTRACE_SETSIGMASK")?;
        ptrace::cont(pid, 0).ctx(pid, "PTRACE_CONT")
    }

    /// Wait for the next stop. `Some(sig)`: a signal stop the caller must
    /// judge; `None`: a stop we absorbed (group stop, interrupt, stop signal)
    /// where the task is ptrace-stopped and may be continued.
    pub(super) fn wait(&mut self) -> Result<Option<Signal>> {
        self.classify(waitpid(self.pid, Some(WaitPidFlag::__WALL)).ctx(self.pid, "waitpid")?)
    }

    /// Like [`Seized::wait`] without blocking: `Ok(None)` also when nothing
    /// happened (`running` tells which).
    pub(super) fn poll(&mut self) -> Result<(bool, Option<Signal>)> {
        let st = waitpid(self.pid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)).ctx(self.pid, "waitpid")?;
        if st == WaitStatus::StillAlive {
            return Ok((true, None));
        }
        Ok((false, self.classify(st)?))
    }

    fn classify(&mut self, st: WaitStatus) -> Result<Option<Signal>> {
        match st {
            WaitStatus::Stopped(_, sig) if is_stop_signal(sig) => {
                self.stop_pending = Some(sig);
                Ok(None)
            }
            WaitStatus::Stopped(_, sig) => Ok(Some(sig)),
            // A group stop (its signal reported) stays in effect: the
            // kernel puts the task back into it once detached.
            WaitStatus::PtraceEvent(..) | WaitStatus::PtraceSyscall(_) => Ok(None),
            other => {
                self.released = true; // nothing left to release
                Err(Error::Gone { pid: self.pid.as_raw(), what: format!("{other:?}") })
            }
        }
    }

    fn ip(&self) -> u64 {
        Regs::get(self.pid).map(|r| r.ip()).unwrap_or(0)
    }

    pub(super) fn unexpected(&self, what: String) -> Error {
        Error::Unexpected { pid: self.pid.as_raw(), what }
    }

    /// Put the saved signal mask and general registers back (the mask
    /// first: until the registers are back, what runs restores it anyway).
    pub(super) fn restore_regs(&self) -> Result<()> {
        let pid = self.pid;
        ptrace::set_sigmask(pid, self.saved.sigmask).ctx(pid, "restore the signal mask")?;
        self.saved.regs.set(pid).ctx(pid, "restore registers")
    }

    /// Put everything back: undo what is still to be undone, then FPU
    /// state, mask and registers (see `settle`).
    pub(super) fn put_back(&mut self) -> Result<()> {
        let r = self.undo_all();
        if self.rescue.as_ref().is_some_and(Rescue::pending) {
            // Left parked in the chain: detached, the task undoes the rest.
            return r;
        }
        r.and(self.settle())
    }

    /// Restore the saved state and detach; a task that was stopped (or got
    /// a stop signal meanwhile) is left stopped.
    pub fn release(mut self) -> Result<()> {
        self.do_release()
    }

    /// Once SIGKILL was sent to its process: wait, as its tracer, until
    /// this thread is dead, so its id is free again when this returns (as
    /// CRIU's dump waits for each thread it killed). Wait for a leader
    /// after its other threads (its death is reported last).
    pub fn wait_killed(mut self) -> Result<()> {
        self.released = true;
        let pid = self.pid;
        loop {
            match waitpid(pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(nix::errno::Errno::ECHILD) => return Ok(()),
                Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
                Err(e) => return Err(e).ctx(pid, "waitpid for the killed task"),
            }
        }
    }

    fn do_release(&mut self) -> Result<()> {
        if self.released {
            return Ok(());
        }
        let mut res = self.put_back();
        self.released = true;
        let pid = self.pid;
        if let Some(sig) = self.stop_pending {
            // Queued now, acted on once detached: the task stops, by the
            // signal it had (what its parent's wait reports).
            let r = kill(pid, sig).ctx(pid, "kill(stop signal)");
            res = res.and(r);
        }
        if self.requeue.0 {
            let r = crate::sys::signals::tgkill(self.tgid.as_raw(), pid.as_raw(), libc::SIGSTOP).ctx(pid, "tgkill(SIGSTOP)");
            res = res.and(r);
        }
        if self.requeue.1 {
            let r = kill(self.tgid, Signal::SIGSTOP).ctx(pid, "kill(SIGSTOP)");
            res = res.and(r);
        }
        let r = ptrace::detach(pid, 0).ctx(pid, "PTRACE_DETACH");
        tracing::debug!(pid = pid.as_raw(), "compel: released");
        res.and(r)
    }
}

impl Drop for Seized {
    fn drop(&mut self) {
        if let Err(e) = self.do_release() {
            tracing::warn!("compel: releasing {}: {e}", self.pid);
        }
    }
}
