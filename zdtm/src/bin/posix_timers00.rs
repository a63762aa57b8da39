//! posix_timers00: three timer_create timers, one CLOCK_MONOTONIC expiring
//! every 10 ms without notification (a signal every 10 ms would make the
//! runner's pending-signal compare racy; tests/timers.rs covers delivery),
//! one CLOCK_REALTIME signalling SIGRTMIN with 100 s left: both keep their
//! ids, intervals and a sane remaining time, and the first keeps cycling;
//! and a CLOCK_MONOTONIC one every 10 s from 4.5 s after its arming, whose
//! expiries stay on that grid of the task's clock (which goes on from the
//! dump in the restored time namespace) within 200 ms.

use std::time::Duration;

use zdtm::Checks;

fn its(interval_ns: i64, value_ns: i64) -> libc::itimerspec {
    let ts = |ns: i64| libc::timespec { tv_sec: ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000 };
    libc::itimerspec { it_interval: ts(interval_ns), it_value: ts(value_ns) }
}

fn create(clock: libc::clockid_t, notify: libc::c_int, signo: libc::c_int) -> libc::timer_t {
    // SAFETY: a zeroed sigevent with the fields we need set; `id` is written by the call.
    unsafe {
        let mut ev: libc::sigevent = std::mem::zeroed();
        ev.sigev_notify = notify;
        ev.sigev_signo = signo;
        let mut id: libc::timer_t = std::ptr::null_mut();
        assert_eq!(libc::timer_create(clock, &mut ev, &mut id), 0, "timer_create");
        id
    }
}

const GRID_IV: i64 = 10_000_000_000;
const GRID_FIRST: i64 = 4_500_000_000;

fn mono_ns() -> i64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

fn main() {
    zdtm::test_init();
    let tick = create(libc::CLOCK_MONOTONIC, libc::SIGEV_NONE, 0);
    let idle = create(libc::CLOCK_REALTIME, libc::SIGEV_SIGNAL, libc::SIGRTMIN());
    let grid = create(libc::CLOCK_MONOTONIC, libc::SIGEV_NONE, 0);
    // SAFETY: arming our own timers.
    unsafe {
        libc::timer_settime(tick, 0, &its(10_000_000, 10_000_000), std::ptr::null_mut());
        libc::timer_settime(idle, 0, &its(5_000_000_000, 100_000_000_000), std::ptr::null_mut());
    }
    let grid_first = mono_ns() + GRID_FIRST;
    // SAFETY: arming our own timer.
    unsafe { libc::timer_settime(grid, 0, &its(GRID_IV, GRID_FIRST), std::ptr::null_mut()) };
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: deleting our own timer.
        unsafe { libc::timer_delete(idle) };
    }
    let mut c = Checks::new();
    // SAFETY: itimerspec is plain integers: all zeroes is a valid value.
    let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
    // SAFETY: `cur` is a live itimerspec the call writes; a timer id that
    // is gone fails with EINVAL, nothing else is touched.
    let r = unsafe { libc::timer_gettime(idle, &mut cur) };
    c.eq("idle timer exists", r, 0);
    c.eq("idle interval", (cur.it_interval.tv_sec, cur.it_interval.tv_nsec), (5, 0));
    c.check(cur.it_value.tv_sec > 0 && cur.it_value.tv_sec < 100, || format!("idle remaining {} s", cur.it_value.tv_sec));
    // SAFETY: as for `idle`: `cur` is a live itimerspec the call writes.
    let r = unsafe { libc::timer_gettime(tick, &mut cur) };
    c.eq("tick timer exists", r, 0);
    c.eq("tick interval", (cur.it_interval.tv_sec, cur.it_interval.tv_nsec), (0, 10_000_000));
    let v1 = cur.it_value;
    std::thread::sleep(Duration::from_millis(3));
    // SAFETY: `cur` is a live itimerspec the call writes; a timer id
    // that is gone fails with EINVAL.
    unsafe { libc::timer_gettime(tick, &mut cur) };
    let v2 = cur.it_value;
    let live = |v: libc::timespec| v.tv_sec == 0 && v.tv_nsec > 0 && v.tv_nsec <= 10_000_000;
    c.check(live(v1) && live(v2) && (v1.tv_sec, v1.tv_nsec) != (v2.tv_sec, v2.tv_nsec), || {
        format!("tick timer not cycling: {}ns then {}ns", v1.tv_nsec, v2.tv_nsec)
    });
    let now = mono_ns();
    // SAFETY: `cur` is a live itimerspec the call writes; a timer id
    // that is gone fails with EINVAL.
    let r = unsafe { libc::timer_gettime(grid, &mut cur) };
    c.eq("grid timer exists", r, 0);
    let next = now + cur.it_value.tv_sec * 1_000_000_000 + cur.it_value.tv_nsec;
    let off = (next - grid_first).rem_euclid(GRID_IV);
    let off = off.min(GRID_IV - off);
    zdtm::test_msg!("grid: next expiry {} us off", off / 1000);
    c.check(off < 200_000_000, || format!("grid timer: next expiry {} ms off its grid", off / 1_000_000));
    c.finish()
}
