//! The zdtm runner: starts each test program, dumps and restores it with
//! our `criu`, compares what /proc shows of it before and after, then
//! sends SIGTERM and collects the program's own verdict.
//!
//! The /proc snapshot and its compare live in `snapshot.rs` (with
//! `snap_maps.rs`, `snap_fds.rs`, `snap_pagemap.rs`); the differences
//! excused as known, named gaps in `known_gaps.rs`.
//!
//! Shared by `tests/zdtm.rs` (the cargo integration test, which includes
//! this file with `#[path]`) and `src/bin/zdtm_run.rs` (a command-line
//! runner). Only std and libc, so both crates can build it.
//!
//! Process handling: the runner makes itself a child subreaper, so tasks
//! that `criu restore -d` leaves behind are reparented to it, and one
//! reaper thread collects every child's exit status (`waitpid(-1)`); the
//! rest of the runner waits through it and never calls waitpid itself.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The test list with flags (see the file's header).
pub const DESC: &str = include_str!("../tests.desc");

/// uid/gid the tests without the `suid` flag run as (zdtm's).
pub const TEST_UID: u32 = 18943;
/// A variable every test gets; env00 checks it survives.
pub const ENV_PROBE: (&str, &str) = ("ZDTM_ENV_PROBE", "zdtm env: spaces = equals, \u{fc}nicode");
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// What maps00 writes at the start of each page of its private mapping.
pub const PAGE_MARKER: &[u8] = b"ZDTM-MAPS00-PAGE";

#[path = "interop.rs"]
pub mod interop;
#[path = "timens.rs"]
pub mod timens;
#[path = "snapshot.rs"]
pub mod snapshot;
#[path = "snap_maps.rs"]
pub mod snap_maps;
#[path = "snap_fds.rs"]
pub mod snap_fds;
#[path = "snap_pagemap.rs"]
pub mod snap_pagemap;
#[path = "known_gaps.rs"]
pub mod known_gaps;
pub use snapshot::{Snapshot, descendants, diff, snapshot_tree, task_state};
use snapshot::rd;
use interop::CriuBin;

// ---------------------------------------------------------------- tests --

#[derive(Clone, Debug, PartialEq)]
pub struct TestDesc {
    pub name: String,
    pub suid: bool,
    pub noauto: bool,
    pub crfail: bool,
    pub excl: bool,
    /// `criu42-fail[(dump|restore)]: REASON`: the real CRIU 4.2 cannot
    /// checkpoint/restore this test (a CRIU limitation, named); the interop
    /// runs where CRIU 4.2 does that step report its failures as that.
    pub criu42_fail: Option<(interop::Side, String)>,
}

pub fn parse_desc(text: &str) -> Result<Vec<TestDesc>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        // `criu42-fail[(SIDE)]: REASON` takes the rest of the line.
        let (line, criu42_fail) = match line.find("criu42-fail") {
            Some(at) => {
                let (head, why) = line[at..].split_once(':').unwrap_or((&line[at..], ""));
                let side = interop::parse_side(head)
                    .ok_or_else(|| format!("tests.desc:{}: {head}? (criu42-fail, criu42-fail(dump), criu42-fail(restore))", n + 1))?;
                if why.trim().is_empty() {
                    return Err(format!("tests.desc:{}: {head}: needs a reason", n + 1));
                }
                (&line[..at], Some((side, why.trim().to_string())))
            }
            None => (line, None),
        };
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let mut d = TestDesc {
            name: name.to_string(),
            suid: false,
            noauto: false,
            crfail: false,
            excl: false,
            criu42_fail,
        };
        for f in words {
            match f {
                "suid" => d.suid = true,
                "noauto" => d.noauto = true,
                "crfail" => d.crfail = true,
                "excl" => d.excl = true,
                _ => return Err(format!("tests.desc:{}: unknown flag {f:?}", n + 1)),
            }
        }
        if out.iter().any(|t: &TestDesc| t.name == d.name) {
            return Err(format!("tests.desc:{}: {name} listed twice", n + 1));
        }
        out.push(d);
    }
    Ok(out)
}

// ---------------------------------------------------------------- plans --

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// No criu at all: start, compare two snapshots, stop.
    NoCr,
    /// `criu dump -R`, no restore.
    LeaveRunning,
    /// `criu dump` then `criu restore -d`.
    Cr,
}

