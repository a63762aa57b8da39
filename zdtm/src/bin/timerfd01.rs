//! timerfd01: timerfds whose state is more than a remaining time:
//! - `once`: a CLOCK_MONOTONIC one-shot that expired and was not read: one
//!   tick to read after the restore, and disarmed;
//! - `phase`: CLOCK_MONOTONIC, 10 s interval, first expiry 4.5 s after its
//!   arming: its expiries stay on the same grid of the task's clock (which
//!   goes on from the dump in the restored time namespace) within 200 ms
//!   (a loaded machine's dump and restore), and the ticks read are those
//!   the grid says;
//! - `abs_mono`: TFD_TIMER_ABSTIME on CLOCK_MONOTONIC, 30 s ahead, 7 s
//!   interval: keeps the flag and its absolute expiry;
//! - `abs_real`: TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET on
//!   CLOCK_REALTIME, 100 s ahead: keeps both flags, and an expiry near its
//!   wall-clock time (later by at most the time the task was not running:
//!   the image holds the remaining time only).
//!
//! The settime flags are read from /proc/self/fdinfo. Expiries compare
//! within 1.05 s: CRIU 4.2 rebuilds an absolute expiry from whole seconds.

use zdtm::Checks;

const NS: i128 = 1_000_000_000;
const PHASE_IV: i128 = 10 * NS;
const PHASE_SLACK: i128 = 200_000_000;

fn ts(ns: i128) -> libc::timespec {
    libc::timespec { tv_sec: (ns / NS) as libc::time_t, tv_nsec: (ns % NS) as libc::c_long }
}

fn nanos(t: libc::timespec) -> i128 {
    t.tv_sec as i128 * NS + t.tv_nsec as i128
}

fn now(clock: libc::clockid_t) -> i128 {
    let mut t = ts(0);
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(clock, &mut t) };
    nanos(t)
}

fn timerfd(clock: libc::clockid_t, flags: libc::c_int, value: i128, interval: i128) -> i32 {
    let its = libc::itimerspec { it_interval: ts(interval), it_value: ts(value) };
    // SAFETY: plain syscalls on our fd and structs.
    unsafe {
        let fd = libc::timerfd_create(clock, libc::TFD_NONBLOCK);
        if fd < 0 || libc::timerfd_settime(fd, flags, &its, std::ptr::null_mut()) != 0 {
            zdtm::fail(&format!("timerfd: {}", zdtm::last_err()));
        }
        fd
    }
}

/// (remaining, interval) in ns.
fn gettime(fd: i32) -> (i128, i128) {
    let mut cur = libc::itimerspec { it_interval: ts(0), it_value: ts(0) };
    // SAFETY: writes one itimerspec.
    unsafe { libc::timerfd_gettime(fd, &mut cur) };
    (nanos(cur.it_value), nanos(cur.it_interval))
}

/// The expirations read now (0 when none: EAGAIN).
fn ticks(fd: i32) -> u64 {
    let mut n = 0u64;
    // SAFETY: reads 8 bytes into `n`.
    let r = unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) };
    if r == 8 { n } else { 0 }
}

fn settime_flags(fd: i32) -> String {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("settime flags:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "none".into())
}

fn main() {
    zdtm::test_init();
    let once = timerfd(libc::CLOCK_MONOTONIC, 0, 1_000_000, 0);
    let mono0 = now(libc::CLOCK_MONOTONIC);
    let phase = timerfd(libc::CLOCK_MONOTONIC, 0, 4_500_000_000, PHASE_IV);
    let phase_first = mono0 + 4_500_000_000;
    let abs_mono_at = now(libc::CLOCK_MONOTONIC) + 30 * NS;
    let abs_mono = timerfd(libc::CLOCK_MONOTONIC, libc::TFD_TIMER_ABSTIME, abs_mono_at, 7 * NS);
    let abs_real_at = now(libc::CLOCK_REALTIME) + 100 * NS;
    let abs_real =
        timerfd(libc::CLOCK_REALTIME, libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET, abs_real_at, 0);
    std::thread::sleep(std::time::Duration::from_millis(20));

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        ticks(once);
    }
    let mut c = Checks::new();
    c.eq("once: ticks", ticks(once), 1);
    c.eq("once: disarmed", gettime(once), (0, 0));
    c.eq("once: flags", settime_flags(once), "00".to_string());

    // The grid: expiries at phase_first + k s.
    let n1 = now(libc::CLOCK_MONOTONIC);
    let (rem, iv) = gettime(phase);
    let got = ticks(phase);
    let n2 = now(libc::CLOCK_MONOTONIC);
    c.eq("phase: interval", iv, PHASE_IV);
    let next = n1 + rem;
    let off = (next - phase_first).rem_euclid(PHASE_IV);
    let off = off.min(PHASE_IV - off);
    zdtm::test_msg!("phase: next expiry {} us off the grid", off / 1000);
    c.check(off < PHASE_SLACK, || format!("phase: next expiry {} ms off the grid", off / 1_000_000));
    let due = |t: i128| if t < phase_first { 0 } else { ((t - phase_first) / PHASE_IV + 1) as u64 };
    let (lo, hi) = (due(n1 - PHASE_SLACK), due(n2 + PHASE_SLACK));
    c.check(lo <= got && got <= hi, || format!("phase: read {got} ticks, the grid says {lo}..={hi}"));

    let (rem, iv) = gettime(abs_mono);
    let drift = now(libc::CLOCK_MONOTONIC) + rem - abs_mono_at;
    c.eq("abs_mono: interval", iv, 7 * NS);
    c.eq("abs_mono: flags", settime_flags(abs_mono), "01".to_string());
    c.check(drift.abs() < 1_050_000_000, || format!("abs_mono: expiry moved by {} ms", drift / 1_000_000));

    let (rem, _) = gettime(abs_real);
    let drift = now(libc::CLOCK_REALTIME) + rem - abs_real_at;
    c.eq("abs_real: flags", settime_flags(abs_real), "03".to_string());
    c.check(drift > -1_050_000_000 && drift < 5 * NS, || format!("abs_real: expiry moved by {} ms", drift / 1_000_000));
    c.finish()
}
