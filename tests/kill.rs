//! A killed criu never harms the tree (issue 17): SIGKILL criu at delays
//! spread over a dump (with and without `-R`) and over a restore, dense in
//! the window where it seizes the task and injects code, and check after
//! each trial that the task runs on unchanged (memory checksum, fds, signal
//! mask, maps, no tracer, its loop of syscalls still succeeding), that a
//! completed dump without `-R` left it gone, that a killed restore left
//! either nothing (the pid free again) or a complete task, and that no
//! process of ours stays behind. The target is tests/helpers/kill_target.rs.
//! Needs root (ptrace). Bounded: about a minute on two busy cores.

#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use common::{criu_cmd, helper, reap_all, serial, tmpdir, wait_gone, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// What must not change across a trial.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Snapshot {
    sigblk: String,
    maps: String,
    fds: Vec<(String, String)>,
}

fn status_field(pid: i32, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string())
}

fn snapshot(pid: i32) -> Option<Snapshot> {
    let mut fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), link.to_string_lossy().into_owned()))
        })
        .collect();
    fds.sort();
    // Every thread's mask, by tid.
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    tids.sort();
    let masks: Vec<String> = tids.iter().map(|t| format!("{t}:{}", status_field(*t, "SigBlk:").unwrap_or_default())).collect();
    Some(Snapshot {
        sigblk: masks.join(" "),
        maps: std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?,
        fds,
    })
}

/// (count, checksum) the task reports on SIGUSR1, within 3 s.
fn report(pid: i32, dir: &Path) -> Option<(u64, u64)> {
    let out = dir.join("report");
    let _ = std::fs::remove_file(&out);
    kill(Pid::from_raw(pid), Signal::SIGUSR1).ok()?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(s) = std::fs::read_to_string(&out) {
            let num = |k: &str| s.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok());
            return Some((num("count=")?, num("sum=")?));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// Processes whose parent is this test process, other than `known`
/// (zombies reaped first, given a second to go): what a killed criu left
/// behind, with their comm and state.
fn strays(known: &[i32]) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let s = strays_now(known);
        if s.is_empty() || t0.elapsed() > Duration::from_secs(1) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn strays_now(known: &[i32]) -> Vec<String> {
    reap_all();
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let ppid: i32 = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        // Threads of the test itself show up under /proc only as tasks.
        if ppid == me && !known.contains(&pid) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            out.push(format!("{pid} {} {}", comm.trim(), rest.chars().next().unwrap_or('?')));
        }
    }
    out
}

/// The task under test: its scratch dir, pid and reference state.
struct Task {
    t: Target,
    dir: tempfile::TempDir,
    base: Snapshot,
    sum: u64,
    count: u64,
    /// Trials where the task needed a moment to get back (see `check`).
    settling: Vec<String>,
}

/// /proc/PID/task/*/syscall of every thread, joined.
fn syscalls(pid: i32) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return String::new() };
    dir.flatten()
        .map(|e| format!("{}: {}", e.file_name().to_string_lossy(), std::fs::read_to_string(e.path().join("syscall")).unwrap_or_default().trim()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Task {
    fn start() -> Task {
        let dir = tmpdir();
        let exe = helper("kill_target");
        let t = Target::spawn(exe.to_str().unwrap(), &[dir.path().to_str().unwrap()], Some(&dir.path().join("ready")));
        let pid = t.pid();
        // A first report settles what the report path touches.
        let (count, sum) = report(pid, dir.path()).expect("the target reports");
        // Settled (its threads past their start-up, which blocks signals
        // for a moment): two snapshots 20 ms apart agree.
        let mut base = snapshot(pid).expect("snapshot of the target");
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(20));
            let now = snapshot(pid).expect("snapshot of the target");
            if now == base {
                break;
            }
            base = now;
        }
        Task { t, dir, base, sum, count, settling: Vec::new() }
    }

    fn pid(&self) -> i32 {
        self.t.pid()
    }

    /// What is wrong with the task now (None: it runs on unchanged);
    /// (harmed, leftover) — a leftover is a mapping or fd of ours.
    fn check(&mut self) -> Option<(bool, String)> {
        let pid = self.pid();
        if let Ok(f) = std::fs::read_to_string(self.dir.path().join("fail")) {
            return Some((true, format!("the task failed: {f}")));
        }
        match common::state_tracer(pid) {
            None | Some(('Z', _)) => {
                let st = self.t.child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Some((true, format!("the task died: {st}")));
            }
            Some((_, tracer)) if tracer != 0 => return Some((true, format!("still traced by {tracer}"))),
            Some((st, _)) if st != 'S' => return Some((true, format!("state {st}"))),
            _ => {}
        }
        let Some((count, sum)) = report(pid, self.dir.path()) else {
            let f = std::fs::read_to_string(self.dir.path().join("fail")).unwrap_or_default();
            let st = match common::state(pid) {
                Some('Z') | None => self.t.child.wait().map(|s| s.to_string()).unwrap_or_default(),
                s => format!("state {s:?}"),
            };
            return Some((true, format!("no report ({st}) {f}")));
        };
        if sum != self.sum {
            return Some((true, format!("memory checksum {sum:#x}, was {:#x}", self.sum)));
        }
        if count <= self.count {
            return Some((true, format!("count {count} did not move on from {}", self.count)));
        }
        self.count = count;
        // A thread that has not run since criu died is still on its way
        // home (a task that gets no CPU for a while on a busy machine): the
        // task is judged once it had up to two seconds to get there.
        let mut now = snapshot(pid)?;
        let t0 = Instant::now();
        if now != self.base {
            let first = syscalls(pid);
            while now != self.base && t0.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(5));
                now = snapshot(pid)?;
            }
            if now == self.base {
                self.settling.push(format!("settled in {:?} (threads were at: {first})", t0.elapsed()));
            }
        }
        if now.sigblk != self.base.sigblk {
            return Some((true, format!("SigBlk {} was {}", now.sigblk, self.base.sigblk)));
        }
        if now.maps != self.base.maps {
            return Some((false, format!("maps changed:\n{}\nwas:\n{}", now.maps, self.base.maps)));
        }
        if now.fds != self.base.fds {
            return Some((false, format!("fds {:?} were {:?}", now.fds, self.base.fds)));
        }
        None
    }
}

