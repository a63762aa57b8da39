//! The zdtm runner: starts each test program, dumps and restores it with
//! our `criu`, compares what /proc shows of it before and after, then
//! sends SIGTERM and collects the program's own verdict.
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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
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
    /// The runner changes the task's nice value and oom_score_adj from
    /// outside between the snapshots: the compare must report both.
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
      --state-diff      self-test: the runner changes the task's nice and oom_score_adj; the compare must notice
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
    let mut p = Plan::new(Mode::NoCr, one("umask00"));
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

// ------------------------------------------------------------ snapshots --

/// What /proc shows of a task, key by key.
pub type Snapshot = BTreeMap<String, String>;

const STATUS_FIELDS: &[&str] = &[
    "Name",
    "Umask",
    "Tgid",
    "Pid",
    "PPid",
    "TracerPid",
    "Uid",
    "Gid",
    "Groups",
    "NStgid",
    "NSpid",
    "NSpgid",
    "NSsid",
    "Threads",
    "SigPnd",
    "ShdPnd",
    "SigBlk",
    "SigIgn",
    "SigCgt",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
    "THP_enabled",
    "x86_Thread_features",
    "x86_Thread_features_locked",
];

/// /proc/PID/stat fields (1-based, as proc(5)) that a restore keeps.
const STAT_FIELDS: &[(usize, &str)] = &[
    (4, "ppid"),
    (5, "pgrp"),
    (6, "session"),
    (7, "tty_nr"),
    (18, "priority"),
    (19, "nice"),
    (20, "num_threads"),
    (26, "startcode"),
    (27, "endcode"),
    (28, "startstack"),
    (38, "exit_signal"),
    (40, "rt_priority"),
    (41, "policy"),
    (45, "start_data"),
    (46, "end_data"),
    (47, "start_brk"),
    (48, "arg_start"),
    (49, "arg_end"),
    (50, "env_start"),
    (51, "env_end"),
];

/// VmFlags that change by themselves or by the act of dumping (soft-dirty,
/// userfaultfd tracking), and "ac" (VM_ACCOUNT, commit-charge accounting,
/// invisible to the program): CRIU 4.2 maps private file mappings writable
/// before it fills them, so after its restore the kernel accounts them.
const VOLATILE_VMFLAGS: &[&str] = &["sd", "um", "uw", "ui", "ac"];

/// CRIU 4.2 restores shared anonymous memory from a memfd: /proc/PID/maps
/// then says "/memfd:/dev/zero (deleted)" (its own dump, which on this
/// kernel records such memory as a memfd named "/dev/zero") or "/memfd:
/// (deleted)" (an image's anonymous shared VMA) where the kernel said
/// "/dev/zero (deleted)". All the same memory to the program.
const SHMEM_PATHS: &[(&str, &str)] = &[
    ("/memfd:/dev/zero (deleted)", "/dev/zero (deleted)"),
    ("/memfd: (deleted)", "/dev/zero (deleted)"),
];

fn rd(path: &str) -> Result<String, String> {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("{path}: {e}"))
}

fn link(path: &str) -> Result<String, String> {
    fs::read_link(path)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("{path}: {e}"))
}

struct Vma {
    start: u64,
    end: u64,
    perms: String,
    offset: Option<u64>,
    id: String,
    path: String,
    flags: String,
}

