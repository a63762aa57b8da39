//! timerfd: clock, ticks, flags, remaining time and interval (from
//! /proc/PID/fdinfo, read again just before the dump reads its clocks) into
//! timerfd_entry; restored armed as the clocks the task sees have gone on.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx, State};
use super::FileTable;
use crate::images::pb::{FdTypes, FileEntry, TimerfdEntry};
use crate::proc::fdinfo::{self, FdInfo};

/// The timerfd kind (FD_TYPES TIMERFD).
pub struct Timerfd;

/// Timerfds recorded: (pid, fd, file id), read again last.
#[derive(Default)]
struct Recorded(Vec<(i32, i32, u32)>);

impl FdKind for Timerfd {
    fn name(&self) -> &'static str {
        "timerfd"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Timerfd
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.link == "anon_inode:[timerfd]"
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        // Expired and unread, a periodic timer is not moved on to its next
        // expiry yet: fdinfo would say disarmed, with one tick.
        let ours = p.dup()?;
        crate::sys::anonfd::timerfd_refresh(ours.as_fd()).with_context(|| format!("timerfd_gettime on {}", p.who()))?;
        let info = fdinfo::read(p.pid, p.fd)?;
        let e = timerfd_entry(id, p.flags, &info).with_context(|| p.who())?;
        cx.fds.state.get_mut::<Recorded>().0.push((p.pid, p.fd, id));
        Ok(FileEntry { r#type: FdTypes::Timerfd as i32, id, tfd: Some(e), ..Default::default() })
    }

    /// Each timerfd's remaining time and ticks again, so they are those of
    /// the clocks the image records (a restore in a new time namespace goes
    /// on from them; whatever the dump did in between would be lost or
    /// counted twice).
    fn dumped_all(&self, st: &mut State, files: &mut FileTable, _who: &str) -> Result<()> {
        let Some(rec) = st.get::<Recorded>() else { return Ok(()) };
        let mut pidfd: Option<(i32, OwnedFd)> = None;
        for &(pid, fd, id) in &rec.0 {
            if pidfd.as_ref().is_none_or(|(p, _)| *p != pid) {
                pidfd = Some((pid, crate::sys::pidfd::open(nix::unistd::Pid::from_raw(pid)).with_context(|| format!("pidfd_open({pid})"))?));
            }
            let p = pidfd.as_ref().map(|(_, p)| p.as_fd()).context("pidfd")?;
            let ours = crate::sys::pidfd::getfd(p, fd).with_context(|| format!("pidfd_getfd of fd {fd} of {pid}"))?;
            crate::sys::anonfd::timerfd_refresh(ours.as_fd()).with_context(|| format!("timerfd_gettime on fd {fd} of task {pid}"))?;
            let info = fdinfo::read(pid, fd)?;
            let e = files.entry_mut(id).and_then(|e| e.tfd.as_mut()).with_context(|| format!("timerfd {id} of fd {fd} of task {pid}"))?;
            let new = timerfd_entry(id, e.flags, &info).with_context(|| format!("fd {fd} of task {pid}"))?;
            *e = TimerfdEntry { fown: e.fown, ..new };
        }
        Ok(())
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.tfd.as_ref().map(|e| e.flags)
    }

    fn open(&self, fe: &FileEntry, _fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.tfd.as_ref().with_context(|| format!("file {} has no timerfd entry", fe.id))?;
        restore_timerfd(e).map(Some)
    }
}

/// `(sec, nsec)` as fdinfo prints a timespec.
fn timespec(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.trim().trim_start_matches('(').trim_end_matches(')').split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The record of a timerfd whose fdinfo is `info`.
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

    #[test]
    fn round_trip() {
        use std::os::fd::{AsFd, AsRawFd};
        // A periodic timer far from expiring: its interval and (about) its
        // remaining time come back.
        let fd = crate::sys::anonfd::timerfd(libc::CLOCK_MONOTONIC).unwrap();
        crate::sys::anonfd::timerfd_settime(fd.as_fd(), 0, (100, 0), (7, 500)).unwrap();
        let (before, _back, after) = super::super::round_trip::run(&[fd.as_raw_fd()]);
        let (b, a) = (before.entries[0].tfd.unwrap(), after.entries[0].tfd.unwrap());
        assert_eq!((b.clockid, b.isec, b.insec, b.ticks), (libc::CLOCK_MONOTONIC as u32, 7, 500, 0));
        assert_eq!((a.clockid, a.isec, a.insec, a.ticks, a.settime_flags, a.flags), (b.clockid, b.isec, b.insec, b.ticks, b.settime_flags, b.flags));
        assert!(a.vsec <= b.vsec && a.vsec + 5 >= b.vsec, "remaining {}s after, {}s before", a.vsec, b.vsec);
    }
}