/// Run criu with `args`, SIGKILL it after `delay` (unless it ended first);
/// its exit status and whether it finished on its own.
fn run_killed(args: &[&str], delay: Duration) -> (ExitStatus, bool) {
    let mut child: Child = criu_cmd().args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < delay {
        if let Ok(Some(st)) = child.try_wait() {
            return (st, true);
        }
        let left = delay.saturating_sub(t0.elapsed());
        if left > Duration::from_micros(300) {
            std::thread::sleep(left.min(Duration::from_millis(2)) - Duration::from_micros(200));
        } else {
            std::hint::spin_loop();
        }
    }
    if let Ok(Some(st)) = child.try_wait() {
        return (st, true);
    }
    let _ = child.kill();
    (child.wait().unwrap(), false)
}

/// Duration of a full run of criu `args` (the median of five), and where
/// in it the task is seized until released: from the log's timestamps
/// (`-v4`, as the trials log), shifted by criu's start-up as seen from here.
fn measure(args: &[&str], log: &Path, seize: &str, release: &str) -> (Duration, Duration, Duration) {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let mut full: Vec<&str> = args.to_vec();
        let l = log.to_str().unwrap();
        full.extend(["-v4", "-o", l]);
        let t0 = Instant::now();
        let st = criu_cmd().args(&full).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().unwrap();
        let took = t0.elapsed();
        assert!(st.success(), "criu {args:?}: {}", std::fs::read_to_string(log).unwrap_or_default());
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let stamp = |l: &str| -> Option<Duration> {
            let v = l.strip_prefix('(')?.split(')').next()?.trim();
            v.parse::<f64>().ok().map(Duration::from_secs_f64)
        };
        let last = text.lines().rev().find_map(stamp).unwrap_or(took);
        let startup = took.saturating_sub(last);
        let first = |pat: &str| text.lines().filter(|l| l.contains(pat)).find_map(stamp);
        let lastp = |pat: &str| text.lines().rev().filter(|l| l.contains(pat)).find_map(stamp);
        let a = first(seize).unwrap_or(Duration::ZERO) + startup;
        let b = lastp(release).map_or(took, |b| b + startup);
        runs.push((took, a, b.max(a)));
        let _ = std::fs::remove_file(log);
    }
    runs.sort();
    runs[runs.len() / 2]
}

/// Delay `i` of `n`: every third spread over the whole run (0..1.5 x its
/// duration), the others over the seize/release window (widened by 2 ms).
fn delay(i: usize, n: usize, total: Duration, win: (Duration, Duration)) -> Duration {
    let frac = |k: usize, m: usize| (k as f64 + 0.5) / m.max(1) as f64;
    if i.is_multiple_of(3) {
        total.mul_f64(1.5 * frac(i / 3, n.div_ceil(3)))
    } else {
        let a = win.0.saturating_sub(Duration::from_millis(2));
        let b = win.1 + Duration::from_millis(2);
        let k = i - i / 3 - 1;
        a + (b - a).mul_f64(frac(k, n - n.div_ceil(3)))
    }
}

/// 1 if a killed trial's log shows the task seized and not yet released.
/// Also the log's last lines (where criu was when killed).
fn killed_seized(log: &Path, finished: bool) -> (usize, String) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
    ((!finished && text.contains("compel: seized") && !text.contains("compel: released")) as usize, tail)
}

