//! A test's /proc state compared with its snapshot from before: looked at
//! again while differences pass, kept in the work dir, after a restore
//! in a new time namespace, and reported with the known gaps set aside.

use std::fs;
use std::time::{Duration, Instant};

use super::case::{Case, Res, Stage};
use super::{Mode, SelfTest, Snapshot, diff, interop, known_gaps, snapshot_tree, timens};

impl Case<'_> {
    pub(super) fn compare(&mut self, before: &Snapshot, when: &str) -> Result<(), Res> {
        let d = self.settled_diff(when, |after| diff(before, after))?;
        self.report(d, when)
    }

    /// The differences `d` finds in a fresh snapshot of the tree, looked at
    /// again for up to a second while there are any: a task just let go
    /// is still on its way back into the syscall it was stopped in (a
    /// sigwaitinfo unblocks the signals it waits for only once it is back
    /// in it). Lost state stays lost; only such passing ones go.
    fn settled_diff(&self, when: &str, d: impl Fn(&Snapshot) -> Vec<String>) -> Result<Vec<String>, Res> {
        let end = Instant::now() + Duration::from_secs(1);
        loop {
            let after = snapshot_tree(self.pid)
                .map_err(|e| Res::Fail(Stage::Compare, format!("{when}: can't read /proc: {e}")))?;
            let found = d(&after);
            if found.is_empty() || Instant::now() >= end {
                self.keep_snapshot(&after, when);
                return Ok(found);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Write a snapshot into the work dir (`proc-WHEN.txt`), for a look at
    /// a kept failure.
    pub(super) fn keep_snapshot(&self, s: &Snapshot, when: &str) {
        let text: String = s.iter().map(|(k, v)| format!("{k}: {}\n", v.trim_end().replace('\n', "\n    "))).collect();
        let _ = fs::write(self.p(&format!("proc-{}.txt", when.replace(' ', "-"))), text);
    }

    /// After a restore: the same, but the tree is in a new time namespace
    /// whose clocks go on from the dump (`win`: None, no time namespaces).
    pub(super) fn compare_restored(&mut self, before: &Snapshot, when: &str, win: Option<&timens::Window>) -> Result<(), Res> {
        let Some(win) = win else { return self.compare(before, when) };
        let before = timens::without(before);
        let d = self.settled_diff(when, |after| {
            let mut d = diff(&before, &timens::without(after));
            d.extend(win.check(self.pid, after));
            d
        })?;
        self.report(d, when)
    }

    fn report(&mut self, mut d: Vec<String>, when: &str) -> Result<(), Res> {
        if self.test.traffic {
            // Queued bytes under steady traffic (the program checks them).
            d.retain(|l| !l.contains(" SIOCINQ: "));
        }
        // Known gaps excuse differences only after a dump and restore.
        let d = if self.plan.mode == Mode::NoCr || self.plan.selftest != SelfTest::None {
            d
        } else {
            let who = |c: &Option<interop::CriuBin>| match c {
                Some(c) if !c.ours => known_gaps::Who::Criu42,
                _ => known_gaps::Who::Ours,
            };
            let restorer = (self.plan.mode == Mode::Cr).then(|| who(&self.plan.restore_criu));
            let (fail, known) = known_gaps::split(&self.test.name, who(&self.plan.dump_criu), restorer, d);
            self.warnings.extend(known.into_iter().map(|k| format!("{when}: {k}")));
            fail
        };
        if d.is_empty() {
            return Ok(());
        }
        let summary: Vec<&str> = d
            .iter()
            .filter(|l| !l.starts_with("  "))
            .map(|l| l.split(':').next().unwrap_or(l))
            .collect();
        let max = if self.cfg.verbose { usize::MAX } else { 40 };
        for l in d.iter().take(max) {
            let mut l = format!("  {l}");
            if !self.cfg.verbose && l.len() > 400 {
                let cut = (0..=400)
                    .rev()
                    .find(|&i| l.is_char_boundary(i))
                    .unwrap_or(0);
                l.truncate(cut);
                l.push_str(" [...]");
            }
            self.details.push(l);
        }
        if d.len() > max {
            self.details
                .push(format!("  ... {} more lines (-v shows all)", d.len() - max));
        }
        Err(Res::Fail(
            Stage::Compare,
            format!("{when}: /proc state differs: {}", summary.join(", ")),
        ))
    }
}
