//! The anonymous-inode files whose whole state /proc/PID/fdinfo shows:
//! signalfd (its signal mask) and timerfd (clock, ticks, flags, remaining
//! time and interval). Each has its dump record and its restore here.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};

use crate::images::pb::{SignalfdEntry, TimerfdEntry};
use crate::proc::fdinfo::FdInfo;

/// `(sec, nsec)` as fdinfo prints a timespec.
fn timespec(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.trim().trim_start_matches('(').trim_end_matches(')').split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

pub fn signalfd_entry(id: u32, flags: u32, info: &FdInfo) -> Result<SignalfdEntry> {
    let mask = info.get("sigmask").and_then(|m| u64::from_str_radix(m.trim(), 16).ok()).context("no sigmask in fdinfo")?;
    Ok(SignalfdEntry { id, flags, fown: Default::default(), sigmask: mask })
}

pub fn timerfd_entry(id: u32, flags: u32, info: &FdInfo) -> Result<TimerfdEntry> {
    let num = |k: &str| info.get(k).and_then(|v| v.trim().parse::<u64>().ok()).with_context(|| format!("no {k} in fdinfo"));
    let (vsec, vnsec) = info.get("it_value").and_then(timespec).context("no it_value in fdinfo")?;
    let (isec, insec) = info.get("it_interval").and_then(timespec).context("no it_interval in fdinfo")?;
    let settime_flags =
        info.get("settime flags").and_then(|v| u32::from_str_radix(v.trim(), 8).ok()).context("no settime flags in fdinfo")?;
    Ok(TimerfdEntry {
        id,
        flags,
        fown: Default::default(),
        clockid: num("clockid")? as u32,
        ticks: num("ticks")?,
        settime_flags,
        vsec,
        vnsec,
        isec,
        insec,
    })
}

/// A signalfd for the recorded mask.
pub fn restore_signalfd(e: &SignalfdEntry) -> Result<OwnedFd> {
    crate::sys::anonfd::signalfd(e.sigmask).context("signalfd")
}

/// A timerfd armed as recorded, with its settime flags: the image holds
/// the remaining time, so an absolute (TFD_TIMER_ABSTIME) timer is armed at
/// now plus that on its clock (as the task sees it: CLOCK_MONOTONIC goes on
/// from the dump in the restored time namespace). Expirations not read yet
/// are put back last (arming clears them).
pub fn restore_timerfd(e: &TimerfdEntry) -> Result<OwnedFd> {
    let fd = crate::sys::anonfd::timerfd(e.clockid as i32).context("timerfd_create")?;
    let flags = e.settime_flags as i32;
    let armed = e.vsec != 0 || e.vnsec != 0;
    if armed || flags != 0 {
        let value = if armed && flags & libc::TFD_TIMER_ABSTIME != 0 {
            let (s, n) = crate::sys::anonfd::clock_now(e.clockid as i32).with_context(|| format!("clock_gettime({})", e.clockid))?;
            let ns = u128::from(s) * 1_000_000_000 + u128::from(n) + u128::from(e.vsec) * 1_000_000_000 + u128::from(e.vnsec);
            ((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u64)
        } else {
            (e.vsec, e.vnsec)
        };
        crate::sys::anonfd::timerfd_settime(fd.as_fd(), flags, value, (e.isec, e.insec))
            .with_context(|| format!("timerfd_settime (flags {flags:#o})"))?;
    }
    if e.ticks != 0 {
        crate::sys::anonfd::timerfd_set_ticks(fd.as_fd(), e.ticks).context("TFD_IOC_SET_TICKS")?;
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdinfo_parsing() {
        let i = crate::proc::fdinfo::parse(
            "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1\nclockid: 1\nticks: 3\nsettime flags: 01\nit_value: (9, 999958830)\nit_interval: (1, 0)\n",
        )
        .unwrap();
        let t = super::timerfd_entry(4, 2, &i).unwrap();
        assert_eq!((t.clockid, t.ticks, t.settime_flags, t.vsec, t.vnsec, t.isec, t.insec), (1, 3, 1, 9, 999958830, 1, 0));
        let s = crate::proc::fdinfo::parse("sigmask:\t0000000000000202\n").unwrap();
        assert_eq!(super::signalfd_entry(1, 2, &s).unwrap().sigmask, 0x202);
    }
}
