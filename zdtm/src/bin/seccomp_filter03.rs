//! seccomp_filter03: children inherit their parent's filter. The test
//! process installs a filter (sysinfo fails with EPERM) and forks two
//! children: the first keeps just the inherited filter, the second adds
//! its own on top (times fails with EACCES). After the restore the parent
//! and each child check themselves (a child answers on its pipe): errnos of
//! sysinfo and times, Seccomp and Seccomp_filters. Sabotage: one more
//! filter in the parent (times fails with ENOENT, the count is 2).

use zdtm::seccomp::{self as sc, SYSINFO, TIMES};
use zdtm::Checks;

fn seen() -> String {
    let me = sc::gettid();
    format!("{} {} {} {}", sc::errno_of(SYSINFO), sc::errno_of(TIMES), sc::status_field(me, "Seccomp"), sc::status_field(me, "Seccomp_filters"))
}

/// A child answering `seen()` on each request byte.
fn spawn(own: bool) -> (i32, i32, i32) {
    zdtm::fork_server(move |req, rep| {
        if own {
            sc::install(&[(TIMES, libc::EACCES)], 0);
        }
        let mut b = [0u8; 1];
        // SAFETY: one-byte reads into a local buffer and line writes.
        unsafe {
            while libc::read(req, b.as_mut_ptr().cast(), 1) == 1 {
                let line = format!("{}\n", seen());
                libc::write(rep, line.as_ptr().cast(), line.len());
            }
            libc::_exit(0)
        }
    })
}

fn main() {
    zdtm::test_init();
    sc::no_new_privs();
    sc::install(&[(SYSINFO, libc::EPERM)], 0);
    let kids = [spawn(false), spawn(true)];
    let want = [format!("{} 0 2 1", libc::EPERM), format!("{} {} 2 2", libc::EPERM, libc::EACCES)];
    for (k, w) in kids.iter().zip(&want) {
        if zdtm::ask_line(k.1, k.2) != *w {
            zdtm::fail("a child's filters are not as set up");
        }
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        sc::install(&[(TIMES, libc::ENOENT)], 0);
    }

    let mut c = Checks::new();
    c.eq("the parent's view", seen(), want[0].clone());
    for (i, (k, w)) in kids.iter().zip(&want).enumerate() {
        c.eq(&format!("child {i}'s view"), zdtm::ask_line(k.1, k.2), w.clone());
    }
    for k in &kids {
        // SAFETY: our own children: killed and reaped.
        unsafe {
            libc::kill(k.0, libc::SIGKILL);
            libc::waitpid(k.0, std::ptr::null_mut(), 0);
        }
    }
    c.finish()
}
