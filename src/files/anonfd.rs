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

const NS: i128 = 1_000_000_000;

fn nanos((s, n): (u64, u64)) -> i128 {
    i128::from(s) * NS + i128::from(n)
}

fn split(v: i128) -> (u64, u64) {
    ((v / NS) as u64, (v % NS) as u64)
}

/// How to arm a restored timer: (value to set, expirations that fell in the
/// restore). `remaining`/`interval` are the image's (ns); `now` is its clock
/// as the task sees it at arming, and `dumped_at` that clock when the dump
/// read `remaining` (known when the task's clock went on from it in a new
/// time namespace: the time the restore took is then the task's too).
/// An absolute timer gets its expiry, a relative one what is left of it.
fn arming(absolute: bool, remaining: i128, interval: i128, now: i128, dumped_at: Option<i128>) -> (i128, u64) {
    if remaining == 0 {
        return (0, 0);
    }
    let expiry = dumped_at.unwrap_or(now) + remaining;
    if absolute {
        return (expiry, 0);
    }
    let left = expiry - now;
    if left > 0 {
        return (left, 0);
    }
    // Expired while restoring: those expirations are ticks to read.
    if interval == 0 {
        return (0, 1);
    }
    let missed = -left / interval + 1;
    (left + missed * interval, missed as u64)
}

/// A timerfd armed as recorded, with its settime flags. The image holds the
/// remaining time as of the dump's clock reading: an absolute
/// (TFD_TIMER_ABSTIME) timer is armed at that reading plus it, on its clock
/// as the task sees it (CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from the
/// dump in the restored time namespace; CLOCK_REALTIME does not: a timer on
/// it keeps its remaining time from now). Expirations not read yet are put
/// back last (arming clears them).
pub fn restore_timerfd(e: &TimerfdEntry) -> Result<OwnedFd> {
    let clock = e.clockid as i32;
    let fd = crate::sys::anonfd::timerfd(clock).context("timerfd_create")?;
    let flags = e.settime_flags as i32;
    let now = nanos(crate::sys::anonfd::clock_now(clock).with_context(|| format!("clock_gettime({clock})"))?);
    let dumped_at = crate::ns::timens::clock_at_dump(clock);
    let absolute = flags & libc::TFD_TIMER_ABSTIME != 0;
    let (value, missed) = arming(absolute, nanos((e.vsec, e.vnsec)), nanos((e.isec, e.insec)), now, dumped_at);
    if value != 0 || flags != 0 {
        crate::sys::anonfd::timerfd_settime(fd.as_fd(), flags, split(value), (e.isec, e.insec))
            .with_context(|| format!("timerfd_settime (flags {flags:#o})"))?;
    }
    if e.ticks + missed != 0 {
        crate::sys::anonfd::timerfd_set_ticks(fd.as_fd(), e.ticks + missed).context("TFD_IOC_SET_TICKS")?;
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

    #[test]
    fn arming_goes_on_from_the_dump() {
        use super::arming;
        // Relative, no new time namespace: the remaining time as is.
        assert_eq!(arming(false, 5_000, 100, 1_000_000, None), (5_000, 0));
        // Relative, the clock went on from 1000 and is at 1300 now.
        assert_eq!(arming(false, 5_000, 100, 1_300, Some(1_000)), (4_700, 0));
        // Expired during the restore: ticks, and the next on the grid.
        assert_eq!(arming(false, 200, 100, 1_450, Some(1_000)), (50, 3));
        assert_eq!(arming(false, 200, 0, 1_450, Some(1_000)), (0, 1));
        // Absolute: the expiry, from the dump's reading (else now).
        assert_eq!(arming(true, 5_000, 0, 1_300, Some(1_000)), (6_000, 0));
        assert_eq!(arming(true, 5_000, 0, 1_300, None), (6_300, 0));
        // Disarmed stays disarmed.
        assert_eq!(arming(true, 0, 100, 1_300, Some(1_000)), (0, 0));
    }
}