/// Tally of one kind of trial.
#[derive(Default)]
struct Tally {
    trials: usize,
    finished: usize,
    /// Killed while the task was seized (by the trial's log).
    in_window: usize,
    harmed: Vec<String>,
    leftovers: Vec<String>,
}

fn record(t: &mut Tally, what: String, problem: Option<(bool, String)>) {
    match problem {
        Some((true, why)) => t.harmed.push(format!("{what}: {why}")),
        Some((false, why)) => t.leftovers.push(format!("{what}: {why}")),
        None => {}
    }
}

fn root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("skipping: needs root (ptrace)");
        return false;
    }
    true
}

const DUMP_R_TRIALS: usize = 240;
const DUMP_TRIALS: usize = 60;
const RESTORE_TRIALS: usize = 100;

#[test]
fn killed_dump_leaves_the_task_unharmed() {
    if !root() {
        return;
    }
    let _g = serial();
    let scratch = tmpdir();
    let imgs = scratch.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let log = scratch.path().join("measure.log");
    let mut task = Task::start();
    let mut settled: Vec<String> = Vec::new();
    let pid = task.pid().to_string();
    let trial_log = scratch.path().join("trial.log");
    let dargs = |leave: bool, p: &str| -> Vec<String> {
        let mut v: Vec<String> =
            ["dump", "-t", p, "-D", imgs.to_str().unwrap(), "-v4", "-o", trial_log.to_str().unwrap()].iter().map(|s| s.to_string()).collect();
        if leave {
            v.push("-R".into());
        }
        v
    };
    let args: Vec<String> = dargs(true, &pid);
    let argv: Vec<&str> = args.iter().map(String::as_str).filter(|a| !["-v4", "-o", trial_log.to_str().unwrap()].contains(a)).collect();
    let (total, a, b) = measure(&argv, &log, "compel: seized", "compel: parasite removed");
    assert!(task.check().is_none(), "a full dump -R changed the task: {:?}", task.check());
    println!("dump -R takes {total:?}; seized from {a:?} to {b:?}");

    let mut r = Tally::default();
    for i in 0..DUMP_R_TRIALS {
        let d = delay(i, DUMP_R_TRIALS, total, (a, b));
        let p = task.pid().to_string();
        let args = dargs(true, &p);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (st, finished) = run_killed(&argv, d);
        let (w, tail) = killed_seized(&trial_log, finished);
        r.in_window += w;
        r.trials += 1;
        r.finished += finished as usize;
        if finished && !st.success() {
            r.harmed.push(format!("dump -R (not killed) failed: {st}"));
        }
        let strays = strays(&[task.pid()]);
        if !strays.is_empty() {
            r.leftovers.push(format!("dump -R killed at {d:?}: processes left {strays:?}"));
        }
        let problem = task.check();
        let harmed = matches!(problem, Some((true, _)));
        record(&mut r, format!("dump -R killed at {d:?} (log: {tail})"), problem);
        if harmed {
            settled.append(&mut task.settling);
            task = Task::start();
        } else if matches!(r.leftovers.last(), Some(l) if l.contains(&format!("at {d:?}"))) {
            // Measure the next trials against the task as it is now.
            task.base = snapshot(task.pid()).unwrap_or(task.base.clone());
        }
        let _ = std::fs::remove_dir_all(&imgs);
        std::fs::create_dir_all(&imgs).unwrap();
    }
    settled.append(&mut task.settling);
    drop(task);

    // Without -R: a fresh task each time; a completed dump leaves it gone.
    let mut n = Tally::default();
    for i in 0..DUMP_TRIALS {
        let mut task = Task::start();
        let p = task.pid().to_string();
        let args = dargs(false, &p);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = delay(i, DUMP_TRIALS, total, (a, b));
        let (st, finished) = run_killed(&argv, d);
        let (w, tail) = killed_seized(&trial_log, finished);
        n.in_window += w;
        n.trials += 1;
        let what = format!("dump killed at {d:?}");
        if finished && st.success() {
            n.finished += 1;
            task.t.reap();
            if common::alive(task.pid()) {
                n.harmed.push(format!("{what}: a completed dump left the task alive"));
            }
        } else if !common::alive(task.pid()) || common::state(task.pid()) == Some('Z') {
            // Killed after it killed the task: the dump had written everything.
            task.t.reap();
            if !imgs.join("inventory.img").exists() {
                n.harmed.push(format!("{what}: the task is gone and the dump was incomplete"));
            } else {
                n.finished += 1;
            }
        } else {
            let problem = task.check();
            record(&mut n, format!("{what} (log: {tail})"), problem);
        }
        let strays = strays(&[task.pid()]);
        if !strays.is_empty() {
            n.leftovers.push(format!("{what}: processes left {strays:?}"));
        }
        settled.append(&mut task.settling);
        drop(task);
        let _ = std::fs::remove_dir_all(&imgs);
        std::fs::create_dir_all(&imgs).unwrap();
    }
    let trials = r.trials + n.trials;
    let harmed = r.harmed.len() + n.harmed.len();
    let left = r.leftovers.len() + n.leftovers.len();
    say(&format!(
        "kill test: dump {trials} trials ({} with -R, {} of them finished; {} without, {} finished; {} killed while the task was seized), {harmed} harmed, {left} leftovers",
        r.trials,
        r.finished,
        n.trials,
        n.finished,
        r.in_window + n.in_window
    ));
    if !settled.is_empty() {
        println!("  {} trial(s) where a thread took a moment to get home, e.g. {}", settled.len(), settled[0]);
    }
    let all: Vec<&String> = r.harmed.iter().chain(&n.harmed).chain(&r.leftovers).chain(&n.leftovers).collect();
    for p in all.iter().take(20) {
        println!("  {p}");
    }
    assert!(all.is_empty(), "{harmed} harmed, {left} leftovers in {trials} killed dumps");
}