/// Mappings with perms, file offsets, file identity and VmFlags; adjacent
/// entries that differ only in how the kernel split them are merged, as
/// CRIU's zdtm does.
fn maps_state(pid: i32) -> Result<String, String> {
    let smaps = rd(&format!("/proc/{pid}/smaps"))?;
    let mut vmas: Vec<Vma> = Vec::new();
    for line in smaps.lines() {
        if let Some(rest) = line.strip_prefix("VmFlags:") {
            if let Some(v) = vmas.last_mut() {
                let mut f: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|f| !VOLATILE_VMFLAGS.contains(f))
                    .collect();
                f.sort_unstable();
                v.flags = f.join(" ");
            }
            continue;
        }
        let mut it = line.splitn(6, ' ');
        let (Some(range), Some(perms), Some(off), Some(dev), Some(ino)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if perms.len() != 4 {
            continue;
        }
        let mut path = it.next().unwrap_or("").trim_start().to_string();
        if let Some((_, same)) = SHMEM_PATHS.iter().find(|(alias, _)| path == *alias) {
            path = same.to_string();
        }
        let shmem = path.starts_with("/dev/zero")
            || path.starts_with("/SYSV")
            || path.starts_with("/memfd:");
        let file = path.starts_with('/') && ino != "0";
        let offset = u64::from_str_radix(off, 16).ok().filter(|_| file);
        let id = if file && !shmem {
            format!("{dev}:{ino}")
        } else {
            "-".into()
        };
        vmas.push(Vma {
            start,
            end,
            perms: perms.into(),
            offset,
            id,
            path,
            flags: String::new(),
        });
    }
    let mut merged: Vec<Vma> = Vec::new();
    for v in vmas {
        if let Some(p) = merged.last_mut() {
            let contiguous = match (p.offset, v.offset) {
                (Some(po), Some(vo)) => po + (p.end - p.start) == vo,
                (None, None) => true,
                _ => false,
            };
            if p.end == v.start
                && p.perms == v.perms
                && p.id == v.id
                && p.path == v.path
                && p.flags == v.flags
                && contiguous
            {
                p.end = v.end;
                continue;
            }
        }
        merged.push(v);
    }
    let mut out = String::new();
    for v in merged {
        let off = v
            .offset
            .map(|o| format!("{o:x}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:x}-{:x} {} {off} {} {} [{}]",
            v.start, v.end, v.perms, v.id, v.path, v.flags
        );
    }
    Ok(out)
}

/// Take a snapshot of what /proc shows of `pid`.
pub fn snapshot(pid: i32) -> Result<Snapshot, String> {
    let p = format!("/proc/{pid}");
    let mut s = Snapshot::new();
    s.insert("maps".into(), maps_state(pid)?);

    // fds: targets (pipe/socket inodes numbered by first appearance, so
    // sharing is kept but inode numbers may change) and fdinfo.
    let mut fds: Vec<i32> = fs::read_dir(format!("{p}/fd"))
        .map_err(|e| format!("{p}/fd: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let mut inodes: HashMap<String, usize> = HashMap::new();
    for fd in fds {
        let Ok(mut target) = link(&format!("{p}/fd/{fd}")) else {
            continue;
        };
        for kind in ["pipe:[", "socket:["] {
            if target.starts_with(kind) {
                let n = inodes.len();
                let k = *inodes.entry(target.clone()).or_insert(n);
                target = format!("{kind}#{k}]");
            }
        }
        let info = rd(&format!("{p}/fdinfo/{fd}")).unwrap_or_default();
        // What a restore legitimately changes is left out: inode numbers of
        // recreated objects (and unlinked files), a timer's remaining time (the clock moved), a
        // timerfd's ticks (the kernel's count is lazy: a periodic timer's missed expirations are
        // added at its next read or timerfd_gettime, which the dump does; the programs read them), and
        // the order the kernel lists epoll targets in (its tree of file
        // pointers); the targets themselves (fd, events, data) stay.
        let mut targets: Vec<String> = info
            .lines()
            .filter(|l| l.starts_with("tfd:"))
            .map(|l| l.split_whitespace().take_while(|w| !w.starts_with("pos:")).collect::<Vec<_>>().join(" "))
            .collect();
        targets.sort();
        let mut info: Vec<String> = info
            .lines()
            .filter(|l| {
                // A file by path keeps its inode, unless it was unlinked:
                // a ghost comes back as a new one.
                (!l.starts_with("ino:") || (target.starts_with('/') && !target.ends_with(" (deleted)")))
                    && !l.starts_with("eventfd-id:")
                    && !l.starts_with("it_value:")
                    && !(l.starts_with("ticks:") && target == "anon_inode:[timerfd]")
                    && !l.starts_with("tfd:")
            })
            .map(str::to_string)
            .collect();
        info.extend(targets);
        s.insert(
            format!("fd {fd:4}"),
            format!("{target} | {}", info.join("; ")),
        );
    }

    for l in ["cwd", "root", "exe"] {
        s.insert(l.into(), link(&format!("{p}/{l}")).unwrap_or_else(|e| e));
    }
    for f in [
        "comm",
        "limits",
        "personality",
        "oom_score_adj",
        "loginuid",
        "cgroup",
        "timers",
    ] {
        s.insert(f.into(), rd(&format!("{p}/{f}")).unwrap_or_else(|e| e));
    }
    for f in ["cmdline", "environ"] {
        let b = fs::read(format!("{p}/{f}")).unwrap_or_default();
        s.insert(f.into(), format!("{:?}", String::from_utf8_lossy(&b)));
    }
    let auxv = fs::read(format!("{p}/auxv")).unwrap_or_default();
    s.insert(
        "auxv".into(),
        auxv.chunks(16)
            .map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>())
            .collect::<Vec<_>>()
            .join(" "),
    );
    if let Ok(dir) = fs::read_dir(format!("{p}/ns")) {
        // The time namespace too: a restore makes a new one (see timens.rs).
        let mut ns: Vec<String> = dir
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .collect();
        ns.sort();
        for n in ns {
            s.insert(
                format!("ns {n}"),
                link(&format!("{p}/ns/{n}")).unwrap_or_else(|e| e),
            );
        }
    }
    let mut tids: Vec<String> = fs::read_dir(format!("{p}/task"))
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    tids.sort();
    s.insert("threads".into(), tids.join(" "));
    let mut children: Vec<String> = rd(&format!("{p}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    children.sort();
    s.insert("children".into(), children.join(" "));

    let status = rd(&format!("{p}/status"))?;
    for line in status.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if STATUS_FIELDS.contains(&k) {
                s.insert(format!("status {k}"), v.trim().to_string());
            } else if k == "SigQ" {
                // queued/limit: the count is per user (other tests share it)
                s.insert(
                    "status SigQ limit".into(),
                    v.trim().split('/').nth(1).unwrap_or("").to_string(),
                );
            }
        }
    }
    let stat = rd(&format!("{p}/stat"))?;
    let after_comm: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    for (n, name) in STAT_FIELDS {
        // field 3 (state) is after_comm[0]
        s.insert(
            format!("stat {name}"),
            after_comm.get(n - 3).unwrap_or(&"?").to_string(),
        );
    }
    Ok(s)
}

/// Every descendant of `pid` (children of each thread, recursively),
/// parents before their children.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out: Vec<i32> = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let mut tids: Vec<String> = fs::read_dir(format!("/proc/{p}/task"))
            .map(|d| d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
            .unwrap_or_default();
        tids.sort();
        for t in tids {
            for c in rd(&format!("/proc/{p}/task/{t}/children")).unwrap_or_default().split_whitespace() {
                let Ok(c) = c.parse::<i32>() else { continue };
                if c != pid && !out.contains(&c) {
                    out.push(c);
                    todo.push(c);
                }
            }
        }
    }
    out
}

/// What a zombie keeps that a restore must give back (CRIU's image of one
/// holds no more): its name, parentage, group, session and exit status.
fn zombie_snapshot(pid: i32) -> Snapshot {
    let mut s = Snapshot::new();
    s.insert("zombie".into(), "yes".into());
    s.insert("comm".into(), rd(&format!("/proc/{pid}/comm")).unwrap_or_else(|e| e));
    let stat = rd(&format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    for (n, name) in [(4, "ppid"), (5, "pgrp"), (6, "session"), (52, "exit_code")] {
        s.insert(format!("stat {name}"), f.get(n - 3).unwrap_or(&"?").to_string());
    }
    s
}

/// A snapshot of `pid` and of each of its descendants (their keys prefixed
/// with `[task PID]`): a test's whole process tree.
pub fn snapshot_tree(pid: i32) -> Result<Snapshot, String> {
    let mut s = snapshot(pid)?;
    for d in descendants(pid) {
        if task_state(d) == 'Z' {
            s.extend(zombie_snapshot(d).into_iter().map(|(k, v)| (format!("[task {d}] {k}"), v)));
            continue;
        }
        match snapshot(d) {
            Ok(sd) => s.extend(sd.into_iter().map(|(k, v)| (format!("[task {d}] {k}"), v))),
            Err(e) => {
                s.insert(format!("[task {d}]"), format!("unreadable: {e}"));
            }
        }
    }
    Ok(s)
}

/// Human-readable differences between two snapshots (empty: same).
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (a, b) = (before.get(k), after.get(k));
        if a == b {
            continue;
        }
        match (a, b) {
            (Some(a), Some(b)) if a.contains('\n') || b.contains('\n') => {
                let (al, bl): (BTreeSet<&str>, BTreeSet<&str>) =
                    (a.lines().collect(), b.lines().collect());
                out.push(format!("{k} changed:"));
                out.extend(al.difference(&bl).map(|l| format!("  - {l}")));
                out.extend(bl.difference(&al).map(|l| format!("  + {l}")));
            }
            (Some(a), Some(b)) => out.push(format!("{k}: {a} -> {b}")),
            (Some(a), None) => out.push(format!("{k}: {a} -> (gone)")),
            (None, Some(b)) => out.push(format!("{k}: (none) -> {b}")),
            (None, None) => {}
        }
    }
    out
}