/// Runner self-tests: each case must fail, at the given stage.
#[derive(Clone, Debug, PartialEq)]
pub enum SelfTest {
    None,
    /// ZDTM_SABOTAGE=mode for the program (check, crash, hang, noready, noverdict).
    Sabotage(String),
    /// The runner changes the task from outside between the snapshots (nice,
    /// oom_score_adj, a VmFlag, fd flags, a pipe size, stopped): the compare
    /// must report each (see `Case::meddle`).
    StateDiff,
    /// A byte of maps00's pattern flipped in pages-*.img before the restore.
    CorruptPages,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub mode: Mode,
    pub iters: u32,
    pub fault: Option<u32>,
    pub pre_dump: bool,
    pub flavor: String,
    pub selftest: SelfTest,
    pub tests: Vec<TestDesc>,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    /// Who dumps and who restores (None: the config's criu, ours).
    pub dump_criu: Option<CriuBin>,
    pub restore_criu: Option<CriuBin>,
    /// Why this plan runs every test as root, if it does.
    pub as_root: Option<String>,
}

impl Plan {
    fn new(mode: Mode, tests: Vec<TestDesc>) -> Plan {
        Plan {
            mode,
            iters: 1,
            fault: None,
            pre_dump: false,
            flavor: "h".into(),
            selftest: SelfTest::None,
            tests,
            ready_timeout: Duration::from_secs(20),
            stop_timeout: Duration::from_secs(20),
            dump_criu: None,
            restore_criu: None,
            as_root: None,
        }
    }

    /// The plan pairs criu binaries of which one is not ours: dump
    /// refusals and `criu42-fail` limitations are reported, not failed.
    pub fn interop(&self) -> bool {
        [&self.dump_criu, &self.restore_criu]
            .into_iter()
            .any(|c| c.as_ref().is_some_and(|c| !c.ours))
    }

