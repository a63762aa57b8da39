//! Running the plans: each plan's banner, its `excl` tests one by one and
//! the others on `jobs` threads, its counts line, then the run's summary;
//! where the run's work dirs go and how many tests run at once.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::reaper::reaper;
use super::report::run_one;
use super::{Config, Plan, Summary, TEST_UID, TestDesc, interop, known_gaps, say};

/// Run the plans; prints one line per case and, last, the summary line.
pub fn run(cfg: &Config, plans: &[Plan]) -> Summary {
    reaper();
    let mut cfg = cfg.clone();
    let blocked = [&cfg.bindir, &cfg.workroot]
        .into_iter()
        .find_map(|p| unreachable_ancestor(p));
    if let Some(d) = blocked.filter(|_| cfg.as_user) {
        say(&format!(
            "note: {} is not reachable by uid {TEST_UID}: running every test as root",
            d.display()
        ));
        cfg.as_user = false;
    }
    let cfg = &cfg;
    for g in known_gaps::banner() {
        say(&format!("WARNING: {g}"));
    }
    let out = Mutex::new(Summary::default());
    for plan in plans {
        let missing: Vec<&str> = plan
            .tests
            .iter()
            .filter(|t| !cfg.bindir.join(&t.name).is_file())
            .map(|t| t.name.as_str())
            .collect();
        if !missing.is_empty() {
            say(&format!(
                "[{}] test binaries missing in {}: {missing:?} (cargo build -p zdtm)",
                plan.label(),
                cfg.bindir.display()
            ));
        }
        say(&format!(
            "== {}: {} test(s)",
            plan.label(),
            plan.tests.len()
        ));
        for (what, c) in [("dump", &plan.dump_criu), ("restore", &plan.restore_criu)] {
            if let Some(c) = c {
                say(&format!("   {what}: {} ({})", c.name, c.path.display()));
            }
        }
        if let Some(why) = &plan.as_root {
            say(&format!("   every test runs as root: {why}"));
        }
        let skip = interop::plan_skip_reason(plan);
        let skip = skip.as_deref();
        let at_start = {
            let s = out.lock().unwrap();
            [s.passed, s.failed, s.refused, s.known, s.skipped, s.known_gaps]
        };
        let (excl, par): (Vec<&TestDesc>, Vec<&TestDesc>) = plan.tests.iter().partition(|t| t.excl);
        for t in excl {
            let _machine_wide = excl_lock();
            run_one(cfg, plan, t, &out, skip);
        }
        let queue = Mutex::new(par.into_iter().collect::<VecDeque<_>>());
        std::thread::scope(|s| {
            for _ in 0..cfg.jobs.max(1) {
                s.spawn(|| {
                    loop {
                        let Some(t) = queue.lock().unwrap().pop_front() else {
                            break;
                        };
                        run_one(cfg, plan, t, &out, skip);
                    }
                });
            }
        });
        let _ = fs::remove_dir(cfg.workroot.join(plan.label()));
        let s = out.lock().unwrap();
        let d = Summary {
            passed: s.passed - at_start[0],
            failed: s.failed - at_start[1],
            refused: s.refused - at_start[2],
            known: s.known - at_start[3],
            skipped: s.skipped - at_start[4],
            known_gaps: s.known_gaps - at_start[5],
            failures: Vec::new(),
        };
        say(&format!("== {}: {}", plan.label(), d.counts(plan.interop())));
    }
    let _ = fs::remove_dir(&cfg.workroot);
    let sum = out.into_inner().unwrap();
    if !sum.failures.is_empty() {
        say(&format!("failed: {}", sum.failures.join(", ")));
        say(&format!(
            "work dirs of failed tests are under {}",
            cfg.workroot.display()
        ));
    }
    say(&sum.counts(false));
    sum
}

/// The first existing ancestor of `path` (itself included) that others
/// can't search (no o+x), if any.
fn unreachable_ancestor(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    path.ancestors()
        .filter_map(|a| Some((a, fs::metadata(a).ok()?)))
        .find_map(|(a, m)| {
            (m.is_dir() && m.uid() != TEST_UID && m.permissions().mode() & 0o001 == 0)
                .then(|| a.to_path_buf())
        })
}

/// A fresh work root under `base` for this run. Old runs' dirs (kept for
/// their failures) are pruned: only the 5 newest, and any younger than an
/// hour, stay.
pub fn new_workroot(base: &Path) -> PathBuf {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Ok(dir) = fs::read_dir(base) {
        let mut runs: Vec<(std::time::SystemTime, PathBuf)> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        runs.sort();
        runs.reverse();
        for (mtime, path) in runs.into_iter().skip(5) {
            if now.duration_since(mtime).unwrap_or_default() > Duration::from_secs(3600) {
                let _ = fs::remove_dir_all(path);
            }
        }
    }
    // Several runs of one process (cargo's test threads) each get their own.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    base.join(format!("run-{secs}-{}-{n}", std::process::id()))
}

/// Default parallelism: the tests mostly sleep, so twice the CPUs.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
}

/// `excl` tests run one at a time on the whole machine, not only within
/// one runner: the interop plans run as parallel runners, and such tests
/// take machine-wide things (a pty index, the huge page pool). The lock
/// goes with the returned file.
fn excl_lock() -> Option<fs::File> {
    let f = fs::OpenOptions::new().create(true).append(true).open("/tmp/zdtm-excl.lock").ok()?;
    // SAFETY: flock on our own open fd; it takes no pointers.
    let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
    (r == 0).then_some(f)
}
