//! Huge pages for the hugetlb tests: the default huge page size, and pages
//! of it added to the pool for the test (/proc/sys/vm/nr_hugepages raised
//! by what the test needs, as root, and lowered by as much at its end), or
//! a skip saying why there are none. The pool is the machine's: the
//! read-modify-write of nr_hugepages is serialized between tests with a
//! lock file, and each test adds its own pages (tests running at once, in
//! several runs, never count on the same free pages).

use std::os::fd::AsRawFd;

use crate::{last_err, skip};

fn meminfo(key: &str) -> Option<u64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    m.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The default huge page size in bytes (skips without hugetlb).
pub fn page_size() -> usize {
    match meminfo("Hugepagesize:") {
        Some(kb) if kb > 0 => (kb << 10) as usize,
        _ => skip("no hugetlb here (/proc/meminfo has no Hugepagesize)"),
    }
}

const NR: &str = "/proc/sys/vm/nr_hugepages";
const LOCK: &str = "/tmp/zdtm-nr_hugepages.lock";

fn nr() -> u64 {
    std::fs::read_to_string(NR).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Run `f` holding the lock on nr_hugepages (unlocked when the file closes).
fn locked<T>(f: impl FnOnce() -> T) -> T {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(LOCK);
    if let Ok(l) = &file {
        // SAFETY: flock on our own open fd.
        unsafe { libc::flock(l.as_raw_fd(), libc::LOCK_EX) };
    }
    f()
}

/// Pages this test added to the pool.
pub struct Pool {
    added: u64,
}

/// `pages` more huge pages of the default size in the pool, or skip.
pub fn reserve(pages: u64) -> Pool {
    let (pool, got) = locked(|| {
        let before = nr();
        let r = std::fs::write(NR, (before + pages).to_string());
        (Pool { added: nr().saturating_sub(before) }, r)
    });
    if let Err(e) = got {
        skip(&format!("{pages} huge page(s) needed, and {NR} can't be raised: {e}"));
    }
    if pool.added < pages {
        pool.release();
        skip(&format!("the kernel found only {} of the {pages} huge page(s) asked for", pool.added));
    }
    pool
}

impl Pool {
    /// Give back what [`reserve`] added (every huge page of ours unmapped).
    pub fn release(&self) {
        if self.added == 0 {
            return;
        }
        let r = locked(|| std::fs::write(NR, nr().saturating_sub(self.added).to_string()));
        if r.is_err() {
            crate::test_msg!("can't put {NR} back: {}", last_err());
        }
    }
}
