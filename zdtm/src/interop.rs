//! The interop matrix: the zdtm tests between our criu and the reference
//! CRIU 4.2 (the spec). Three directions: ours dumps and CRIU 4.2 restores,
//! CRIU 4.2 dumps and ours restores, and CRIU 4.2 alone (which proves the
//! tests against the spec). Also what tells criu binaries apart, who runs
//! the tests as root, and how interop results are counted: a dump one side
//! refuses is reported with its reason (neither pass nor failure), and a
//! failure tests.desc names as a CRIU 4.2 limitation (`criu42-fail:`) is
//! reported as that.

use super::{Mode, Plan, Res, Stage, TestDesc};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A criu binary and what it calls itself.
#[derive(Clone, Debug, PartialEq)]
pub struct CriuBin {
    pub path: PathBuf,
    /// "ours", or "criu" and its version without dots ("criu42").
    pub name: String,
    pub ours: bool,
}

/// Run `path args`: Ok(output) when it exits 0, else Err(what it said).
fn ask(path: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::env::temp_dir().join(format!(
        "zdtm-criu-ask-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let f = File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut cmd = Command::new(path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().map_err(|e| e.to_string())?)
        .stderr(f);
    let st = super::run_cmd(&mut cmd, Duration::from_secs(30));
    let text = fs::read_to_string(&out).unwrap_or_default();
    let _ = fs::remove_file(&out);
    let st = st.map_err(|e| format!("can't run {}: {e}", path.display()))?;
    if st.is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0) {
        return Ok(text);
    }
    Err(format!(
        "`{} {}` failed ({}): {}",
        path.display(),
        args.join(" "),
        st.map(super::describe_status).unwrap_or_else(|| "timed out".into()),
        text.trim().replace('\n', " | ")
    ))
}

impl CriuBin {
    /// Ask `PATH --version`: ours says `Implementation: criu-rs`.
    pub fn probe(path: &Path) -> Result<CriuBin, String> {
        if !path.is_file() {
            return Err(format!("no criu binary at {}", path.display()));
        }
        let text = ask(path, &["--version"])?;
        let ours = text.contains("criu-rs");
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map(|v| v.trim().replace('.', ""))
            .unwrap_or_default();
        Ok(CriuBin {
            path: path.to_path_buf(),
            name: if ours { "ours".into() } else { format!("criu{version}") },
            ours,
        })
    }
}

/// Where the reference CRIU 4.2 is by default: $ZDTM_CRIU42, else
/// ../shared/tools/criu-4.2/criu beside the checkout `repo`.
pub fn default_reference(repo: &Path) -> PathBuf {
    match std::env::var_os("ZDTM_CRIU42") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo.join("../shared/tools/criu-4.2/criu"),
    }
}

/// The reference binary, or why the interop runs can't use it.
pub fn reference(path: &Path) -> Result<CriuBin, String> {
    if !path.is_file() {
        return Err(format!(
            "no CRIU 4.2 binary at {} (ZDTM_CRIU42=PATH or --criu42 PATH names another)",
            path.display()
        ));
    }
    let bin = CriuBin::probe(path).map_err(|e| {
        format!("{e} (bash ../shared/tools/criu-4.2/install-deps.sh installs its libraries)")
    })?;
    if bin.ours {
        return Err(format!("{} is our criu, not the reference", path.display()));
    }
    Ok(bin)
}

/// The three directions, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Direction {
    /// (a) ours dumps, the reference restores.
    OursToRef,
    /// (b) the reference dumps, ours restores.
    RefToOurs,
    /// (c) the reference alone.
    RefAlone,
}

pub const DIRECTIONS: [Direction; 3] = [Direction::OursToRef, Direction::RefToOurs, Direction::RefAlone];

/// One direction's plan: dump, then `restore -d`, each test once.
pub fn plan(dir: Direction, tests: &[TestDesc], ours: &CriuBin, reference: &CriuBin) -> Plan {
    let mut p = Plan::new(Mode::Cr, tests.to_vec());
    let (d, r) = match dir {
        Direction::OursToRef => (ours, reference),
        Direction::RefToOurs => (reference, ours),
        Direction::RefAlone => (reference, reference),
    };
    p.dump_criu = Some(d.clone());
    p.restore_criu = Some(r.clone());
    p.as_root = as_root_reason(&p);
    p
}

