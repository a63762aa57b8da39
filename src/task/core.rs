//! The task core (`core-PID.img`'s `tc`) both ways: the dump builds it from
//! what was collected of a task ([`entry`], [`zombie_core`], [`cores`]);
//! the restore takes the task-level parts of its plan from it ([`plan`]:
//! rlimits, stop signal, personality, sigactions, timers) and sets the
//! rlimits ([`set_rlimits`]). The task states CRIU writes are defined here.

use anyhow::{bail, Result};
use nix::sys::signal::Signal;
use tracing::info;

use crate::compel::Seized;
use crate::images::pb::{
    core_entry::March, CoreEntry, PosixTimerEntry, RlimitEntry, SaEntry, SignalQueueEntry, TaskCoreEntry, TaskRlimitsEntry,
    TaskTimersEntry,
};
use crate::task::thread::ThreadDump;

/// CRIU's task_state of a live task (TASK_ALIVE).
pub const TASK_ALIVE: u32 = 1;
/// ... of a zombie (TASK_DEAD).
pub const TASK_DEAD: u32 = 2;
/// ... of a live task stopped by a signal (TASK_STOPPED, with the signal
/// in stop_signo).
pub const TASK_STOPPED: u32 = 3;

/// The task-level state a dump collected of a live task, as plain data.
#[derive(Clone, Debug, Default)]
pub struct Dumped {
    /// The signal that stopped it (None: it was running).
    pub stop: Option<Signal>,
    pub personality: u32,
    /// /proc/PID/stat's flags.
    pub flags: u32,
    /// The leader's blocked signals.
    pub blk_sigset: u64,
    pub comm: String,
    pub timers: TaskTimersEntry,
    /// (soft, hard) per resource, in RLIMIT_* order.
    pub rlimits: Vec<(u64, u64)>,
    /// Pending signals of the process.
    pub signals_s: SignalQueueEntry,
    pub loginuid: Option<u32>,
    pub oom_score_adj: i32,
    pub sigactions: Vec<SaEntry>,
    pub child_subreaper: bool,
    pub membarrier: u32,
}

/// What the parasite told of the task that goes into its task core.
pub struct FromTask {
    pub timers: TaskTimersEntry,
    pub sigactions: Vec<SaEntry>,
    pub child_subreaper: bool,
    pub membarrier: u32,
}

impl Dumped {
    /// Read the rest of live task `pid` from /proc (it is frozen).
    pub fn read(pid: i32, stat: &crate::proc::stat::Stat, blk_sigset: u64, stop: Option<Signal>, t: FromTask) -> Result<Dumped> {
        Ok(Dumped {
            stop,
            personality: super::personality(pid)?,
            flags: stat.flags,
            blk_sigset,
            comm: stat.comm.clone(),
            timers: t.timers,
            rlimits: crate::proc::limits::read(pid)?,
            signals_s: super::pending(pid, true)?,
            loginuid: super::settings::loginuid(pid)?,
            oom_score_adj: super::oom_score_adj(pid)?,
            sigactions: t.sigactions,
            child_subreaper: t.child_subreaper,
            membarrier: t.membarrier,
        })
    }
}

/// The task core of a live task.
pub fn entry(d: Dumped) -> TaskCoreEntry {
    TaskCoreEntry {
        task_state: if d.stop.is_some() { TASK_STOPPED } else { TASK_ALIVE },
        exit_code: 0,
        personality: d.personality,
        flags: d.flags,
        blk_sigset: d.blk_sigset,
        comm: d.comm,
        timers: Some(d.timers),
        rlimits: Some(TaskRlimitsEntry { rlimits: d.rlimits.into_iter().map(|(cur, max)| RlimitEntry { cur, max }).collect() }),
        cg_set: None,
        signals_s: Some(d.signals_s),
        old_seccomp_mode: None,
        old_seccomp_filter: None,
        loginuid: d.loginuid,
        oom_score_adj: Some(d.oom_score_adj),
        sigactions: d.sigactions,
        child_subreaper: Some(d.child_subreaper),
        blk_sigset_extended: None,
        stop_signo: d.stop.map(|s| s as u32),
        membarrier_registration_mask: (d.membarrier != 0).then_some(d.membarrier),
    }
}

