//! The cgroup v1 freezer: freeze every task of a cgroup, and thaw it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A freezer cgroup directory (e.g. /sys/fs/cgroup/freezer/mygroup).
#[derive(Clone, Debug)]
pub struct Freezer {
    dir: PathBuf,
}

impl Freezer {
    pub fn new(path: &str) -> Result<Freezer> {
        let dir = PathBuf::from(path);
        if !dir.join("freezer.state").exists() {
            bail!("{path} is not a cgroup v1 freezer directory (no freezer.state)");
        }
        Ok(Freezer { dir })
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("freezer.state")
    }

    pub fn state(&self) -> Result<String> {
        let p = self.state_file();
        Ok(std::fs::read_to_string(&p).with_context(|| format!("can't read {}", p.display()))?.trim().to_string())
    }

    fn set(&self, state: &str) -> Result<()> {
        let p = self.state_file();
        std::fs::write(&p, state).with_context(|| format!("can't write {state} to {}", p.display()))
    }

    /// Freeze and wait until the kernel says FROZEN, at most `timeout`.
    pub fn freeze(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            self.set("FROZEN")?;
            if self.state()? == "FROZEN" {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let _ = self.thaw();
                bail!("{} did not freeze within {:?} (--timeout)", self.dir.display(), timeout);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn thaw(&self) -> Result<()> {
        self.set("THAWED")
    }

    /// The pids in the cgroup.
    pub fn tasks(&self) -> Result<Vec<i32>> {
        let p = self.dir.join("tasks");
        let t = std::fs::read_to_string(&p).with_context(|| format!("can't read {}", p.display()))?;
        Ok(t.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}
