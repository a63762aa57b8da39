//! What a mode does to a ready test before it is stopped: nocr (a pause,
//! or the state-diff self-test's meddling), norst (`dump -R`), cr (dump,
//! restore), each for the plan's iterations, with pre-dumps, an injected
//! fault or a crfail test (the dump must fail), an interop refusal, and
//! the corrupt-pages self-test between dump and restore.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::case::{Case, Res, Stage};
use super::held::{check_running, check_stopped, held_of};
use super::reaper::{describe_status, kill, wait_exit};
use super::{Mode, SelfTest, corrupt_pages, descendants, interop, snap_pagemap, snapshot_tree, task_state, timens};

impl Case<'_> {
    /// Between "ready" and SIGTERM: what the plan says to do to the task.
    pub(super) fn exercise(&mut self) -> Result<(), Res> {
        let before =
            snapshot_tree(self.pid).map_err(|e| Res::Fail(Stage::Setup, format!("snapshot: {e}")))?;
        self.keep_snapshot(&before, "before");
        let tree = descendants(self.pid);
        // The test itself may be stopped (stopped10): it must stay so.
        let held = held_of(&[&[self.pid], tree.as_slice()].concat());
        if self.plan.mode == Mode::NoCr {
            if self.plan.selftest == SelfTest::StateDiff {
                self.meddle();
                self.details.extend(snap_pagemap::break_sharing(&before));
            }
            std::thread::sleep(Duration::from_millis(20));
            let r = self.compare(&before, "after a pause");
            if self.plan.selftest == SelfTest::StateDiff {
                kill(self.pid, libc::SIGCONT);
            }
            return r;
        }
        let must_fail = self.test.crfail || self.plan.fault.is_some();
        for it in 1..=self.plan.iters {
            let dir = format!("dump-{it}");
            fs::create_dir_all(self.p(&dir)).map_err(|e| Res::Fail(Stage::Setup, e.to_string()))?;
            let mut dump_args: Vec<String> = vec![
                "dump".into(),
                "-t".into(),
                self.pid.to_string(),
                "-D".into(),
                dir.clone(),
                "-o".into(),
                "dump.log".into(),
                "-v4".into(),
            ];
            if self.plan.pre_dump {
                let pre = format!("pre-{it}");
                fs::create_dir_all(self.p(&pre))
                    .map_err(|e| Res::Fail(Stage::Setup, e.to_string()))?;
                let args: Vec<String> = [
                    "pre-dump",
                    "-t",
                    &self.pid.to_string(),
                    "-D",
                    &pre,
                    "-o",
                    "pre-dump.log",
                    "-v4",
                ]
                .map(String::from)
                .to_vec();
                let r = self.criu("pre-dump", &args, "pre-dump.log");
                if let Some(u) = r.unsupported() {
                    return Err(Res::Skip(format!("criu: {u}")));
                }
                if !r.ok() && !must_fail {
                    return Err(Res::Fail(
                        Stage::Dump,
                        format!("pre-dump {it} failed ({}): {}", r.status_text(), r.errors()),
                    ));
                }
                check_running(self.pid, &held)
                    .map_err(|e| Res::Fail(Stage::Dump, format!("after pre-dump {it}: {e}")))?;
                dump_args.extend([
                    "--track-mem".into(),
                    "--prev-images-dir".into(),
                    format!("../{pre}"),
                ]);
            }
            if self.plan.mode == Mode::LeaveRunning {
                dump_args.push("-R".into());
            }
            let mut win = timens::Window::before_dump(self.pid);
            let r = self.criu("dump", &dump_args, "dump.log");
            if let Some(w) = win.as_mut() {
                w.dumped();
            }
            if let Some(u) = r.unsupported() {
                return Err(Res::Skip(format!("criu: {u}")));
            }
            if must_fail {
                let why = if self.test.crfail {
                    "the test is flagged crfail"
                } else {
                    "CRIU_FAULT is set"
                };
                if r.ok() {
                    return Err(Res::Fail(
                        Stage::Dump,
                        format!("dump {it} succeeded, but must fail: {why}"),
                    ));
                }
                self.note = Some(format!("dump failed as it must ({why}): {}", r.errors()));
                check_running(self.pid, &held)
                    .map_err(|e| Res::Fail(Stage::Dump, format!("after the failed dump: {e}")))?;
                return self.compare(&before, "after the failed dump");
            }
            if !r.ok() && interop::refusals_counted(self.plan) {
                // One side refused: the tree must run on, then its verdict.
                let who = self.plan.dump_criu.as_ref().map(|c| c.name.as_str()).unwrap_or("criu");
                self.refused = Some(format!("{who} refused the dump: {}", r.errors()));
                check_running(self.pid, &held)
                    .map_err(|e| Res::Fail(Stage::Dump, format!("after the refused dump: {e}")))?;
                return self.compare(&before, "after the refused dump");
            }
            if !r.ok() {
                return Err(Res::Fail(
                    Stage::Dump,
                    format!("dump {it} failed ({}): {}", r.status_text(), r.errors()),
                ));
            }
            if self.plan.mode == Mode::LeaveRunning {
                check_running(self.pid, &held)
                    .map_err(|e| Res::Fail(Stage::Dump, format!("after dump -R {it}: {e}")))?;
                self.compare(&before, &format!("after dump -R {it}"))?;
                continue;
            }
            // The dump must have killed the task.
            match wait_exit(self.pid, Duration::from_secs(10)) {
                Some(st) => self
                    .details
                    .push(format!("dumped task ended: {}", describe_status(st))),
                None => {
                    return Err(Res::Fail(
                        Stage::Dump,
                        format!(
                            "the task is still alive {}s after dump {it} (state {:?})",
                            10,
                            task_state(self.pid)
                        ),
                    ));
                }
            }
            // Its descendants too (killed by the dump, reaped by our reaper):
            // their pids must be free for the restore.
            let t0 = Instant::now();
            while let Some(d) = tree.iter().find(|d| Path::new(&format!("/proc/{d}")).exists()) {
                if t0.elapsed() > Duration::from_secs(10) {
                    return Err(Res::Fail(
                        Stage::Dump,
                        format!("descendant {d} is still there 10s after dump {it} (state {:?})", task_state(*d)),
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.plan.selftest == SelfTest::CorruptPages {
                let what = corrupt_pages(&self.p(&dir))
                    .map_err(|e| Res::Fail(Stage::Setup, format!("corrupt-pages: {e}")))?;
                self.details.push(format!("self-test: {what}"));
            }
            let args: Vec<String> = ["restore", "-d", "-D", &dir, "-o", "restore.log", "-v4"]
                .map(String::from)
                .to_vec();
            veth_names_free(&self.test.opts);
            if let Some(w) = win.as_mut() {
                w.restoring();
            }
            let r = self.criu("restore", &args, "restore.log");
            if let Some(w) = win.as_mut() {
                w.restored();
            }
            if let Some(u) = r.unsupported() {
                return Err(Res::Skip(format!("criu: {u}")));
            }
            if !r.ok() {
                return Err(Res::Fail(
                    Stage::Restore,
                    format!("restore {it} failed ({}): {}", r.status_text(), r.errors()),
                ));
            }
            let root_stopped = held.iter().any(|h| h.pid == self.pid && h.state == 'T');
            match task_state(self.pid) {
                'R' | 'S' | 'D' => {}
                'T' if root_stopped => {}
                'Z' | 'X' | '?' => {
                    let st = wait_exit(self.pid, Duration::from_secs(5))
                        .map(describe_status)
                        .unwrap_or_else(|| "no exit status".into());
                    return Err(Res::Fail(
                        Stage::Verdict,
                        format!("the restored task died: {st}{}", self.verdict_suffix()),
                    ));
                }
                c => {
                    return Err(Res::Fail(
                        Stage::Restore,
                        format!("after restore {it} the task is in state {c:?}"),
                    ));
                }
            }
            check_stopped(&held).map_err(|e| Res::Fail(Stage::Restore, format!("after restore {it}: {e}")))?;
            self.compare_restored(&before, &format!("after restore {it}"), win.as_ref())?;
        }
        Ok(())
    }
}

/// The kernel deletes the veths of a dead network namespace a moment
/// after it dies; a restore that makes the outer end again by the name
/// `--veth-pair IN=OUT[@BRIDGE]` gives (CRIU 4.2 does not wait for it)
/// must not start before that name is free. Waits up to 10 s.
fn veth_names_free(opts: &[String]) {
    let outs: Vec<&str> = opts
        .iter()
        .filter_map(|o| o.strip_prefix("--veth-pair="))
        .filter_map(|v| v.split_once('=').map(|(_, out)| out.split('@').next().unwrap_or(out)))
        .collect();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while outs.iter().any(|o| std::path::Path::new(&format!("/sys/class/net/{o}")).exists()) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}
