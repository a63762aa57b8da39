//! timerfd00: a CLOCK_MONOTONIC timerfd with a 1 s interval and 30 s left,
//! non-blocking: clock, interval and a sane remaining time survive.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let its = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 1, tv_nsec: 0 },
        it_value: libc::timespec { tv_sec: 30, tv_nsec: 0 },
    };
    // SAFETY: plain syscalls on our fd and structs.
    let fd = unsafe {
        let fd = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK);
        libc::timerfd_settime(fd, 0, &its, std::ptr::null_mut());
        fd
    };
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: disarming our own timer.
        unsafe {
            let z: libc::itimerspec = std::mem::zeroed();
            libc::timerfd_settime(fd, 0, &z, std::ptr::null_mut());
        }
    }
    // SAFETY: itimerspec is plain integers: all zeroes is a valid value.
    let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is our timerfd and `cur` a live itimerspec it writes.
    unsafe { libc::timerfd_gettime(fd, &mut cur) };
    let mut c = Checks::new();
    c.eq("interval", (cur.it_interval.tv_sec, cur.it_interval.tv_nsec), (1, 0));
    c.check(cur.it_value.tv_sec > 0 && cur.it_value.tv_sec < 30, || format!("remaining {} s", cur.it_value.tv_sec));
    // SAFETY: fcntl query.
    c.eq("nonblock", unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_NONBLOCK, libc::O_NONBLOCK);
    c.finish()
}
