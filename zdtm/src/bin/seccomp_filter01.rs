//! seccomp_filter01: two stacked filters on the test process: the first
//! makes sysinfo fail with EPERM and times with EACCES, the second (newer)
//! makes sysinfo fail with ENOTTY and getrusage with EROFS. The kernel runs
//! the newest first and, between equal actions, keeps the newest's errno:
//! sysinfo must give ENOTTY, so the filters must come back in their order.
//! After the restore: each syscall's errno, Seccomp 2, Seccomp_filters 2.
//! Sabotage: a third filter (times fails with ENOENT, the count is 3).

use zdtm::seccomp::{self as sc, GETRUSAGE, SYSINFO, TIMES};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    sc::no_new_privs();
    sc::install(&[(SYSINFO, libc::EPERM), (TIMES, libc::EACCES)], 0);
    sc::install(&[(SYSINFO, libc::ENOTTY), (GETRUSAGE, libc::EROFS)], 0);
    let me = sc::gettid();
    if sc::errno_of(SYSINFO) != libc::ENOTTY {
        zdtm::fail("the newer filter's errno does not win for sysinfo");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        sc::install(&[(TIMES, libc::ENOENT)], 0);
    }

    let mut c = Checks::new();
    c.eq("Seccomp", sc::status_field(me, "Seccomp"), "2".to_string());
    c.eq("Seccomp_filters", sc::status_field(me, "Seccomp_filters"), "2".to_string());
    c.eq("sysinfo's errno (the newer filter's)", sc::errno_of(SYSINFO), libc::ENOTTY);
    c.eq("times' errno (the older filter's)", sc::errno_of(TIMES), libc::EACCES);
    c.eq("getrusage's errno (the newer filter's)", sc::errno_of(GETRUSAGE), libc::EROFS);
    c.finish()
}
