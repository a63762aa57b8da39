//! timerfd02: a periodic CLOCK_MONOTONIC timerfd that expired and was not
//! read, nor asked for its time, since: its first expiry 50.5 s in the
//! past, a 20 s interval, so 3 expirations wait to be read and the next is
//! 9.5 s ahead. Until a read (or timerfd_gettime) the kernel has counted one
//! expiration and shows the timer as not armed (fdinfo: ticks 1, it_value
//! 0); the restored timer must still hold 3 and run on with its interval.

use zdtm::Checks;

const NS: i128 = 1_000_000_000;

fn ts(ns: i128) -> libc::timespec {
    libc::timespec { tv_sec: (ns / NS) as libc::time_t, tv_nsec: (ns % NS) as libc::c_long }
}

fn nanos(t: libc::timespec) -> i128 {
    t.tv_sec as i128 * NS + t.tv_nsec as i128
}

fn main() {
    zdtm::test_init();
    let mut t = ts(0);
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    let first = nanos(t) - 50 * NS - NS / 2;
    if first < 0 {
        zdtm::skip("CLOCK_MONOTONIC is below 51 s here");
    }
    let its = libc::itimerspec { it_interval: ts(20 * NS), it_value: ts(first) };
    // SAFETY: plain syscalls on our fd and structs.
    let fd = unsafe {
        let fd = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK);
        if fd < 0 || libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &its, std::ptr::null_mut()) != 0 {
            zdtm::fail(&format!("timerfd: {}", zdtm::last_err()));
        }
        fd
    };
    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut n = 0u64;
    if zdtm::sabotaged() {
        // SAFETY: reads 8 bytes into `n`.
        unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) };
    }
    let mut c = Checks::new();
    // SAFETY: reads 8 bytes into `n`.
    let r = unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) };
    c.check(r == 8 && n == 3, || format!("read gave {r} ({}), {n} ticks: want 3", zdtm::last_err()));
    let mut cur = libc::itimerspec { it_interval: ts(0), it_value: ts(0) };
    // SAFETY: writes one itimerspec.
    unsafe { libc::timerfd_gettime(fd, &mut cur) };
    c.eq("interval", nanos(cur.it_interval), 20 * NS);
    let left = nanos(cur.it_value);
    c.check(left > 0 && left <= 9_500_000_000, || format!("next expiry in {} ms, want 0..9500", left / 1_000_000));
    c.finish()
}
