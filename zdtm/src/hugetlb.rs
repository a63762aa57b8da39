//! Huge pages for the hugetlb tests: the default huge page size, and
//! enough free pages of it in the pool (raising /proc/sys/vm/nr_hugepages
//! when needed, as root, and putting it back at the end), or a skip saying
//! why there are none.

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

fn nr() -> u64 {
    std::fs::read_to_string(NR).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Pages this test added to the pool.
pub struct Pool {
    added: u64,
}

/// At least `pages` free huge pages of the default size, or skip.
pub fn reserve(pages: u64) -> Pool {
    let free = meminfo("HugePages_Free:").unwrap_or(0);
    if free >= pages {
        return Pool { added: 0 };
    }
    let before = nr();
    let want = before + (pages - free);
    if let Err(e) = std::fs::write(NR, want.to_string()) {
        skip(&format!("{free} free huge page(s), {pages} needed, and {NR} can't be raised: {e}"));
    }
    let pool = Pool { added: nr().saturating_sub(before) };
    let now = meminfo("HugePages_Free:").unwrap_or(0);
    if now < pages {
        pool.release();
        skip(&format!("only {now} free huge page(s) after raising {NR} to {want}; {pages} needed"));
    }
    pool
}

impl Pool {
    /// Give back what [`reserve`] added (every huge page of ours unmapped).
    pub fn release(&self) {
        if self.added > 0 && std::fs::write(NR, nr().saturating_sub(self.added).to_string()).is_err() {
            crate::test_msg!("can't put {NR} back: {}", last_err());
        }
    }
}
