//! itimers: interval timers survive: ITIMER_REAL keeps running with a sane
//! remaining time (it can't have lost more than the wall time that passed,
//! and it still counts down), intervals are exact; ITIMER_VIRTUAL and
//! ITIMER_PROF keep their values and intervals.

use std::time::{Duration, Instant};
use zdtm::Checks;

const REAL: (i64, i64) = (30, 7); // value, interval (s)
const VIRT: (i64, i64) = (40, 3);
const PROF: (i64, i64) = (50, 5);

fn get(which: libc::c_int) -> (Duration, Duration) {
    // SAFETY: out-buffer query.
    unsafe {
        let mut v: libc::itimerval = std::mem::zeroed();
        libc::getitimer(which, &mut v);
        let d = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        (d(v.it_value), d(v.it_interval))
    }
}

fn set(which: libc::c_int, (value, interval): (i64, i64)) {
    let v = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: interval,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: value,
            tv_usec: 0,
        },
    };
    // SAFETY: a valid itimerval.
    if unsafe { libc::setitimer(which, &v, std::ptr::null_mut()) } != 0 {
        zdtm::fail(&format!("setitimer({which}): {}", zdtm::last_err()));
    }
}

extern "C" fn on_alarm(_: libc::c_int) {}

fn main() {
    zdtm::test_init();
    for s in [libc::SIGALRM, libc::SIGVTALRM, libc::SIGPROF] {
        zdtm::install_handler(s, on_alarm as *const () as usize, libc::SA_RESTART);
    }
    let t0 = Instant::now();
    set(libc::ITIMER_REAL, REAL);
    set(libc::ITIMER_VIRTUAL, VIRT);
    set(libc::ITIMER_PROF, PROF);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let elapsed = t0.elapsed();
    if zdtm::sabotaged() {
        set(libc::ITIMER_REAL, (0, 0));
    }
    let mut c = Checks::new();
    let sec = |s: i64| Duration::from_secs(s as u64);
    let (value, interval) = get(libc::ITIMER_REAL);
    c.eq("ITIMER_REAL interval", interval, sec(REAL.1));
    // Not fired yet (tests finish well within 30 s), so it counts down the
    // first period: it can't be above the start, nor have lost more than
    // the wall time since (time spent dumped doesn't count).
    c.check(value > Duration::ZERO && value < sec(REAL.0), || {
        format!("ITIMER_REAL value {value:?} not in (0, {}s)", REAL.0)
    });
    c.check(
        value + elapsed + Duration::from_millis(500) >= sec(REAL.0),
        || format!("ITIMER_REAL lost more than the wall time: value {value:?}, {elapsed:?} passed"),
    );
    std::thread::sleep(Duration::from_millis(30));
    let (later, _) = get(libc::ITIMER_REAL);
    c.check(
        later < value && later + Duration::from_millis(500) > value,
        || format!("ITIMER_REAL not running: {value:?} then {later:?}"),
    );
    for (name, which, (v0, i0)) in [
        ("ITIMER_VIRTUAL", libc::ITIMER_VIRTUAL, VIRT),
        ("ITIMER_PROF", libc::ITIMER_PROF, PROF),
    ] {
        let (v, i) = get(which);
        c.eq(&format!("{name} interval"), i, sec(i0));
        // CPU-time timers: we used far less than a second of CPU (the
        // kernel adds a tick when arming them).
        c.check(
            v > sec(v0) - Duration::from_secs(1) && v <= sec(v0) + Duration::from_millis(50),
            || format!("{name} value {v:?}, set to {v0}s"),
        );
    }
    c.finish()
}
