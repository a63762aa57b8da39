//! POSIX timers (timer_create): which exist and how they notify, from
//! /proc/PID/timers; their remaining time, interval and overrun, asked of
//! the task itself (timer_gettime / timer_getoverrun run in it); and their
//! re-creation with the same ids and targets on restore (the restorer makes
//! them once every thread exists, with PR_TIMER_CREATE_RESTORE_IDS).

use anyhow::{bail, Context, Result};

use super::remote::Remote;
use crate::images::pb::PosixTimerEntry;

const SIGEV_SIGNAL: u32 = 0;
const SIGEV_NONE: u32 = 1;
const SIGEV_THREAD: u32 = 2;
const SIGEV_THREAD_ID: u32 = 4;

/// One timer as /proc/PID/timers shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcTimer {
    pub id: u32,
    pub signo: u32,
    pub sival: u64,
    /// SIGEV_* (SIGEV_THREAD_ID with SIGEV_SIGNAL for thread-directed).
    pub notify: u32,
    /// The target thread of a thread-directed timer.
    pub tid: i32,
    pub clock: u32,
}

/// Parse /proc/PID/timers.
pub fn parse(text: &str) -> Result<Vec<ProcTimer>> {
    let mut out: Vec<ProcTimer> = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k {
            "ID" => out.push(ProcTimer { id: v.parse().context("bad timer ID")?, ..Default::default() }),
            "signal" => {
                let t = out.last_mut().context("signal before ID")?;
                let (s, val) = v.split_once('/').context("bad signal line")?;
                t.signo = s.parse().context("bad signal")?;
                t.sival = u64::from_str_radix(val, 16).context("bad sigval")?;
            }
            "notify" => {
                let t = out.last_mut().context("notify before ID")?;
                // "HOW/pid.N" or "HOW/tid.N": tid when thread-directed
                // (SIGEV_THREAD_ID, as glibc's SIGEV_THREAD timers are).
                let (how, target) = v.split_once('/').unwrap_or((v, ""));
                t.notify = match how {
                    "signal" => SIGEV_SIGNAL,
                    "none" => SIGEV_NONE,
                    "thread" => SIGEV_THREAD,
                    other => bail!("timer notification {other:?} is not supported"),
                };
                if let Some(tid) = target.strip_prefix("tid.") {
                    t.notify |= SIGEV_THREAD_ID;
                    t.tid = tid.parse().context("bad notify tid")?;
                }
            }
            "ClockID" => out.last_mut().context("ClockID before ID")?.clock = v.parse().context("bad clock")?,
            _ => {}
        }
    }
    Ok(out)
}

/// The timers of `pid` with their state, asked through `r` (running in the
/// task's leader).
pub fn dump(pid: i32, r: &mut dyn Remote) -> Result<Vec<PosixTimerEntry>> {
    let timers = parse(&crate::proc::read(pid, "timers")?)?;
    if timers.is_empty() {
        return Ok(Vec::new());
    }
    // A thread-directed timer must target a thread the dump carries (its
    // target may have exited since).
    let tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("can't list the threads of task {pid}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    if let Some(t) = timers.iter().find(|t| t.notify & SIGEV_THREAD_ID != 0 && !tids.contains(&t.tid)) {
        bail!("posix timer {} of task {pid} signals thread {}, which is not one of its threads: not supported", t.id, t.tid);
    }
    let page = r.scratch()?;
    let mut out = Vec::with_capacity(timers.len());
    for t in timers {
        let rv = r.syscall(libc::SYS_timer_gettime, [u64::from(t.id), page, 0, 0, 0, 0])?;
        if rv < 0 {
            bail!("timer_gettime({}) in task {pid}: {}", t.id, nix::errno::Errno::from_raw(-rv as i32));
        }
        let b = r.read(page, 32)?;
        let w = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
        let overrun = r.syscall(libc::SYS_timer_getoverrun, [u64::from(t.id), 0, 0, 0, 0, 0])?;
        out.push(PosixTimerEntry {
            it_id: t.id,
            clock_id: t.clock,
            si_signo: t.signo,
            it_sigev_notify: t.notify,
            sival_ptr: t.sival,
            overrun: overrun.max(0) as u32,
            isec: w(0),
            insec: w(1),
            vsec: w(2),
            vnsec: w(3),
            notify_thread_id: (t.notify & SIGEV_THREAD_ID != 0).then_some(t.tid),
        });
    }
    Ok(out)
}

/// Before the restore starts: timer ids can be restored (Linux 6.13+),
/// and each thread-directed timer targets a thread of the task (`pid` is
/// its leader, `threads` the other tids).
pub fn check_restore(timers: &[PosixTimerEntry], pid: i32, threads: &[i32]) -> Result<()> {
    if timers.is_empty() {
        return Ok(());
    }
    crate::sys::timers::restore_ids(true).context("PR_TIMER_CREATE_RESTORE_IDS (kernel 6.13+ restores timer ids)")?;
    crate::sys::timers::restore_ids(false).context("PR_TIMER_CREATE_RESTORE_IDS off")?;
    for t in timers {
        if t.it_sigev_notify & SIGEV_THREAD_ID != 0 {
            let tid = t.notify_thread_id.unwrap_or(0);
            if tid != pid && !threads.contains(&tid) {
                bail!("posix timer {} of task {pid} signals thread {tid}, which is not a thread of the task", t.it_id);
            }
        }
    }
    Ok(())
}

/// The restorer's record of a timer (it creates them once every thread
/// exists, with their ids, and arms them relative to now).
pub fn words(t: &PosixTimerEntry) -> crate::restorer::proto::PosixTimer {
    let thread_directed = t.it_sigev_notify & SIGEV_THREAD_ID != 0;
    crate::restorer::proto::PosixTimer {
        id: u64::from(t.it_id),
        clock: u64::from(t.clock_id),
        notify: u64::from(t.it_sigev_notify),
        signo: u64::from(t.si_signo),
        sival: t.sival_ptr,
        tid: if thread_directed { t.notify_thread_id.unwrap_or(0) as u32 as u64 } else { 0 },
        value: [t.vsec, t.vnsec],
        interval: [t.isec, t.insec],
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_proc_timers() {
        let t = super::parse("ID: 0\nsignal: 10/0000000000001234\nnotify: signal/pid.14754\nClockID: 1\nID: 3\nsignal: 32/0000000000000000\nnotify: signal/tid.77\nClockID: 0\nID: 4\nsignal: 0/0000000000000000\nnotify: none/pid.14754\nClockID: 1\n").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!((t[2].notify, t[2].tid), (1, 0));
        assert_eq!((t[0].id, t[0].signo, t[0].sival, t[0].notify, t[0].clock), (0, 10, 0x1234, 0, 1));
        assert_eq!((t[1].id, t[1].notify, t[1].tid), (3, 4, 77));
    }
}