    pub fn label(&self) -> String {
        let mut l = match self.mode {
            Mode::NoCr => "nocr".to_string(),
            Mode::LeaveRunning => "norst".to_string(),
            Mode::Cr => "cr".to_string(),
        };
        if self.iters > 1 {
            let _ = write!(l, "-iters{}", self.iters);
        }
        if self.pre_dump {
            l.push_str("-pre");
        }
        if let Some(f) = self.fault {
            let _ = write!(l, "-fault{f}");
        }
        if self.flavor != "h" {
            let _ = write!(l, "-{}", self.flavor);
        }
        match &self.selftest {
            SelfTest::None => {}
            SelfTest::Sabotage(m) => l = format!("selftest-sabotage-{m}"),
            SelfTest::StateDiff => l = "selftest-state-diff".into(),
            SelfTest::CorruptPages => l.push_str("-selftest-corrupt-pages"),
        }
        match (&self.dump_criu, &self.restore_criu) {
            (Some(d), Some(r)) if d.name == r.name => {
                let _ = write!(l, "-{}", d.name);
            }
            (d, r) => {
                let name = |c: &Option<CriuBin>| c.as_ref().map(|c| c.name.clone());
                if d.is_some() || r.is_some() {
                    let _ = write!(
                        l,
                        "-{}-{}",
                        name(d).unwrap_or_else(|| "default".into()),
                        name(r).unwrap_or_else(|| "default".into())
                    );
                }
            }
        }
        l
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Keep {
    Failed,
    Always,
    Never,
}

#[derive(Clone)]
pub struct Config {
    pub criu: PathBuf,
    /// Where the test binaries are.
    pub bindir: PathBuf,
    /// Where this run's work directories go.
    pub workroot: PathBuf,
    pub jobs: usize,
    pub keep: Keep,
    pub criu_timeout: Duration,
    pub verbose: bool,
    /// Run tests without the `suid` flag as TEST_UID (set by `run` when
    /// the binaries and work dirs are reachable by that user).
    pub as_user: bool,
}

pub const USAGE: &str = "\
zdtm runner options (also ZDTM_ARGS for `cargo test --test zdtm`):
  -t, --test NAME       run NAME (repeatable; bare names work too; default: all but noauto)
  -x, --exclude NAME    skip NAME
  -a, --all             include tests flagged noauto
      --nocr            no dump/restore: start, compare, stop (proves the programs)
  -R, --norst           dump with --leave-running, no restore
      --iters N         dump (and restore) N times in a row
      --fault N         dump with CRIU_FAULT=N: the dump must fail, the task run on and PASS
      --pre-dump        pre-dump before each dump (then dump --track-mem --prev-images-dir)
      --flavor F        h (host); ns and uns are not built yet (skipped)
      --sabotage M      self-test: ZDTM_SABOTAGE=M (check|crash|hang|noready|noverdict), each test must FAIL
      --state-diff      self-test: the runner changes the task's nice, oom_score_adj, a VmFlag, an fd's flags,
                        a pipe's size, its stopped state and (in a tree) COW sharing; the compare must notice each
      --corrupt-pages   self-test: flip a byte of maps00's memory in pages-*.img before restore; maps00 must FAIL
      --selftest        the default plan of `cargo test`: nocr, self-tests, norst, cr, corrupt-pages
  -j, --jobs N          tests run at once (default: 2 x CPUs)
      --keep-img W      always|failed|never: keep work dirs (images, logs) (default failed)
      --timeout S       ready and stop timeouts in seconds (default 20)
      --criu PATH       the criu binary for dump and restore (default: ours, beside the runner)
      --dump-criu PATH  the criu binary that dumps (and pre-dumps)
      --restore-criu PATH
                        the criu binary that restores
      --interop         the interop matrix with the reference CRIU 4.2 instead of other modes:
                        ours dumps + it restores, it dumps + ours restores, it alone
      --criu42 PATH     the reference CRIU 4.2 binary (default: $ZDTM_CRIU42, else
                        ../shared/tools/criu-4.2/criu beside the checkout)
  -v, --verbose         print whole logs of failures";

/// What the command line asked for.
pub struct Cli {
    pub plans: Vec<Plan>,
    pub jobs: Option<usize>,
    pub keep: Keep,
    pub verbose: bool,
    /// The tests picked (-t, -x, -a), for plans built elsewhere.
    pub tests: Vec<TestDesc>,
    /// Why plans that were asked for can't run (printed, counted skipped).
    pub skipped: Vec<String>,
}

/// Where the runner finds its criu binaries: ours (the default for every
/// plan) and the reference CRIU 4.2 (for `--interop`).
pub struct Criu {
    pub ours: PathBuf,
    pub reference: PathBuf,
}

/// Parse runner arguments. With no mode option, `default_mode` decides:
/// `None` = the whole default plan, `Some(mode)` = that mode.
pub fn parse_cli(
    args: &[String],
    all: &[TestDesc],
    default_mode: Option<Mode>,
    bins: &Criu,
) -> Result<Cli, String> {
    let mut names: Vec<String> = Vec::new();
    let mut excluded: Vec<String> = Vec::new();
    let (mut include_noauto, mut mode, mut iters, mut fault, mut pre, mut flavor) =
        (false, None, 1, None, false, "h".to_string());
    let (mut selftest, mut full, mut jobs, mut keep, mut timeout, mut criu, mut verbose) =
        (SelfTest::None, false, None, Keep::Failed, None, None, false);
    let (mut dump_criu, mut restore_criu, mut interop, mut reference) =
        (None, None, false, bins.reference.clone());
    let mut i = 0;
    let val = |i: &mut usize, a: &str| -> Result<String, String> {
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| format!("{a} needs a value"))
    };
    let num = |s: String, a: &str| -> Result<u64, String> {
        s.parse::<u64>()
            .map_err(|_| format!("{a}: not a number: {s}"))
    };
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-t" | "--test" => names.push(val(&mut i, a)?),
            "-x" | "--exclude" => excluded.push(val(&mut i, a)?),
            "-a" | "--all" => include_noauto = true,
            "--nocr" => mode = Some(Mode::NoCr),
            "-R" | "--norst" | "--leave-running" => mode = Some(Mode::LeaveRunning),
            "--iters" => iters = num(val(&mut i, a)?, a)?.max(1) as u32,
            "--fault" => fault = Some(num(val(&mut i, a)?, a)? as u32),
            "--pre-dump" | "--pre" => pre = true,
            "-f" | "--flavor" => flavor = val(&mut i, a)?,
            "--sabotage" => selftest = SelfTest::Sabotage(val(&mut i, a)?),
            "--state-diff" => selftest = SelfTest::StateDiff,
            "--corrupt-pages" => selftest = SelfTest::CorruptPages,
            "--selftest" => full = true,
            "-j" | "--jobs" => jobs = Some(num(val(&mut i, a)?, a)?.max(1) as usize),
            "--keep-img" => {
                keep = match val(&mut i, a)?.as_str() {
                    "always" => Keep::Always,
                    "failed" => Keep::Failed,
                    "never" => Keep::Never,
                    k => return Err(format!("--keep-img: {k}? (always, failed, never)")),
                }
            }
            "--timeout" => timeout = Some(Duration::from_secs(num(val(&mut i, a)?, a)?)),
            "--criu" => criu = Some(absolute(val(&mut i, a)?)?),
            "--dump-criu" => dump_criu = Some(absolute(val(&mut i, a)?)?),
            "--restore-criu" => restore_criu = Some(absolute(val(&mut i, a)?)?),
            "--interop" => interop = true,
            "--criu42" => reference = absolute(val(&mut i, a)?)?,
            "-v" | "--verbose" => verbose = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if a.starts_with('-') => return Err(format!("unknown option {a}\n{USAGE}")),
            _ => names.push(a.to_string()),
        }
        i += 1;
    }
    if let Some(f) = selftest_sabotage(&selftest)
        .filter(|f| !["check", "crash", "hang", "noready", "noverdict"].contains(&f.as_str()))
    {
        return Err(format!(
            "--sabotage {f}? (check, crash, hang, noready, noverdict)"
        ));
    }
    for n in names.iter().chain(&excluded) {
        if !all.iter().any(|t| &t.name == n) {
            return Err(format!("no test named {n} (see zdtm/tests.desc)"));
        }
    }
    let tests: Vec<TestDesc> = all
        .iter()
        .filter(|t| {
            if names.is_empty() {
                include_noauto || !t.noauto
            } else {
                names.contains(&t.name)
            }
        })
        .filter(|t| !excluded.contains(&t.name))
        .cloned()
        .collect();
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    let explicit =
        mode.is_some() || selftest != SelfTest::None || fault.is_some() || pre || iters > 1;
    if interop {
        match interop::reference(&reference) {
            Ok(r) => plans = interop::matrix(&tests, &interop::CriuBin::probe(&bins.ours)?, &r),
            Err(why) => skipped.push(format!("interop matrix skipped: {why}")),
        }
    } else if full || (!explicit && default_mode.is_none()) {
        plans = default_plans(&tests);
    } else {
        let mode = mode.or(default_mode).unwrap_or(Mode::Cr);
        let mode = if selftest == SelfTest::CorruptPages {
            Mode::Cr
        } else {
            mode
        };
        let mode = if matches!(selftest, SelfTest::Sabotage(_) | SelfTest::StateDiff) {
            Mode::NoCr
        } else {
            mode
        };
        let mut p = Plan::new(mode, tests.clone());
        p.iters = iters;
        p.fault = fault;
        p.pre_dump = pre;
        p.flavor = flavor.clone();
        p.selftest = selftest.clone();
        if p.selftest == SelfTest::CorruptPages {
            p.tests.retain(|t| t.name == "maps00");
        }
        plans.push(p);
    }
    let (dump_criu, restore_criu) = (dump_criu.or(criu.clone()), restore_criu.or(criu));
    if interop && (dump_criu.is_some() || restore_criu.is_some()) {
        return Err("--interop picks its own criu binaries (--criu42 names the reference)".into());
    }
    if dump_criu.is_some() || restore_criu.is_some() {
        let probe = |p: Option<PathBuf>| interop::CriuBin::probe(p.as_deref().unwrap_or(&bins.ours));
        let (d, r) = (probe(dump_criu)?, probe(restore_criu)?);
        for p in &mut plans {
            p.dump_criu = Some(d.clone());
            p.restore_criu = Some(r.clone());
            p.as_root = interop::as_root_reason(p);
        }
    }
    for p in &mut plans {
        p.flavor = flavor.clone();
        if let Some(t) = timeout {
            p.ready_timeout = t;
            p.stop_timeout = t;
        }
    }
    Ok(Cli {
        plans,
        jobs,
        keep,
        verbose,
        tests,
        skipped,
    })
}

