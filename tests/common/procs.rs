//! A task's state as tests look at it, and ending what tests start:
//! killing and reaping tasks (ours, or reparented to us as the subreaper),
//! waiting until pids are gone, asking a target for its report, and a
//! freezer cgroup of our own.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The task's state letter; one caught on the CPU ('R') counts as asleep.
pub fn state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next().map(|c| if c == 'R' { 'S' } else { c })
}

/// (state letter, tracer pid); a task caught on the CPU ('R') counts as
/// running on, like one asleep ('S').
pub fn state_tracer(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("").to_string();
    let st = match field("State:").chars().next()? {
        'R' => 'S',
        c => c,
    };
    Some((st, field("TracerPid:").parse().ok()?))
}

/// Kill a task we restored (our child or reparented to us) and reap it.
pub fn kill_and_reap(pid: i32) {
    let p = Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGKILL);
    let _ = waitpid(p, None);
}

/// A task a test restored: killed and reaped when the test ends, passed
/// or not.
pub struct Restored(pub i32);

impl Drop for Restored {
    fn drop(&mut self) {
        kill_and_reap(self.0);
    }
}

/// (start, end, perms, name) of each VMA of `pid`.
pub fn maps(pid: i32) -> Vec<(u64, u64, String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = f[0].split_once('-').unwrap();
            let name = f.get(5).map_or(String::new(), |s| s.to_string());
            (u64::from_str_radix(s, 16).unwrap(), u64::from_str_radix(e, 16).unwrap(), f[1].to_string(), name)
        })
        .collect()
}

/// Whether `pid` exists (a zombie too).
pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Reap whatever zombies we have (cleaners, tasks reparented to us).
pub fn reap_all() {
    while let Ok(st) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Kill `pid` (if any) and wait until it is gone and reaped; panics if it
/// is still there after 10 s.
pub fn kill_until_gone(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    let t0 = Instant::now();
    while alive(pid) && t0.elapsed() < Duration::from_secs(10) {
        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        reap_all();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(pid), "pid {pid} does not go away");
}

/// Wait up to `t` until no pid of `pids` exists, reaping what is ours
/// meanwhile; the pids still there (none: all gone).
pub fn wait_gone(pids: &[i32], t: Duration) -> Vec<i32> {
    let t0 = Instant::now();
    loop {
        reap_all();
        let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || t0.elapsed() >= t {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Send the task SIGUSR1 (its cue to report) and return what it wrote to
/// `out` within 10 s (empty if nothing).
pub fn ask(pid: i32, out: &Path) -> String {
    kill(Pid::from_raw(pid), Signal::SIGUSR1).unwrap();
    wait_nonempty(out);
    String::from_utf8_lossy(&std::fs::read(out).unwrap_or_default()).into_owned()
}

/// Wait up to 10 s for `path` to hold something (a report may itself wait
/// up to 2 s for a child's, as tests/memfd.rs's does; under a loaded CI
/// machine 2 s was seen not to be enough).
pub fn wait_nonempty(path: &Path) {
    for _ in 0..1000 {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number a target keeps rewriting in `path` (truncate, then write: a
/// read can see it empty): the first read that parses, within 2 s; 0 if
/// none does.
pub fn read_number<T: std::str::FromStr + Default>(path: &Path) -> T {
    for _ in 0..400 {
        if let Some(v) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    T::default()
}

/// A cgroup v1 freezer group of our own holding every thread of `pid`
/// (named after the test binary's pid and `tag`); thawed, emptied and
/// removed on drop.
pub struct FreezerGroup {
    pub dir: std::path::PathBuf,
}

impl FreezerGroup {
    pub fn new(pid: i32, tag: &str) -> FreezerGroup {
        FreezerGroup::with(&[pid], tag)
    }

    /// The group holding every thread of each of `pids`.
    pub fn with(pids: &[i32], tag: &str) -> FreezerGroup {
        let dir = std::path::PathBuf::from(format!("/sys/fs/cgroup/freezer/criu-rs-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        for p in pids {
            std::fs::write(dir.join("cgroup.procs"), p.to_string()).unwrap();
        }
        FreezerGroup { dir }
    }

    pub fn state(&self) -> String {
        std::fs::read_to_string(self.dir.join("freezer.state")).unwrap().trim().to_string()
    }

    pub fn set(&self, s: &str) {
        std::fs::write(self.dir.join("freezer.state"), s).unwrap();
    }
}

impl Drop for FreezerGroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        if let Ok(t) = std::fs::read_to_string(self.dir.join("tasks")) {
            for p in t.lines() {
                let _ = std::fs::write("/sys/fs/cgroup/freezer/tasks", p);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