/// The task's state letter from /proc/PID/stat ('?' if it is gone).
fn task_state(pid: i32) -> char {
    rd(&format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        })
        .unwrap_or('?')
}

fn tracer(pid: i32) -> Option<i32> {
    let st = rd(&format!("/proc/{pid}/status")).ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Alive, running or sleeping, not traced: how a task must be after a dump
/// that left it running (or a failed one).
fn check_running(pid: i32) -> Result<(), String> {
    if let Some(st) = exited(pid) {
        return Err(format!("the task is gone: {}", describe_status(st)));
    }
    match task_state(pid) {
        'R' | 'S' | 'D' => {}
        'Z' | 'X' | '?' => {
            let st = wait_exit(pid, Duration::from_secs(5))
                .map(describe_status)
                .unwrap_or_else(|| "no exit status".into());
            return Err(format!("the task is gone: {st}"));
        }
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
    // Its descendants too: none stopped or traced (zombies stay zombies).
    for d in descendants(pid) {
        match task_state(d) {
            'R' | 'S' | 'D' | 'Z' => {}
            c => return Err(format!("its descendant {d} is in state {c:?}, not running or sleeping")),
        }
        if let Some(t) = tracer(d).filter(|t| *t != 0) {
            return Err(format!("its descendant {d} is still traced by {t}"));
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
        let after = snapshot_tree(self.pid)
            .map_err(|e| Res::Fail(Stage::Compare, format!("{when}: can't read /proc: {e}")))?;
        self.report(diff(before, &after), when)
    }

    /// After a restore: the same, but the tree is in a new time namespace
    /// whose clocks go on from the dump (`win`: None, no time namespaces).
    fn compare_restored(&mut self, before: &Snapshot, when: &str, win: Option<&timens::Window>) -> Result<(), Res> {
        let Some(win) = win else { return self.compare(before, when) };
        let after = snapshot_tree(self.pid)
            .map_err(|e| Res::Fail(Stage::Compare, format!("{when}: can't read /proc: {e}")))?;
        let mut d = diff(&timens::without(before), &timens::without(&after));
        d.extend(win.check(self.pid, &after));
        self.report(d, when)
    }

    fn report(&mut self, d: Vec<String>, when: &str) -> Result<(), Res> {
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

    /// Between "ready" and SIGTERM: what the plan says to do to the task.
    fn exercise(&mut self) -> Result<(), Res> {
        let before =
            snapshot_tree(self.pid).map_err(|e| Res::Fail(Stage::Setup, format!("snapshot: {e}")))?;
        let tree = descendants(self.pid);
        if self.plan.mode == Mode::NoCr {
            if self.plan.selftest == SelfTest::StateDiff {
                // SAFETY: plain syscall on our child.
                if unsafe { libc::setpriority(libc::PRIO_PROCESS, self.pid as libc::id_t, 7) } != 0
                {
                    self.details
                        .push(format!("setpriority: {}", io::Error::last_os_error()));
                }
                if let Err(e) = fs::write(format!("/proc/{}/oom_score_adj", self.pid), "17") {
                    self.details.push(format!("oom_score_adj: {e}"));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
            return self.compare(&before, "after a pause");
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
                check_running(self.pid)
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
                check_running(self.pid)
                    .map_err(|e| Res::Fail(Stage::Dump, format!("after the failed dump: {e}")))?;
                return self.compare(&before, "after the failed dump");
            }
            if !r.ok() && interop::refusals_counted(self.plan) {
                // One side refused: the tree must run on, then its verdict.
                let who = self.plan.dump_criu.as_ref().map(|c| c.name.as_str()).unwrap_or("criu");
                self.refused = Some(format!("{who} refused the dump: {}", r.errors()));
                check_running(self.pid)
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
                check_running(self.pid)
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
            match task_state(self.pid) {
                'R' | 'S' | 'D' => {}
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
            self.compare_restored(&before, &format!("after restore {it}"), win.as_ref())?;
        }
        Ok(())
    }

    /// SIGTERM, wait, read the verdict.
    fn stop(&mut self) -> Res {
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

/// A self-test case passes when the test failed at the expected stage.
fn invert(plan: &Plan, res: Res) -> Res {
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
            if plan.selftest == SelfTest::StateDiff
                && !(why.contains("stat nice") && why.contains("oom_score_adj"))
            {
                return Res::Fail(
                    stage,
                    format!("the compare missed a change the runner made: {why}"),
                );
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
        pid: 0,
    };
    let res = interop::judge(plan, test, invert(plan, case.run()));
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
            [s.passed, s.failed, s.refused, s.known, s.skipped]
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
