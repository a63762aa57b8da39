//! seccomp_filter04 (root): a filter installed by root without
//! no_new_privs, then the process drops to an unprivileged uid/gid (no
//! capabilities left, no no_new_privs): its restored credentials could not
//! install the filter, so the restore must put it in before it changes the
//! credentials. After the restore it checks from inside: sysinfo fails
//! with EPERM, Seccomp 2, Seccomp_filters 1, NoNewPrivs 0, CapEff 0, its
//! uid. Sabotage: one more filter (it may: a filter may be added by an
//! unprivileged task only with no_new_privs, so the sabotage sets it, which
//! the check sees too).

use zdtm::seccomp::{self as sc, SYSINFO};
use zdtm::Checks;

const UID: u32 = 18943;

fn main() {
    zdtm::test_init();
    // SAFETY: geteuid has no arguments.
    if unsafe { libc::geteuid() } != 0 {
        zdtm::skip("needs root (runs with the suid flag)");
    }
    // Our work dir becomes the unprivileged uid's (pid file, verdict).
    let opts = zdtm::opts();
    if let Some(dir) = opts.pidfile.parent() {
        let d = zdtm::cpath(dir);
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::chown(d.as_ptr(), UID, UID) } != 0 {
            zdtm::fail(&format!("chown {}: {}", dir.display(), zdtm::last_err()));
        }
    }
    sc::install(&[(SYSINFO, libc::EPERM)], 0);
    // SAFETY: integer-only calls: drop to UID (every capability goes with
    // it), then be dumpable again (the uid change cleared it).
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 || libc::setresgid(UID, UID, UID) != 0 || libc::setresuid(UID, UID, UID) != 0 {
            zdtm::fail(&format!("dropping to uid {UID}: {}", zdtm::last_err()));
        }
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    let me = sc::gettid();
    if sc::status_field(me, "NoNewPrivs") != "0" || sc::status_field(me, "CapEff") != "0000000000000000" {
        zdtm::fail("still privileged after dropping the uid");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        sc::no_new_privs();
        sc::install(&[(SYSINFO, libc::EACCES)], 0);
    }

    let mut c = Checks::new();
    c.eq("Seccomp", sc::status_field(me, "Seccomp"), "2".to_string());
    c.eq("Seccomp_filters", sc::status_field(me, "Seccomp_filters"), "1".to_string());
    c.eq("NoNewPrivs", sc::status_field(me, "NoNewPrivs"), "0".to_string());
    c.eq("CapEff", sc::status_field(me, "CapEff"), "0000000000000000".to_string());
    // SAFETY: getuid has no arguments.
    c.eq("uid", unsafe { libc::getuid() }, UID);
    c.eq("sysinfo's errno", sc::errno_of(SYSINFO), libc::EPERM);
    c.finish()
}
