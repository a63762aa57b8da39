//! The runner's self-tests, which prove failures are caught: the
//! state-diff meddling with a task, the corrupted pages, and how a
//! self-test case's failure at the expected stage counts as its pass.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::case::{Case, Res, Stage};
use super::reaper::kill;
use super::snapshot::rd;
use super::{PAGE_MARKER, Plan, SelfTest, TestDesc, snap_fds, task_state};

impl Case<'_> {
    /// Self-test (`--state-diff`): change the task from outside, one change
    /// per kind of state the compare covers: nice and oom_score_adj, a
    /// VmFlag (the test library madvises MADV_DONTDUMP on SIGUSR2 under
    /// ZDTM_STATE_DIFF), an fd's flags and a pipe's size (through a copy of
    /// the fd), and the stopped state (SIGSTOP; SIGCONT after the compare).
    /// (And, in a tree, the COW sharing: `snap_pagemap::break_sharing`.)
    pub(super) fn meddle(&mut self) {
        let pid = self.pid;
        // SAFETY: plain syscall on our child.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, 7) } != 0 {
            self.details.push(format!("setpriority: {}", io::Error::last_os_error()));
        }
        if let Err(e) = fs::write(format!("/proc/{pid}/oom_score_adj"), "17") {
            self.details.push(format!("oom_score_adj: {e}"));
        }
        let pipe = fs::read_dir(format!("/proc/{pid}/fd")).ok().and_then(|d| {
            let mut fds: Vec<i32> = d
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|fd| fs::read_link(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|l| l.to_string_lossy().starts_with("pipe:")))
                .collect();
            fds.sort_unstable();
            fds.first().copied()
        });
        match pipe {
            Some(fd) => self.details.extend(snap_fds::meddle(pid, fd)),
            None => self.details.push("no pipe fd to change".into()),
        }
        let smaps = || rd(&format!("/proc/{pid}/smaps")).unwrap_or_default();
        let dd = |s: String| s.lines().filter(|l| l.starts_with("VmFlags:") && l.contains(" dd")).count();
        let was = dd(smaps());
        kill(pid, libc::SIGUSR2);
        let t0 = Instant::now();
        while dd(smaps()) == was && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        kill(pid, libc::SIGSTOP);
        let t0 = Instant::now();
        while task_state(pid) != 'T' && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Flip one byte of maps00's pattern in the dump's pages-*.img.
pub fn corrupt_pages(dir: &Path) -> Result<String, String> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pages-") && n.ends_with(".img"))
        })
        .collect();
    files.sort();
    for f in &files {
        let mut data = fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let found = (0..data.len())
            .step_by(4096)
            .find(|&o| data[o..].starts_with(PAGE_MARKER));
        if let Some(o) = found {
            data[o + 100] ^= 0x5a;
            fs::write(f, &data).map_err(|e| format!("{}: {e}", f.display()))?;
            return Ok(format!("flipped byte {:#x} of {}", o + 100, f.display()));
        }
    }
    Err(format!(
        "no page starting with {:?} in {files:?}",
        String::from_utf8_lossy(PAGE_MARKER)
    ))
}

/// What `--state-diff` changes that the compare's summary (`KEY, KEY, ...`)
/// does not name.
fn state_diff_missed(why: &str) -> Vec<&'static str> {
    let keys: Vec<&str> = why.rsplit_once("differs: ").map(|(_, k)| k.split(", ").collect()).unwrap_or_default();
    let has = |f: &dyn Fn(&str) -> bool| keys.iter().any(|k| f(k));
    let mut missed = Vec::new();
    type Wanted<'a> = (&'static str, &'a dyn Fn(&str) -> bool);
    let wanted: [Wanted; 6] = [
        ("nice", &|k| k == "stat nice"),
        ("oom_score_adj", &|k| k.starts_with("oom_score_adj")),
        ("a VmFlag", &|k| k.starts_with("vmflags ")),
        ("fd flags", &|k| k.strip_prefix("fd ").is_some_and(|n| n.trim().parse::<i32>().is_ok())),
        ("the pipe size", &|k| k.starts_with("fd ") && k.ends_with(" F_GETPIPE_SZ")),
        ("the stopped state", &|k| k == "state"),
    ];
    for (what, f) in wanted {
        if !has(f) {
            missed.push(what);
        }
    }
    missed
}

/// A self-test case passes when the test failed at the expected stage.
pub(super) fn invert(plan: &Plan, test: &TestDesc, res: Res) -> Res {
    let want = match &plan.selftest {
        SelfTest::None => return res,
        SelfTest::Sabotage(m) if m == "hang" => Stage::Stop,
        SelfTest::Sabotage(m) if m == "noready" => Stage::Ready,
        SelfTest::Sabotage(_) | SelfTest::CorruptPages => Stage::Verdict,
        SelfTest::StateDiff => Stage::Compare,
    };
    match res {
        // The breakage comes between dump and restore: a failure before the
        // verdict means the self-test could not be exercised (the plain cr
        // run reports that failure).
        Res::Fail(stage, why) if plan.selftest == SelfTest::CorruptPages && stage != want => {
            Res::Skip(format!("not exercised, failed at {stage:?}: {why}"))
        }
        Res::Fail(stage, why) if stage == want => {
            if plan.selftest == SelfTest::StateDiff {
                let mut missed = state_diff_missed(&why);
                // A tree: the COW sharing the runner broke, too.
                if test.name == "pstree00" && !why.contains("cow ") {
                    missed.push("lost COW sharing");
                }
                if !missed.is_empty() {
                    return Res::Fail(
                        stage,
                        format!("the compare missed changes the runner made ({}): {why}", missed.join(", ")),
                    );
                }
            }
            Res::Pass(Some(format!("failed as it must: {why}")))
        }
        Res::Fail(stage, why) => Res::Fail(
            stage,
            format!("self-test failed at {stage:?}, expected a failure at {want:?}: {why}"),
        ),
        Res::Pass(_) => Res::Fail(
            Stage::Verdict,
            format!(
                "self-test {}: the breakage went unnoticed (the test passed)",
                plan.label()
            ),
        ),
        r @ (Res::Skip(_) | Res::Refused(_) | Res::Known(_)) => r,
    }
}