/// The whole matrix.
pub fn matrix(tests: &[TestDesc], ours: &CriuBin, reference: &CriuBin) -> Vec<Plan> {
    DIRECTIONS.iter().map(|d| plan(*d, tests, ours, reference)).collect()
}

/// capability(7) number of CAP_SYS_RESOURCE.
const CAP_SYS_RESOURCE: u32 = 24;

/// CAP_SYS_RESOURCE in our effective set (/proc/self/status CapEff).
fn have_cap_sys_resource() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// CRIU 4.2 reads each task's rlimits with prlimit(), which the kernel
/// allows on another uid's task only with CAP_SYS_RESOURCE: without it
/// CRIU's dump of a test running as the zdtm uid fails ("Can't get rlimit
/// 0: Operation not permitted"). Such plans run their tests as root.
pub fn as_root_reason(plan: &Plan) -> Option<String> {
    let d = plan.dump_criu.as_ref().filter(|d| !d.ours)?;
    (!have_cap_sys_resource()).then(|| {
        format!(
            "{} dumps; CRIU reads rlimits with prlimit(), which needs CAP_SYS_RESOURCE (we lack it) on another uid's task",
            d.name
        )
    })
}

/// Why a plan can't run with its binaries, if it can't: pre-dumps need
/// memory change tracking, which the reference may lack (CRIU 4.2 on a
/// kernel without soft-dirty), as `criu check --feature mem_dirty_track`
/// tells. (Asked of other binaries only: ours must not skip itself.)
pub fn plan_skip_reason(plan: &Plan) -> Option<String> {
    let d = plan.dump_criu.as_ref().filter(|d| !d.ours && plan.pre_dump)?;
    ask(&d.path, &["check", "--feature", "mem_dirty_track"])
        .err()
        .map(|e| format!("{} can't pre-dump here: {e}", d.name))
}

/// A mixed pair (one side ours, one not): a dump failure is the dumper's
/// refusal, reported with its reason. With the reference alone it is a
/// failure (or the limitation tests.desc names).
pub fn refusals_counted(plan: &Plan) -> bool {
    let ours = |c: &Option<CriuBin>| c.as_ref().is_none_or(|c| c.ours);
    ours(&plan.dump_criu) != ours(&plan.restore_criu)
}

/// Interop results by tests.desc's `criu42-fail`: its failures are the
/// limitation it names (with what was seen); a pass with the reference
/// alone means the flag is stale, which fails.
pub fn judge(plan: &Plan, test: &TestDesc, res: Res) -> Res {
    if !plan.interop() {
        return res;
    }
    let Some((side, why)) = &test.criu42_fail else {
        return res;
    };
    let foreign = |c: &Option<CriuBin>| c.as_ref().is_some_and(|c| !c.ours);
    let (dumps, restores) = (plan.mode != Mode::NoCr, plan.mode == Mode::Cr);
    let (by_ref_dump, by_ref_restore) =
        (dumps && foreign(&plan.dump_criu), restores && foreign(&plan.restore_criu));
    let applies = match side {
        Side::Dump => by_ref_dump,
        Side::Restore => by_ref_restore,
        Side::Any => by_ref_dump || by_ref_restore,
    };
    if !applies {
        return res;
    }
    // The reference did the whole dump + restore: a pass means no limitation.
    let whole = by_ref_dump && by_ref_restore;
    match res {
        Res::Fail(stage, seen) => Res::Known(format!("tests.desc: {why}; seen at {stage:?}: {seen}")),
        Res::Pass(_) if whole => Res::Fail(
            Stage::Verdict,
            format!("tests.desc says criu42-fail ({why}), but CRIU 4.2 alone passes: drop the flag"),
        ),
        r => r,
    }
}

/// Which step of CRIU 4.2 a `criu42-fail` limitation is in:
/// `criu42-fail(dump): REASON`, `criu42-fail(restore): REASON`, or
/// `criu42-fail: REASON` (either; it then applies to every interop run).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    Dump,
    Restore,
    Any,
}

/// Parse the flag's head (`criu42-fail`, `criu42-fail(dump)`, ...).
pub fn parse_side(head: &str) -> Option<Side> {
    match head.trim() {
        "criu42-fail" => Some(Side::Any),
        "criu42-fail(dump)" => Some(Side::Dump),
        "criu42-fail(restore)" => Some(Side::Restore),
        _ => None,
    }
}
