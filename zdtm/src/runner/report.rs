//! Reporting: one case run and its line (PASS, SKIP, REFUSED,
//! CRIU42-LIMIT, FAIL with its details and log excerpts), and the counts
//! of a plan or a whole run (`Summary`).

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::Instant;

use super::case::{Case, Res, tail};
use super::selftest::invert;
use super::{Config, Keep, Plan, TestDesc, interop};

#[derive(Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Interop: dumps one side refused (with its reason).
    pub refused: usize,
    /// Interop: failures tests.desc names as CRIU 4.2 limitations.
    pub known: usize,
    /// Differences known_gaps.rs covers (warnings, not failures).
    pub known_gaps: usize,
    pub failures: Vec<String>,
}

impl Summary {
    /// "N passed, N failed[, N refused, N CRIU 4.2 limitations], N skipped"
    /// (the interop counts when `interop` or when there are any).
    pub fn counts(&self, interop: bool) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if interop || self.refused > 0 || self.known > 0 {
            let _ = write!(s, ", {} refused, {} CRIU 4.2 limitations", self.refused, self.known);
        }
        let _ = write!(s, ", {} skipped", self.skipped);
        if self.known_gaps > 0 {
            let _ = write!(s, ", {} known-gap warnings", self.known_gaps);
        }
        s
    }
}

/// Print a line straight to stdout (not through the test harness's capture).
pub fn say(s: &str) {
    let mut o = io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.write_all(b"\n");
    let _ = o.flush();
}

pub(super) fn run_one(cfg: &Config, plan: &Plan, test: &TestDesc, out: &Mutex<Summary>, skip: Option<&str>) {
    let label = plan.label();
    if let Some(why) = skip {
        out.lock().unwrap().skipped += 1;
        say(&format!("[{label}] {}: SKIP ({why})", test.name));
        return;
    }
    let wd = cfg.workroot.join(&label).join(&test.name);
    let t0 = Instant::now();
    let mut case = Case {
        cfg,
        plan,
        test,
        wd: wd.clone(),
        details: Vec::new(),
        note: None,
        refused: None,
        warnings: Vec::new(),
        pid: 0,
    };
    let res = interop::judge(plan, test, invert(plan, test, case.run()));
    let secs = t0.elapsed().as_secs_f64();
    let mut text = String::new();
    let mut sum = out.lock().unwrap();
    let keep = match &res {
        Res::Pass(note) => {
            sum.passed += 1;
            let _ = write!(text, "[{label}] {}: PASS ({secs:.1}s)", test.name);
            if let Some(n) = note {
                let _ = write!(text, " - {n}");
            }
            cfg.keep == Keep::Always
        }
        Res::Skip(why) => {
            sum.skipped += 1;
            let _ = write!(text, "[{label}] {}: SKIP ({why})", test.name);
            cfg.keep == Keep::Always
        }
        Res::Refused(why) => {
            sum.refused += 1;
            let _ = write!(text, "[{label}] {}: REFUSED ({why}) ({secs:.1}s)", test.name);
            cfg.keep == Keep::Always
        }
        Res::Known(why) => {
            sum.known += 1;
            let _ = write!(text, "[{label}] {}: CRIU42-LIMIT ({why}) ({secs:.1}s)", test.name);
            cfg.keep != Keep::Never
        }
        Res::Fail(stage, why) => {
            sum.failed += 1;
            sum.failures.push(format!("[{label}] {}", test.name));
            let _ = write!(
                text,
                "[{label}] {}: FAIL at {stage:?}: {why} ({secs:.1}s)",
                test.name
            );
            for d in &case.details {
                let _ = write!(text, "\n    {d}");
            }
            let n = if cfg.verbose { 10_000 } else { 12 };
            for (name, path) in [
                ("test log", wd.join("test.log")),
                ("test verdict", wd.join("test.out")),
            ] {
                let lines = tail(&path, n);
                if !lines.is_empty() {
                    let _ = write!(text, "\n    {name} ({}):", path.display());
                    for l in lines {
                        let _ = write!(text, "\n      {l}");
                    }
                }
            }
            for it in 1..=plan.iters {
                for log in ["pre-dump.log", "dump.log", "restore.log"] {
                    let d = if log == "pre-dump.log" {
                        format!("pre-{it}")
                    } else {
                        format!("dump-{it}")
                    };
                    let path = wd.join(d).join(log);
                    let lines: Vec<String> = if cfg.verbose {
                        tail(&path, 10_000)
                    } else {
                        let all = tail(&path, 100_000);
                        let errs: Vec<String> = all
                            .iter()
                            .filter(|l| l.contains("Error") || l.contains("Warn"))
                            .cloned()
                            .collect();
                        if errs.is_empty() {
                            all[all.len().saturating_sub(8)..].to_vec()
                        } else {
                            errs.into_iter().take(12).collect()
                        }
                    };
                    if !lines.is_empty() {
                        let _ = write!(text, "\n    {} ({}):", log, path.display());
                        for l in lines {
                            let _ = write!(text, "\n      {l}");
                        }
                    }
                }
            }
            if cfg.keep != Keep::Never {
                let _ = write!(text, "\n    images and logs kept in {}", wd.display());
            }
            cfg.keep != Keep::Never
        }
    };
    for w in &case.warnings {
        let _ = write!(text, "\n    WARNING: {w}");
    }
    sum.known_gaps += case.warnings.len();
    say(&text);
    drop(sum);
    if !keep {
        let _ = fs::remove_dir_all(&wd);
    }
}
