//! timens01 (suid, crfail): the root makes a time namespace for its
//! children (unshare CLONE_NEWTIME, monotonic offset +100 s) and forks C
//! into it. Tasks of one tree in different time namespaces can't be carried
//! yet: the dump must be refused, naming the task, and leave the tree as it
//! was. After it the root checks C still lives in a time namespace other
//! than its own, with the +100 s monotonic offset, and still counts.
//!
//! `--sabotage check`: the root expects an offset of +101 s.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use zdtm::Checks;

const OFFSET: i64 = 100;

fn main() {
    zdtm::test_init();
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        zdtm::skip("no time namespaces in this kernel");
    }
    let count = zdtm::shared_counter();
    // SAFETY: plain syscall; it changes only the namespace of our children.
    if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
        zdtm::fail(&format!("unshare(CLONE_NEWTIME): {}", zdtm::last_err()));
    }
    if let Err(e) = std::fs::write("/proc/self/timens_offsets", format!("monotonic {OFFSET} 0\n")) {
        zdtm::fail(&format!("timens_offsets: {e}"));
    }
    // SAFETY: single-threaded; the child runs only this loop.
    let c = unsafe { libc::fork() };
    if c < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if c == 0 {
        // SAFETY: resetting a disposition (SIGKILL ends it anyway).
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
        loop {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
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
    if !counts() {
        zdtm::fail("the child does not count");
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();

    let want = if zdtm::sabotaged() { OFFSET + 1 } else { OFFSET };
    let mut c_ = Checks::new();
    let ns = |p: &str| std::fs::read_link(p).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    c_.check(ns(&format!("/proc/{c}/ns/time")) != ns("/proc/self/ns/time"), || "the child is in our time namespace".into());
    let offsets = std::fs::read_to_string(format!("/proc/{c}/timens_offsets")).unwrap_or_default();
    let mono: Option<Vec<String>> =
        offsets.lines().find_map(|l| l.strip_prefix("monotonic")).map(|r| r.split_whitespace().map(str::to_owned).collect());
    c_.eq("the child's monotonic offset (s, ns)", mono, Some(vec![want.to_string(), "0".to_string()]));
    c_.check(counts(), || "the child stopped counting".into());
    // SAFETY: plain syscalls on our child.
    unsafe {
        libc::kill(c, libc::SIGKILL);
        libc::waitpid(c, std::ptr::null_mut(), 0);
    }
    c_.finish()
}