/// The leader's core (with `tc`) and the other threads' (tid, core).
pub fn cores(tc: TaskCoreEntry, leader: ThreadDump, others: Vec<ThreadDump>) -> (CoreEntry, Vec<(i32, CoreEntry)>) {
    let mtype = March::X8664 as i32;
    let core = CoreEntry {
        mtype,
        thread_info: Some(leader.info),
        tc: Some(tc),
        ids: None,
        thread_core: Some(leader.core),
        ..Default::default()
    };
    let threads = others
        .into_iter()
        .map(|t| (t.tid, CoreEntry { mtype, thread_info: Some(t.info), thread_core: Some(t.core), ..Default::default() }))
        .collect();
    (core, threads)
}

/// A zombie's core, as CRIU writes it: the task core only, with its state,
/// exit code (the wait status /proc/PID/stat shows) and name.
pub fn zombie_core(stat: &crate::proc::stat::Stat) -> CoreEntry {
    CoreEntry {
        mtype: March::X8664 as i32,
        tc: Some(TaskCoreEntry {
            task_state: TASK_DEAD,
            exit_code: stat.exit_code as u32,
            comm: stat.comm.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The signal that stopped task `pid` (None: it was running), as its
/// threads were found: stopped all together (a group stop) or none.
pub fn stopped_by(pid: i32, leader: &Seized, threads: &[Seized]) -> Result<Option<Signal>> {
    let sig = leader.stop_signo();
    if let Some(t) = threads.iter().find(|t| t.was_stopped() != sig.is_some()) {
        let (stopped, running) = if sig.is_some() { (pid, t.pid().as_raw()) } else { (t.pid().as_raw(), pid) };
        bail!(
            "task {pid}: thread {stopped} is stopped but thread {running} is not: individually stopped threads can't be dumped"
        );
    }
    if let Some(s) = sig {
        info!("task {pid} is stopped (by {s}): it is restored stopped");
    }
    Ok(sig)
}

/// The signal a task stopped at dump time is stopped by again once
/// restored, as CRIU 4.2 does: TASK_STOPPED with its stop_signo (SIGSTOP
/// when the image has none); None for a running task. A stop_signo that
/// is no stop signal is refused (sending it would do something else).
pub fn stop_signal(core: &CoreEntry, pid: i32) -> Result<Option<Signal>> {
    let Some(tc) = core.tc.as_ref().filter(|tc| tc.task_state == TASK_STOPPED) else { return Ok(None) };
    let Some(n) = tc.stop_signo.filter(|&n| n > 0) else { return Ok(Some(Signal::SIGSTOP)) };
    match Signal::try_from(n as i32) {
        Ok(s @ (Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU)) => Ok(Some(s)),
        _ => bail!("core-{pid}.img: task {pid} was stopped by signal {n}, which is no stop signal: the image is inconsistent"),
    }
}

/// The task-level parts of a restore plan, from the task core.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub stop: Option<Signal>,
    /// (resource, soft, hard), in RLIMIT_* order.
    pub rlimits: Vec<(u32, u64, u64)>,
    pub personality: u32,
    pub sigactions: Vec<SaEntry>,
    pub itimers: Option<TaskTimersEntry>,
    pub posix_timers: Vec<PosixTimerEntry>,
    pub child_subreaper: bool,
}

/// The rlimits of task `pid`'s core image must be ones that can be set: a
/// soft limit above its hard one is refused, naming the image.
pub fn check_rlimits(core: &CoreEntry, pid: i32) -> Result<()> {
    let limits = core.tc.as_ref().and_then(|tc| tc.rlimits.as_ref());
    for (res, l) in limits.iter().flat_map(|rl| rl.rlimits.iter()).enumerate() {
        if l.cur > l.max {
            bail!("core-{pid}.img: rlimit {res} has its soft limit {} above its hard limit {}", l.cur, l.max);
        }
    }
    Ok(())
}

/// The task-level parts of the plan of task `pid` (`core` holds its task core).
pub fn plan(core: &CoreEntry, tc: &TaskCoreEntry, pid: i32) -> Result<Plan> {
    check_rlimits(core, pid)?;
    Ok(Plan {
        stop: stop_signal(core, pid)?,
        rlimits: tc
            .rlimits
            .as_ref()
            .map(|rl| rl.rlimits.iter().enumerate().map(|(res, l)| (res as u32, l.cur, l.max)).collect())
            .unwrap_or_default(),
        personality: tc.personality,
        sigactions: tc.sigactions.clone(),
        itimers: tc.timers.clone(),
        posix_timers: tc.timers.as_ref().map(|t| t.posix.clone()).unwrap_or_default(),
        child_subreaper: tc.child_subreaper.unwrap_or(false),
    })
}

/// Set the limits of the plan. Lowering always works; raising a hard
/// limit needs CAP_SYS_RESOURCE, which this machine may lack: say so, go on.
pub fn set_rlimits(rlimits: &[(u32, u64, u64)], pid: i32) {
    for &(res, cur, max) in rlimits {
        let lim = libc::rlimit { rlim_cur: cur, rlim_max: max };
        if let Err(e) = crate::sys::rlimit::set(res, &lim) {
            tracing::warn!("can't set rlimit {res} to {cur}/{max} for task {pid}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_core_round_trips() {
        let d = Dumped {
            stop: Some(Signal::SIGTSTP),
            personality: 0x0040_0000,
            rlimits: vec![(1, 2), (u64::MAX, u64::MAX), (8 << 20, u64::MAX)],
            sigactions: vec![SaEntry { sigaction: 0x1234, flags: 4, restorer: 0x5678, mask: 2, ..Default::default() }],
            timers: TaskTimersEntry {
                posix: vec![PosixTimerEntry { it_id: 3, clock_id: 1, ..Default::default() }],
                ..Default::default()
            },
            child_subreaper: true,
            ..Default::default()
        };
        let core = CoreEntry { tc: Some(entry(d.clone())), ..Default::default() };
        let tc = core.tc.as_ref().unwrap();
        assert_eq!(tc.task_state, TASK_STOPPED);
        let p = plan(&core, tc, 7).unwrap();
        assert_eq!(p.stop, d.stop);
        assert_eq!(p.rlimits, vec![(0, 1, 2), (1, u64::MAX, u64::MAX), (2, 8 << 20, u64::MAX)]);
        assert_eq!(p.personality, d.personality);
        let mut bad = core.clone();
        bad.tc.as_mut().unwrap().rlimits.as_mut().unwrap().rlimits[1] = RlimitEntry { cur: 5, max: 4 };
        let e = plan(&bad, bad.tc.as_ref().unwrap(), 7).unwrap_err().to_string();
        assert!(e.starts_with("core-7.img: rlimit 1 ") && e.contains("soft limit 5 above its hard limit 4"), "{e}");
        assert_eq!(p.sigactions, d.sigactions);
        assert_eq!(p.itimers.as_ref(), Some(&d.timers));
        assert_eq!(p.posix_timers, d.timers.posix);
        assert!(p.child_subreaper);

        let running = CoreEntry { tc: Some(entry(Dumped { stop: None, ..d })), ..Default::default() };
        assert_eq!(running.tc.as_ref().unwrap().task_state, TASK_ALIVE);
        assert_eq!(stop_signal(&running, 7).unwrap(), None);
    }

    #[test]
    fn a_stop_signal_must_stop() {
        let tc = TaskCoreEntry { task_state: TASK_STOPPED, stop_signo: Some(libc::SIGTERM as u32), ..Default::default() };
        assert!(stop_signal(&CoreEntry { tc: Some(tc), ..Default::default() }, 7).is_err());
        let tc = TaskCoreEntry { task_state: TASK_STOPPED, stop_signo: None, ..Default::default() };
        assert_eq!(stop_signal(&CoreEntry { tc: Some(tc), ..Default::default() }, 7).unwrap(), Some(Signal::SIGSTOP));
    }

    #[test]
    fn a_zombie_keeps_its_exit_code_and_name() {
        let st = crate::proc::stat::Stat { comm: "z".into(), exit_code: 0x0900, ..Default::default() };
        let tc = zombie_core(&st).tc.unwrap();
        assert_eq!((tc.task_state, tc.exit_code, tc.comm.as_str()), (TASK_DEAD, 0x0900, "z"));
    }
}