fn selftest_sabotage(s: &SelfTest) -> Option<String> {
    match s {
        SelfTest::Sabotage(m) => Some(m.clone()),
        _ => None,
    }
}

/// What `cargo test` runs: every program without criu, the self-tests that
/// prove failures are caught, then -R, full dump/restore once and three
/// times in a row (skipped while criu refuses those commands), then the
/// corrupt-pages self-test.
pub fn default_plans(tests: &[TestDesc]) -> Vec<Plan> {
    let one = |name: &str| {
        tests
            .iter()
            .filter(|t| t.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut plans = vec![Plan::new(Mode::NoCr, tests.to_vec())];
    let mut p = Plan::new(Mode::NoCr, tests.to_vec());
    p.selftest = SelfTest::Sabotage("check".into());
    plans.push(p);
    for m in ["crash", "hang", "noready", "noverdict"] {
        let mut p = Plan::new(Mode::NoCr, one("umask00"));
        p.selftest = SelfTest::Sabotage(m.into());
        p.ready_timeout = Duration::from_secs(3);
        p.stop_timeout = Duration::from_secs(3);
        plans.push(p);
    }
    let mut p = Plan::new(Mode::NoCr, [one("pipe00"), one("pstree00")].concat());
    p.selftest = SelfTest::StateDiff;
    plans.push(p);
    plans.push(Plan::new(Mode::LeaveRunning, tests.to_vec()));
    plans.push(Plan::new(Mode::Cr, tests.to_vec()));
    // The issue's bar: every test also survives three cycles in a row.
    let mut p = Plan::new(Mode::Cr, tests.to_vec());
    p.iters = 3;
    plans.push(p);
    let mut p = Plan::new(Mode::Cr, one("maps00"));
    p.selftest = SelfTest::CorruptPages;
    plans.push(p);
    plans.retain(|p| !p.tests.is_empty());
    plans
}

// --------------------------------------------------------------- reaper --

struct Reaper {
    exits: Mutex<HashMap<i32, i32>>,
    cv: Condvar,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

fn reaper() -> &'static Reaper {
    REAPER.get_or_init(|| {
        // SAFETY: plain prctl on ourselves.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            panic!("PR_SET_CHILD_SUBREAPER: {}", io::Error::last_os_error());
        }
        std::thread::Builder::new()
            .name("zdtm-reaper".into())
            .spawn(|| {
                loop {
                    let mut st = 0;
                    // SAFETY: waitpid with a valid out-pointer.
                    let pid = unsafe { libc::waitpid(-1, &mut st, libc::__WALL) };
                    if pid > 0 {
                        let r = REAPER.get().expect("reaper");
                        r.exits.lock().unwrap().insert(pid, st);
                        r.cv.notify_all();
                    } else if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                        std::thread::sleep(Duration::from_millis(10)); // ECHILD: nothing to wait for yet
                    }
                }
            })
            .expect("spawn the reaper thread");
        Reaper {
            exits: Mutex::new(HashMap::new()),
            cv: Condvar::new(),
        }
    })
}

