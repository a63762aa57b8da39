//! posix_timers01: a SIGEV_THREAD timer (glibc runs its callbacks from a
//! helper thread the kernel signals with SIGEV_THREAD_ID), firing every
//! 300 ms in a threaded program: after the restore the callbacks keep
//! coming with the sigval they were given, the timer keeps its interval,
//! and SIGTERM still ends the program.
//!
//! Each callback runs on a short-lived thread of glibc's; the interval is
//! long beside its life so the runner's thread-list compare rarely sees one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zdtm::Checks;

const INTERVAL_MS: i64 = 300;
const COOKIE: usize = 0x5eed_7153;

static TICKS: AtomicU64 = AtomicU64::new(0);
static BAD_VALUE: AtomicU64 = AtomicU64::new(0);

/// glibc's struct sigevent for SIGEV_THREAD (the libc crate has no field
/// for the function and its attributes).
#[repr(C)]
struct SigEventThread {
    value: usize,
    signo: libc::c_int,
    notify: libc::c_int,
    function: extern "C" fn(usize),
    attributes: *mut libc::pthread_attr_t,
    _pad: [u8; 32],
}

extern "C" fn on_tick(value: usize) {
    if value != COOKIE {
        BAD_VALUE.store(value as u64, Ordering::SeqCst);
    }
    TICKS.fetch_add(1, Ordering::SeqCst);
}

fn gettime(t: libc::timer_t) -> Option<libc::itimerspec> {
    // SAFETY: itimerspec is plain integers: all zeroes is a valid value.
    let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
    // SAFETY: `cur` is a live local the call writes; a bad timer id fails
    // with EINVAL.
    let r = unsafe { libc::timer_gettime(t, &mut cur) };
    (r == 0).then_some(cur)
}

fn main() {
    zdtm::test_init();
    let mut ev = SigEventThread {
        value: COOKIE,
        signo: 0,
        notify: libc::SIGEV_THREAD,
        function: on_tick,
        attributes: std::ptr::null_mut(),
        _pad: [0; 32],
    };
    let mut timer: libc::timer_t = std::ptr::null_mut();
    let period = libc::timespec { tv_sec: 0, tv_nsec: INTERVAL_MS * 1_000_000 };
    // SAFETY: the struct has glibc's sigevent layout (64 bytes); `timer`
    // is written by the call.
    unsafe {
        let evp = (&mut ev as *mut SigEventThread).cast::<libc::sigevent>();
        if libc::timer_create(libc::CLOCK_MONOTONIC, evp, &mut timer) != 0 {
            zdtm::fail(&format!("timer_create(SIGEV_THREAD): {}", zdtm::last_err()));
        }
        let its = libc::itimerspec { it_interval: period, it_value: period };
        if libc::timer_settime(timer, 0, &its, std::ptr::null_mut()) != 0 {
            zdtm::fail(&format!("timer_settime: {}", zdtm::last_err()));
        }
    }
    // The helper thread exists once the first tick came.
    let t0 = Instant::now();
    while TICKS.load(Ordering::SeqCst) < 1 {
        if t0.elapsed() > Duration::from_secs(5) {
            zdtm::fail("no callback before the dump");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: disarming our own timer.
        unsafe {
            let z: libc::itimerspec = std::mem::zeroed();
            libc::timer_settime(timer, 0, &z, std::ptr::null_mut());
        }
    }
    let mut c = Checks::new();
    match gettime(timer) {
        Some(cur) => c.eq(
            "interval",
            (cur.it_interval.tv_sec, cur.it_interval.tv_nsec),
            (period.tv_sec, period.tv_nsec),
        ),
        None => c.check(false, || format!("timer_gettime: {}", zdtm::last_err())),
    }
    // Callbacks after the restore: three more within 3 s.
    let start = TICKS.load(Ordering::SeqCst);
    let t0 = Instant::now();
    while TICKS.load(Ordering::SeqCst) < start + 3 && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = TICKS.load(Ordering::SeqCst) - start;
    c.check(got >= 3, || format!("{got} callbacks in 3 s after the restore (want 3)"));
    let bad = BAD_VALUE.load(Ordering::SeqCst);
    c.check(bad == 0, || format!("a callback got sigval {bad:#x}, not {COOKIE:#x}"));
    c.finish()
}