#[test]
fn killed_restore_leaves_nothing_or_a_complete_task() {
    if !root() {
        return;
    }
    let _g = serial();
    let scratch = tmpdir();
    let imgs = scratch.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let mut task = Task::start();
    let pid = task.pid();
    let (sum, base) = (task.sum, task.base.clone());
    let dir: PathBuf = task.dir.path().to_path_buf();
    let o = criu_cmd().args(["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "dump: {}", String::from_utf8_lossy(&o.stderr));
    task.t.reap();
    std::mem::forget(task.t); // reaped; its dir (task.dir) stays for the restored task
    let rargs = ["restore", "-d", "-D", imgs.to_str().unwrap()];
    let log = scratch.path().join("measure.log");
    // One full restore to time it (the restored task is then ended).
    let mut full: Vec<&str> = rargs.to_vec();
    let l = log.to_str().unwrap();
    full.extend(["-o", l]);
    let t0 = Instant::now();
    let st = criu_cmd().args(&full).status().unwrap();
    let total = t0.elapsed();
    assert!(st.success(), "restore: {}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_eq!(report(pid, &dir).map(|r| r.1), Some(sum), "the restored task's checksum");
    common::kill_until_gone(pid);
    println!("restore -d takes {total:?}");

    let mut t = Tally::default();
    for i in 0..RESTORE_TRIALS {
        let d = total.mul_f64(1.3 * (i as f64 + 0.5) / RESTORE_TRIALS as f64);
        let (st, finished) = run_killed(&rargs, d);
        t.trials += 1;
        let what = format!("restore killed at {d:?}");
        // Killed: whatever it had started must go away by itself.
        let left = if finished { vec![pid] } else { wait_gone(&[pid], Duration::from_millis(1500)) };
        if !left.is_empty() {
            // Still there: it must be the whole task, running.
            match report(pid, &dir) {
                Some((_, s)) if s == sum => {
                    t.finished += 1;
                    let now = snapshot(pid);
                    if now.as_ref().map(|s| &s.sigblk) != Some(&base.sigblk) {
                        t.harmed.push(format!("{what}: restored with SigBlk {:?}", now.map(|s| s.sigblk)));
                    } else if common::state_tracer(pid).is_none_or(|(_, tr)| tr != 0) {
                        t.harmed.push(format!("{what}: restored task still traced"));
                    }
                }
                r => t.harmed.push(format!("{what} (criu {}): half-restored task {pid} left (report {r:?}, state {:?})", if finished { format!("{st}") } else { "killed".into() }, common::state(pid))),
            }
            common::kill_until_gone(pid);
        } else if finished && st.success() {
            t.harmed.push(format!("{what}: restore said success but no task"));
        }
        let strays = strays(&[]);
        if !strays.is_empty() {
            t.leftovers.push(format!("{what}: processes left {strays:?}"));
            for s in strays {
                common::kill_until_gone(s.split(' ').next().and_then(|p| p.parse().ok()).unwrap_or(0));
            }
        }
        let _ = std::fs::remove_file(dir.join("fail"));
    }
    say(&format!(
        "kill test: restore {} trials, {} complete, {} harmed (half-restored), {} leftovers",
        t.trials,
        t.finished,
        t.harmed.len(),
        t.leftovers.len()
    ));
    for p in t.harmed.iter().chain(&t.leftovers).take(20) {
        println!("  {p}");
    }
    assert!(t.harmed.is_empty() && t.leftovers.is_empty(), "killed restores left harm behind");
}

/// A line for the CI log: straight to stderr, which the test harness does
/// not capture (its `println!` output shows only when a test fails).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