/// Start a child; its exit is collected by the reaper.
fn spawn(cmd: &mut Command) -> io::Result<i32> {
    let r = reaper();
    let mut exits = r.exits.lock().unwrap();
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    exits.remove(&pid); // a stale status of an earlier process with this pid
    drop(child); // never waited on by std: the reaper does it
    Ok(pid)
}

/// Wait for `pid` to exit (it must be our child or reparented to us).
fn wait_exit(pid: i32, timeout: Duration) -> Option<i32> {
    let r = reaper();
    let deadline = Instant::now() + timeout;
    let mut exits = r.exits.lock().unwrap();
    loop {
        if let Some(st) = exits.remove(&pid) {
            return Some(st);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        exits = r.cv.wait_timeout(exits, deadline - now).unwrap().0;
    }
}

fn exited(pid: i32) -> Option<i32> {
    reaper().exits.lock().unwrap().get(&pid).copied()
}

pub fn describe_status(st: i32) -> String {
    if libc::WIFEXITED(st) {
        format!("exit code {}", libc::WEXITSTATUS(st))
    } else if libc::WIFSIGNALED(st) {
        let s = libc::WTERMSIG(st);
        // SAFETY: strsignal returns a static string for any number.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(s)) }
            .to_string_lossy()
            .into_owned();
        format!("killed by signal {s} ({name})")
    } else {
        format!("wait status {st:#x}")
    }
}

fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Run a command to completion (through the reaper) with a timeout.
/// Returns the wait status, or None on timeout (the command is killed).
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> io::Result<Option<i32>> {
    let pid = spawn(cmd)?;
    match wait_exit(pid, timeout) {
        Some(st) => Ok(Some(st)),
        None => {
            kill(pid, libc::SIGKILL);
            wait_exit(pid, Duration::from_secs(10));
            Ok(None)
        }
    }
}

fn tracer(pid: i32) -> Option<i32> {
    let st = rd(&format!("/proc/{pid}/status")).ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A descendant found stopped (T), in a tracing stop (t) or traced by
/// someone (a tracer in the test's own tree) before the dump: a dump must
/// leave it so (and a restore bring a stopped one back stopped).
#[derive(Clone, Copy, Debug)]
struct Held {
    pid: i32,
    state: char,
    tracer: i32,
}

fn held_of(tree: &[i32]) -> Vec<Held> {
    tree.iter()
        .map(|&pid| Held { pid, state: task_state(pid), tracer: tracer(pid).unwrap_or(0) })
        .filter(|h| matches!(h.state, 'T' | 't') || h.tracer != 0)
        .collect()
}

/// Each task of `held` that was stopped (state T) is stopped again, every
/// thread of it, within two seconds (a restored task stops once it runs:
/// criu may be gone before it does, and each thread stops on its own).
fn check_stopped(held: &[Held]) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(2);
    for h in held.iter().filter(|h| h.state == 'T') {
        let d = h.pid;
        loop {
            let not_stopped = std::iter::once(d).chain(snapshot::thread_ids(d)).map(task_state).find(|c| *c != 'T');
            match not_stopped {
                None => break,
                Some('R' | 'S' | 'D') if Instant::now() < end => std::thread::sleep(Duration::from_millis(2)),
                Some(c) => return Err(format!("descendant {d} was stopped, and a thread of it is now in state {c:?}")),
            }
        }
    }
    Ok(())
}

/// Alive, running or sleeping, not traced: how a task must be after a dump
/// that left it running (or a failed one); its descendants too, but those
/// in `held`, which must be as they were.
fn check_running(pid: i32, held: &[Held]) -> Result<(), String> {
    if let Some(st) = exited(pid) {
        return Err(format!("the task is gone: {}", describe_status(st)));
    }
    let root_stopped = held.iter().any(|h| h.pid == pid && h.state == 'T');
    match task_state(pid) {
        'R' | 'S' | 'D' if !root_stopped => {}
        'T' if root_stopped => {}
        'Z' | 'X' | '?' => {
            let st = wait_exit(pid, Duration::from_secs(5))
                .map(describe_status)
                .unwrap_or_else(|| "no exit status".into());
            return Err(format!("the task is gone: {st}"));
        }
        c if root_stopped => return Err(format!("the task was stopped, and is now in state {c:?}")),
        c => {
            return Err(format!(
                "the task is in state {c:?}, not running or sleeping"
            ));
        }
    }
    match tracer(pid) {
        Some(0) => {}
        Some(t) => return Err(format!("the task is still traced by {t}")),
        None => return Err("the task is gone".into()),
    }
    // Its descendants too: none stopped or traced (zombies stay zombies),
    // but those that were.
    for d in descendants(pid) {
        let (mut st, tr) = (task_state(d), tracer(d).unwrap_or(0));
        if let Some(h) = held.iter().find(|h| h.pid == d) {
            // A task let go in the middle of a group stop goes back into
            // it by itself, after a moment on the CPU.
            let end = Instant::now() + Duration::from_secs(2);
            while h.state == 'T' && matches!(st, 'R' | 'S' | 'D') && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(2));
                st = task_state(d);
            }
            let same = if matches!(h.state, 'T' | 't') { st == h.state } else { matches!(st, 'R' | 'S' | 'D') };
            if !same || tr != h.tracer {
                return Err(format!(
                    "its descendant {d} was in state {:?} traced by {}, and is now in state {st:?} traced by {tr}",
                    h.state, h.tracer
                ));
            }
            continue;
        }
        match st {
            'R' | 'S' | 'D' | 'Z' => {}
            c => return Err(format!("its descendant {d} is in state {c:?}, not running or sleeping")),
        }
        if tr != 0 {
            return Err(format!("its descendant {d} is still traced by {tr}"));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ run --

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stage {
    Setup,
    Ready,
    Dump,
    Restore,
    Compare,
    Stop,
    /// The program's own verdict (or its death).
    Verdict,
}

#[derive(Debug)]
pub enum Res {
    Pass(Option<String>),
    Skip(String),
    Fail(Stage, String),
    /// Interop: the dumper refused the dump (its reason); the task ran on
    /// and passed. Neither a pass nor a failure.
    Refused(String),
    /// Interop: failed as tests.desc's `criu42-fail` says CRIU 4.2 does.
    Known(String),
}

struct Case<'a> {
    cfg: &'a Config,
    plan: &'a Plan,
    test: &'a TestDesc,
    wd: PathBuf,
    details: Vec<String>,
    /// Shown with a PASS (why an expected failure was fine).
    note: Option<String>,
    /// Interop: the dumper's reason for refusing the dump.
    refused: Option<String>,
    /// Differences a known gap covers (known_gaps.rs): printed whatever the result.
    warnings: Vec<String>,
    pid: i32,
}

struct CriuRun {
    status: Option<i32>,
    text: String,
    log: PathBuf,
}

impl CriuRun {
    fn ok(&self) -> bool {
        self.status
            .is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0)
    }
    fn status_text(&self) -> String {
        self.status
            .map(describe_status)
            .unwrap_or_else(|| "timed out".into())
    }
    /// criu's own "I can't do that yet": a refused command or option.
    fn unsupported(&self) -> Option<String> {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        self.text.lines().chain(log.lines()).find_map(|l| {
            let refused = l.contains("is not supported yet")
                && (l.contains("command '") || l.contains("option --"));
            refused.then(|| l.trim().to_string())
        })
    }
    fn errors(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let mut errs: Vec<&str> = self
            .text
            .lines()
            .chain(log.lines())
            .filter(|l| l.contains("Error"))
            .collect();
        errs.dedup();
        // CRIU 4.2 without CAP_SYS_RESOURCE always says this; it is harmless.
        errs.retain(|l| !l.contains("Can't setup RLIMIT_NOFILE for self"));
        if errs.is_empty() {
            errs = self.text.lines().rev().take(3).collect();
        }
        errs.iter()
            .take(4)
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let t = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn chown(path: &Path, id: u32) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid C string.
        unsafe { libc::chown(c.as_ptr(), id, id) };
    }
}

