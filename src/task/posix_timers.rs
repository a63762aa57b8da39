//! POSIX timers (timer_create): which exist and how they notify, from
//! /proc/PID/timers; their remaining time, interval and overrun, asked of
//! the task itself (timer_gettime / timer_getoverrun run in it); and their
//! re-creation with the same ids on restore (PR_TIMER_CREATE_RESTORE_IDS).

use anyhow::{bail, Context, Result};

use super::remote::Remote;
use crate::images::pb::PosixTimerEntry;

const SIGEV_SIGNAL: u32 = 0;
const SIGEV_NONE: u32 = 1;
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
                let (how, target) = v.split_once('/').unwrap_or((v, ""));
                t.notify = match how {
                    "signal" => SIGEV_SIGNAL,
                    "none" => SIGEV_NONE,
                    "thread" => SIGEV_THREAD_ID | SIGEV_SIGNAL,
                    other => bail!("timer notification {other:?} is not supported"),
                };
                if let Some(tid) = target.strip_prefix("tid.") {
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
    let page = r.scratch()?;
    let mut out = Vec::with_capacity(timers.len());
    for t in timers {
        if t.notify & SIGEV_THREAD_ID != 0 && t.tid != pid {
            bail!("posix timer {} of task {pid} signals thread {}: thread-directed timers of other threads are not supported yet", t.id, t.tid);
        }
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

/// Create the task's timers in this (restoring) process with their ids and
/// arm them. Signals must already be blocked (an early expiry then waits
/// for the task's handlers). `pid` is the task's (its own thread).
pub fn restore(timers: &[PosixTimerEntry], pid: i32) -> Result<()> {
    if timers.is_empty() {
        return Ok(());
    }
    crate::sys::timers::restore_ids(true).context("PR_TIMER_CREATE_RESTORE_IDS (kernel 6.13+ restores timer ids)")?;
    let mut sorted = timers.to_vec();
    sorted.sort_by_key(|t| t.it_id);
    for t in &sorted {
        let tid = t.notify_thread_id.unwrap_or(0);
        if t.it_sigev_notify & SIGEV_THREAD_ID != 0 && tid != pid {
            bail!("posix timer {} signals thread {tid}: not supported yet", t.it_id);
        }
        let id = crate::sys::timers::create(t.clock_id as i32, t.it_sigev_notify as i32, t.si_signo as i32, t.sival_ptr, tid, t.it_id as i32)
            .with_context(|| format!("timer_create for timer {}", t.it_id))?;
        if id != t.it_id as i32 {
            bail!("timer {} was created as {id}", t.it_id);
        }
        if t.vsec != 0 || t.vnsec != 0 {
            crate::sys::timers::arm(id, (t.vsec, t.vnsec), (t.isec, t.insec)).with_context(|| format!("arming timer {id}"))?;
        }
    }
    crate::sys::timers::restore_ids(false).context("PR_TIMER_CREATE_RESTORE_IDS off")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_proc_timers() {
        let t = super::parse("ID: 0\nsignal: 10/0000000000001234\nnotify: signal/pid.14754\nClockID: 1\nID: 3\nsignal: 12/0000000000000000\nnotify: thread/tid.77\nClockID: 0\n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].id, t[0].signo, t[0].sival, t[0].notify, t[0].clock), (0, 10, 0x1234, 0, 1));
        assert_eq!((t[1].id, t[1].notify, t[1].tid), (3, 4, 77));
    }
}
