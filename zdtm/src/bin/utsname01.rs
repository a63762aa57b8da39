//! utsname01 (suid, crfail): the root stays in the host's uts namespace
//! and forks C, which makes one of its own. UTS namespaces nested in
//! the tree are refused (as by CRIU 4.2): the dump must be refused, naming C, and leave
//! the tree as it was. After it the root checks C still lives in a uts
//! namespace other than its own and still counts.
//!
//! `--sabotage check`: the root expects C in its own namespace.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let count = zdtm::shared_counter();
    let (r, w) = zdtm::pipe_or_fail();
    // SAFETY: single-threaded; the child runs only the code below.
    let c = unsafe { libc::fork() };
    if c < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if c == 0 {
        // SAFETY: resetting a disposition; then plain syscalls.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            let ok = libc::unshare(libc::CLONE_NEWUTS) == 0;
            libc::write(w, [u8::from(ok)].as_ptr().cast(), 1);
        }
        loop {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into our buffer.
    if unsafe { libc::read(r, b.as_mut_ptr().cast(), 1) } != 1 || b[0] != 1 {
        zdtm::fail("the child could not make a uts namespace");
    }
    let counts = || {
        let (n, end) = (count.load(Ordering::SeqCst), Instant::now() + Duration::from_secs(5));
        while count.load(Ordering::SeqCst) < n + 3 {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    };
    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c_ = Checks::new();
    let ns = |p: &str| std::fs::read_link(p).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    let differ = ns(&format!("/proc/{c}/ns/uts")) != ns("/proc/self/ns/uts");
    c_.check(differ != zdtm::sabotaged(), || "the child is not in a uts namespace of its own".into());
    c_.check(counts(), || "the child stopped counting".into());
    // SAFETY: plain syscalls on our child.
    unsafe {
        libc::kill(c, libc::SIGKILL);
        libc::waitpid(c, std::ptr::null_mut(), 0);
    }
    c_.finish()
}