impl Case<'_> {
    fn p(&self, name: &str) -> PathBuf {
        self.wd.join(name)
    }

    fn start(&mut self) -> Result<(), Res> {
        let setup = |e: String| Res::Fail(Stage::Setup, e);
        let _ = fs::remove_dir_all(&self.wd);
        fs::create_dir_all(&self.wd)
            .map_err(|e| setup(format!("mkdir {}: {e}", self.wd.display())))?;
        // The work root and the mode's dir must be reachable by the test user.
        for d in [
            self.cfg.workroot.as_path(),
            self.wd.parent().unwrap_or(&self.wd),
        ] {
            let _ = fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o666)
            .open(self.p("test.log"))
            .map_err(|e| setup(format!("test.log: {e}")))?;
        let as_user = !self.test.suid && self.cfg.as_user && self.plan.as_root.is_none();
        if as_user {
            chown(&self.wd, TEST_UID);
            chown(&self.p("test.log"), TEST_UID);
        }
        let bin = self.cfg.bindir.join(&self.test.name);
        if !bin.is_file() {
            // (also: std would wait for a child whose exec failed, racing the reaper)
            return Err(setup(format!(
                "no test binary {} (cargo build -p zdtm)",
                bin.display()
            )));
        }
        let mut cmd = Command::new(&bin);
        cmd.arg("--pidfile")
            .arg(self.p("test.pid"))
            .arg("--outfile")
            .arg(self.p("test.out"))
            .arg("--filename")
            .arg(self.p("test.file"))
            .arg("--dirname")
            .arg(self.p("test.dir"))
            .env_clear()
            .env("PATH", PATH_ENV)
            .env(ENV_PROBE.0, ENV_PROBE.1)
            .env("ZDTM_TEST", &self.test.name)
            .current_dir(&self.wd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| setup(e.to_string()))?)
            .stderr(log);
        if as_user {
            cmd.env("ZDTM_UID", TEST_UID.to_string())
                .env("ZDTM_GID", TEST_UID.to_string());
        }
        if let SelfTest::Sabotage(m) = &self.plan.selftest {
            cmd.env("ZDTM_SABOTAGE", m);
        }
        if self.plan.selftest == SelfTest::StateDiff {
            cmd.env("ZDTM_STATE_DIFF", "1");
        }
        // SAFETY: setsid is async-signal-safe; the child runs nothing else
        // before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
        }
        self.pid = spawn(&mut cmd).map_err(|e| setup(format!("start {}: {e}", bin.display())))?;

        // Ready: the pid file names our child.
        let deadline = Instant::now() + self.plan.ready_timeout;
        loop {
            if let Ok(s) = fs::read_to_string(self.p("test.pid")) {
                if s.trim() == self.pid.to_string() {
                    return Ok(());
                }
                if !s.trim().is_empty() {
                    return Err(Res::Fail(
                        Stage::Ready,
                        format!("pid file says {:?}, the test is {}", s.trim(), self.pid),
                    ));
                }
            }
            if let Some(st) = exited(self.pid) {
                return Err(Res::Fail(
                    Stage::Ready,
                    format!(
                        "the test exited before it was ready: {}{}",
                        describe_status(st),
                        self.verdict_suffix()
                    ),
                ));
            }
            if Instant::now() > deadline {
                return Err(Res::Fail(
                    Stage::Ready,
                    format!("not ready after {:?}", self.plan.ready_timeout),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn verdict_suffix(&self) -> String {
        match fs::read_to_string(self.p("test.out")) {
            Ok(v) => format!(" (verdict: {})", v.trim()),
            Err(_) => String::new(),
        }
    }

    fn criu(&mut self, action: &str, args: &[String], log: &str) -> CriuRun {
        let dir = self.wd.join(
            args.iter()
                .skip_while(|a| *a != "-D")
                .nth(1)
                .map(String::as_str)
                .unwrap_or("."),
        );
        let out_path = dir.join(format!("{action}.stdout"));
        let bin = if action == "restore" {
            &self.plan.restore_criu
        } else {
            &self.plan.dump_criu
        };
        let bin = bin.as_ref().map(|b| b.path.clone()).unwrap_or_else(|| self.cfg.criu.clone());
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .env_clear()
            .env("PATH", PATH_ENV)
            .current_dir(&self.wd)
            .stdin(Stdio::null());
        if let Some(f) = self.plan.fault.filter(|_| action == "dump") {
            cmd.env("CRIU_FAULT", f.to_string());
        }
        let text;
        let status = match File::create(&out_path).and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((o, e)) => {
                cmd.stdout(o).stderr(e);
                let st = run_cmd(&mut cmd, self.cfg.criu_timeout);
                text = fs::read_to_string(&out_path).unwrap_or_default();
                st.unwrap_or_else(|e| {
                    self.details.push(format!("can't run {}: {e}", bin.display()));
                    Some(0x7f00)
                })
            }
            Err(e) => {
                text = format!("can't create {}: {e}", out_path.display());
                Some(0x7f00)
            }
        };
        let run = CriuRun {
            status,
            text,
            log: dir.join(log),
        };
        self.details.push(format!(
            "criu {action} ({}): {} (log {})",
            bin.display(),
            run.status_text(),
            run.log.display()
        ));
        run
    }

    fn compare(&mut self, before: &Snapshot, when: &str) -> Result<(), Res> {
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
    fn keep_snapshot(&self, s: &Snapshot, when: &str) {
        let text: String = s.iter().map(|(k, v)| format!("{k}: {}\n", v.trim_end().replace('\n', "\n    "))).collect();
        let _ = fs::write(self.p(&format!("proc-{}.txt", when.replace(' ', "-"))), text);
    }

    /// After a restore: the same, but the tree is in a new time namespace
    /// whose clocks go on from the dump (`win`: None, no time namespaces).
    fn compare_restored(&mut self, before: &Snapshot, when: &str, win: Option<&timens::Window>) -> Result<(), Res> {
        let Some(win) = win else { return self.compare(before, when) };
        let before = timens::without(before);
        let d = self.settled_diff(when, |after| {
            let mut d = diff(&before, &timens::without(after));
            d.extend(win.check(self.pid, after));
            d
        })?;
        self.report(d, when)
    }

    fn report(&mut self, d: Vec<String>, when: &str) -> Result<(), Res> {
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

    /// Self-test (`--state-diff`): change the task from outside, one change
    /// per kind of state the compare covers: nice and oom_score_adj, a
    /// VmFlag (the test library madvises MADV_DONTDUMP on SIGUSR2 under
    /// ZDTM_STATE_DIFF), an fd's flags and a pipe's size (through a copy of
    /// the fd), and the stopped state (SIGSTOP; SIGCONT after the compare).
    /// (And, in a tree, the COW sharing: `snap_pagemap::break_sharing`.)
    fn meddle(&mut self) {
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

    /// Between "ready" and SIGTERM: what the plan says to do to the task.
    fn exercise(&mut self) -> Result<(), Res> {
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

    /// SIGTERM, wait, read the verdict.
    fn stop(&mut self) -> Res {
        if task_state(self.pid) == 'T' {
            // A stopped test (stopped10) is continued first: a stopped
            // task runs no handler.
            kill(self.pid, libc::SIGCONT);
        }
        kill(self.pid, libc::SIGTERM);
        let st = match wait_exit(self.pid, self.plan.stop_timeout) {
            Some(st) => st,
            None => {
                return Res::Fail(
                    Stage::Stop,
                    format!(
                        "still running {:?} after SIGTERM (state {:?})",
                        self.plan.stop_timeout,
                        task_state(self.pid)
                    ),
                );
            }
        };
        let verdict = fs::read_to_string(self.p("test.out")).unwrap_or_default();
        let verdict = verdict.trim();
        let clean = libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0;
        if verdict == "PASS" && clean {
            Res::Pass(None)
        } else if let Some(r) = verdict.strip_prefix("SKIP:").filter(|_| clean) {
            Res::Skip(format!("the test says: {}", r.trim()))
        } else if let Some(r) = verdict.strip_prefix("FAIL:") {
            Res::Fail(
                Stage::Verdict,
                format!("{} ({})", r.trim(), describe_status(st)),
            )
        } else if verdict.is_empty() {
            Res::Fail(
                Stage::Verdict,
                format!("no verdict; the test ended with {}", describe_status(st)),
            )
        } else {
            Res::Fail(
                Stage::Verdict,
                format!("verdict {verdict:?} with {}", describe_status(st)),
            )
        }
    }

    fn cleanup(&mut self) {
        if self.pid <= 0 {
            return;
        }
        if exited(self.pid).is_none() && task_state(self.pid) != '?' {
            // Still here (a failure path): its descendants (some may lead
            // groups of their own), the test's session/group, then the test.
            for d in descendants(self.pid) {
                kill(d, libc::SIGKILL);
            }
            kill(-self.pid, libc::SIGKILL);
            kill(self.pid, libc::SIGKILL);
            wait_exit(self.pid, Duration::from_secs(10));
        }
        reaper().exits.lock().unwrap().remove(&self.pid);
    }

    fn run(&mut self) -> Res {
        if self.plan.flavor != "h" {
            return Res::Skip(format!("flavor {} is not built yet", self.plan.flavor));
        }
        let res = match self.start() {
            Err(r) => r,
            Ok(()) => match self.exercise() {
                Ok(()) => self.stop(),
                Err(r) => r,
            },
        };
        self.cleanup();
        match res {
            Res::Pass(_) if self.refused.is_some() => Res::Refused(self.refused.take().unwrap_or_default()),
            Res::Pass(None) => Res::Pass(self.note.take()),
            r => r,
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
fn invert(plan: &Plan, test: &TestDesc, res: Res) -> Res {
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

fn run_one(cfg: &Config, plan: &Plan, test: &TestDesc, out: &Mutex<Summary>, skip: Option<&str>) {
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

/// A criu binary named on the command line, made absolute: tests run criu
/// from their own work directories.
fn absolute(p: String) -> Result<PathBuf, String> {
    std::path::absolute(&p).map_err(|e| format!("{p}: {e}"))
}
