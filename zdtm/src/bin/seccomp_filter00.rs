//! seccomp_filter00: the test process filters itself with one filter that
//! makes sysinfo() fail with EPERM and allows everything else (setting
//! no_new_privs first unless it runs as root, which may filter without it).
//! After the restore it checks from inside that sysinfo still fails with
//! EPERM, that times() and getpid() still work, and /proc's Seccomp (2),
//! Seccomp_filters (1) and NoNewPrivs (as before). Sabotage: one more
//! filter (sysinfo fails with EACCES, and the count is 2).

use zdtm::seccomp::{self as sc, SYSINFO, TIMES};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    // SAFETY: geteuid has no arguments.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        sc::no_new_privs();
    }
    let nnp = if root { "0" } else { "1" };
    sc::install(&[(SYSINFO, libc::EPERM)], 0);
    let me = sc::gettid();
    if sc::errno_of(SYSINFO) != libc::EPERM {
        zdtm::fail("the filter does not make sysinfo fail with EPERM");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        sc::install(&[(SYSINFO, libc::EACCES)], 0);
    }

    let mut c = Checks::new();
    c.eq("Seccomp", sc::status_field(me, "Seccomp"), "2".to_string());
    c.eq("Seccomp_filters", sc::status_field(me, "Seccomp_filters"), "1".to_string());
    c.eq("NoNewPrivs", sc::status_field(me, "NoNewPrivs"), nnp.to_string());
    c.eq("sysinfo's errno", sc::errno_of(SYSINFO), libc::EPERM);
    c.eq("times' errno (allowed)", sc::errno_of(TIMES), 0);
    // SAFETY: getpid has no arguments.
    c.check(unsafe { libc::getpid() } > 0, || "getpid failed".into());
    c.finish()
}
