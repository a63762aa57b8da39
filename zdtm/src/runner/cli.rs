//! The runner's command line: its options (`USAGE`), the `Config` and
//! `Cli` they make, and the criu binaries they name.

use std::path::PathBuf;
use std::time::Duration;

use super::interop;
use super::{Mode, Plan, SelfTest, TestDesc, default_plans};

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

/// A criu binary named on the command line, made absolute: tests run criu
/// from their own work directories.
fn absolute(p: String) -> Result<PathBuf, String> {
    std::path::absolute(&p).map_err(|e| format!("{p}: {e}"))
}
