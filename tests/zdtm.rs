//! The zdtm suite (zdtm/): test programs that build some state, wait to be
//! dumped and restored by our `criu`, and check the state after; the runner
//! also compares what /proc shows of each task before and after.
//!
//! `cargo test --test zdtm` runs the default plan: every program without
//! criu (nocr: proves the programs), the runner's self-tests (each program
//! sabotaging what it checks, crashing, hanging, never getting ready, ending
//! without a verdict; the runner changing /proc-visible state; a corrupted
//! pages image), then `dump -R` and dump + `restore -d` of every test.
//! Modes that criu refuses ("command 'dump' is not supported yet") are
//! reported as skipped, with criu's own words.
//!
//! ZDTM_ARGS picks other runs, e.g. ZDTM_ARGS="--iters 3 -R" or
//! ZDTM_ARGS="-t maps00 --pre-dump -v" (see `zdtm::runner::USAGE`, or run
//! target/debug/zdtm_run --help). ZDTM_NO_BUILD=1 skips building the test
//! programs (`cargo build -p zdtm`), which this test otherwise does first.
//!
//! The `interop_*` tests run the interop matrix with the reference CRIU 4.2
//! (../shared/tools/criu-4.2/criu beside the checkout, or $ZDTM_CRIU42), one
//! direction each: ours dumps + CRIU 4.2 restores, CRIU 4.2 dumps + ours
//! restores, CRIU 4.2 alone. They take the tests (-t/-x/-a), -j, --keep-img
//! and -v from ZDTM_ARGS, and skip with the reason when the binary is absent.

#[path = "../zdtm/src/runner.rs"]
mod runner;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Build the zdtm crate's binaries next to our criu binary (same target
/// dir and profile). Cargo does not hold its build lock while tests run.
fn build_zdtm(bindir: &Path) {
    // Once for all the tests of this file (they run in parallel threads).
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if *built || std::env::var_os("ZDTM_NO_BUILD").is_some() {
        return;
    }
    let cargo =
        std::env::var_os("CARGO").unwrap_or_else(|| option_env!("CARGO").unwrap_or("cargo").into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "zdtm",
        "--bins",
        "--manifest-path",
    ])
    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    match bindir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    if let Some(target_dir) = bindir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    let st = runner::run_cmd(&mut cmd, Duration::from_secs(900)).expect("run cargo build -p zdtm");
    assert!(
        st.is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0),
        "cargo build -p zdtm failed: {}",
        st.map(runner::describe_status)
            .unwrap_or_else(|| "timed out".into())
    );
    *built = true;
}

/// Our criu, the runner's config and the command line (ZDTM_ARGS).
fn setup() -> (runner::Criu, runner::Config, runner::Cli) {
    let criu = PathBuf::from(env!("CARGO_BIN_EXE_criu"));
    let bindir = criu.parent().expect("criu's directory").to_path_buf();
    build_zdtm(&bindir);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bins = runner::Criu {
        ours: criu.clone(),
        reference: runner::interop::default_reference(repo),
    };
    let all = runner::parse_desc(runner::DESC).expect("zdtm/tests.desc");
    let args: Vec<String> = std::env::var("ZDTM_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let cli =
        runner::parse_cli(&args, &all, None, &bins).unwrap_or_else(|e| panic!("ZDTM_ARGS: {e}"));
    let target = bindir.parent().unwrap_or(&bindir);
    let cfg = runner::Config {
        criu,
        bindir: bindir.clone(),
        workroot: runner::new_workroot(&target.join("zdtm")),
        jobs: cli.jobs.unwrap_or_else(runner::default_jobs),
        keep: cli.keep,
        criu_timeout: Duration::from_secs(300),
        verbose: cli.verbose,
        as_user: true,
    };
    (bins, cfg, cli)
}

fn assert_clean(what: &str, sum: &runner::Summary) {
    assert_eq!(
        sum.failed,
        0,
        "{what}: {} failed: {}",
        sum.failed,
        sum.failures.join(", ")
    );
    assert!(
        sum.passed + sum.refused + sum.known > 0,
        "{what} ran nothing"
    );
}

#[test]
fn zdtm() {
    let (_, cfg, cli) = setup();
    for s in &cli.skipped {
        runner::say(s);
    }
    if cli.plans.is_empty() && !cli.skipped.is_empty() {
        return; // ZDTM_ARGS=--interop without CRIU 4.2: said why above
    }
    let sum = runner::run(&cfg, &cli.plans);
    assert_clean("zdtm", &sum);
}

/// Issue 13's acceptance: established TCP under steady traffic both ways
/// survives 10 dumps and restores in a row with no byte lost or
/// duplicated, with the server in the tree (tcp05), the client (tcp06)
/// or both ends (tcp07); each program counts and checks every byte.
#[test]
fn tcp_under_traffic_survives_ten_dumps_and_restores() {
    let (bins, cfg, _) = setup();
    let all = runner::parse_desc(runner::DESC).expect("zdtm/tests.desc");
    let args: Vec<String> = ["-t", "tcp05", "-t", "tcp06", "-t", "tcp07", "--iters", "10"].iter().map(|s| s.to_string()).collect();
    let cli = runner::parse_cli(&args, &all, None, &bins).expect("the runner's arguments");
    let sum = runner::run(&cfg, &cli.plans);
    assert_clean("tcp under traffic, 10 iterations", &sum);
    assert_eq!(sum.passed, 3, "every traffic test must pass (none skipped or refused)");
}

/// One direction of the interop matrix with the reference CRIU 4.2;
/// skipped, with the reason printed, when that binary is absent.
fn interop(dir: runner::interop::Direction) {
    let (bins, cfg, cli) = setup();
    let reference = match runner::interop::reference(&bins.reference) {
        Ok(r) => r,
        Err(why) => {
            runner::say(&format!("interop {dir:?}: skipped: {why}"));
            return;
        }
    };
    let ours = runner::interop::CriuBin::probe(&bins.ours).expect("our criu");
    assert!(ours.ours, "{} does not say it is ours", bins.ours.display());
    let plan = runner::interop::plan(dir, &cli.tests, &ours, &reference);
    let sum = runner::run(&cfg, &[plan]);
    assert_clean(&format!("interop {dir:?}"), &sum);
}

/// (a) Our images, restored by CRIU 4.2.
#[test]
fn interop_ours_dump_criu42_restore() {
    interop(runner::interop::Direction::OursToRef);
}

/// (b) CRIU 4.2's images, restored by ours.
#[test]
fn interop_criu42_dump_ours_restore() {
    interop(runner::interop::Direction::RefToOurs);
}

/// (c) CRIU 4.2 alone: proves the tests (and their /proc compare) against the spec.
#[test]
fn interop_criu42_alone() {
    interop(runner::interop::Direction::RefAlone);
}

/// The comparison itself: equal snapshots give no diff; a changed map,
/// fd or field each show up.
#[test]
fn snapshot_diff_reports_changes() {
    let me = std::process::id() as i32;
    let a = runner::snapshot::snapshot(me).expect("snapshot of ourselves");
    let thread_sched = format!("thread {me} sched");
    for key in [
        "maps",
        "cwd",
        "limits",
        "status SigBlk",
        "status NoNewPrivs",
        "status Cpus_allowed",
        "stat session",
        "environ",
        "state",
        "timerslack_ns",
        thread_sched.as_str(),
    ] {
        assert!(
            a.contains_key(key),
            "snapshot lacks {key}: {:?}",
            a.keys().collect::<Vec<_>>()
        );
    }
    let fd = a
        .keys()
        .find(|k| k.starts_with("fd "))
        .expect("an fd in the snapshot")
        .clone();
    assert!(runner::diff(&a, &a).is_empty());
    let mut b = a.clone();
    b.insert("status SigBlk".into(), "0000000000000001".into());
    let maps = b["maps"].clone();
    let first = maps.lines().next().unwrap().to_string();
    b.insert(
        "maps".into(),
        maps.replacen(&first, &first.replacen("r", "-", 1), 1),
    );
    b.remove(&fd);
    let d = runner::diff(&a, &b).join("\n");
    assert!(d.contains("status SigBlk:"), "{d}");
    assert!(
        d.contains("maps changed:") && d.contains(&format!("  - {first}")),
        "{d}"
    );
    assert!(d.contains(&format!("{fd}:")) && d.contains("(gone)"), "{d}");
    // Every VMA has its VmFlags; every status line but the listed
    // exceptions is there.
    assert!(a.keys().any(|k| k.starts_with("vmflags ")), "no vmflags keys");
    for (k, _) in runner::snapshot::STATUS_EXCEPTIONS {
        assert!(!a.contains_key(&format!("status {k}")), "status {k} is an exception");
    }
    // Root reads fds through pidfd_getfd: each fd has its owner.
    if nix::unistd::geteuid().is_root() {
        assert!(a.contains_key(&format!("{fd} owner")), "{fd} owner");
    }
}

/// A lost VmFlag is named; COW sharing counts pages lost, not gained.
#[test]
fn snapshot_diff_names_vmflags_and_lost_sharing() {
    let mut a = runner::Snapshot::new();
    a.insert("vmflags 1000-2000".into(), "lo mr mw rd wr".into());
    a.insert("cow 1~2".into(), "10000-24000 (20 pages)\n".into());
    let mut b = a.clone();
    b.insert("vmflags 1000-2000".into(), "dd mr mw rd wr".into());
    let d = runner::diff(&a, &b).join("\n");
    assert!(d.contains("vmflags 1000-2000: lost lo, gained dd"), "{d}");
    // More sharing after: no difference.
    b.insert("cow 1~2".into(), "10000-24000 (20 pages)\n80000-81000 (1 pages)\n".into());
    assert!(!runner::diff(&a, &b).join("\n").contains("cow"));
    // A few pages fewer: what a resumed task writes by itself.
    b.insert("cow 1~2".into(), "10000-12000 (2 pages)\n13000-24000 (17 pages)\n".into());
    assert!(!runner::diff(&a, &b).join("\n").contains("cow"));
    // Ten pages fewer (ranges merged differently do not matter).
    b.insert("cow 1~2".into(), "10000-1a000 (10 pages)\n".into());
    let d = runner::diff(&a, &b).join("\n");
    assert!(d.contains("cow 1~2: sharing lost:") && d.contains("  - 1a000-24000 (10 pages)"), "{d}");
    b.remove("cow 1~2");
    assert!(runner::diff(&a, &b).join("\n").contains("  - 10000-24000 (20 pages)"));
}

/// A known gap covers only its test, its key and the step of its criu.
#[test]
fn known_gaps_cover_only_what_they_name() {
    use runner::known_gaps::{Gap, KNOWN_GAPS, Step, Who, split_by};
    for g in KNOWN_GAPS {
        assert!(runner::parse_desc(runner::DESC).unwrap().iter().any(|t| t.name == g.test), "{}: no such test", g.test);
        assert!(!g.issue.is_empty() && !g.key.is_empty());
    }
    let g = Gap { test: "pstree00", key: "cow ", what: "sharing lost", who: Who::Ours, step: Step::Restore, issue: "a test gap" };
    let gaps = [g];
    let g = &gaps[0];
    let line = |k: &str| vec![format!("{k}: {} x", g.what), "  - detail".to_string(), "status Seccomp: 0 -> 2".into()];
    let key = format!("{}9~10", g.key);
    let (fail, known) = split_by(&gaps, g.test, Who::Ours, Some(Who::Ours), line(&key));
    assert_eq!(fail, vec!["status Seccomp: 0 -> 2".to_string()]);
    assert_eq!(known.len(), 1, "{known:?}");
    assert!(known[0].contains(g.issue));
    // Another test, or no restore: not covered.
    for (test, restorer) in [("no-such-test", Some(Who::Ours)), (g.test, None)] {
        let (fail, known) = split_by(&gaps, test, Who::Ours, restorer, line(&key));
        assert!(known.is_empty() && fail.len() == 3, "{test} {restorer:?}: {fail:?} {known:?}");
    }
}

#[test]
fn tests_desc_parses_and_matches_the_binaries() {
    let all = runner::parse_desc(runner::DESC).expect("zdtm/tests.desc");
    assert!(all.iter().any(|t| t.crfail), "a crfail test");
    // crfail with criu42-fail: ours refuses, CRIU 4.2 dumps (and loses
    // the state); its dump is then the limitation. Only on its dump side.
    for t in all.iter().filter(|t| t.crfail && t.criu42_fail.is_some()) {
        let side = t.criu42_fail.as_ref().map(|(s, _)| *s);
        assert!(side != Some(runner::interop::Side::Restore), "{}: crfail and criu42-fail(restore)", t.name);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zdtm/src/bin");
    for t in &all {
        assert!(
            dir.join(format!("{}.rs", t.name)).is_file(),
            "{} has no zdtm/src/bin/{}.rs",
            t.name,
            t.name
        );
    }
    assert!(runner::parse_desc("x bogus").is_err());
    assert!(runner::parse_desc("x\nx").is_err());
    assert!(runner::parse_desc("x criu42-fail:").is_err(), "a reason is required");
    assert!(runner::parse_desc("x criu42-fail(both): why").is_err(), "an unknown side");
    let d = runner::parse_desc("x suid criu42-fail: CRIU can't: a reason  # note\ny criu42-fail(restore): r").unwrap();
    assert!(d[0].suid);
    let side = |i: usize| d[i].criu42_fail.as_ref().map(|(s, w)| (*s, w.as_str()));
    assert_eq!(side(0), Some((runner::interop::Side::Any, "CRIU can't: a reason")));
    assert_eq!(side(1), Some((runner::interop::Side::Restore, "r")));
    let d = runner::parse_desc("x opts: --file-locks --shell-job suid\ny opts:--file-locks excl criu42-fail: r").unwrap();
    assert_eq!((d[0].opts.clone(), d[0].suid), (vec!["--file-locks".to_string(), "--shell-job".to_string()], true));
    assert_eq!((d[1].opts.clone(), d[1].excl), (vec!["--file-locks".to_string()], true));
    assert!(runner::parse_desc("x opts: bogus").is_err(), "an option starts with -");
}

/// The corrupt-pages self-test's tool: it flips a byte of the first page
/// that starts with maps00's marker, and refuses when there is none.
#[test]
fn corrupt_pages_flips_the_marked_page() {
    let dir = std::env::temp_dir().join(format!("zdtm-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut pages = vec![7u8; 3 * 4096];
    assert!(
        runner::corrupt_pages(&dir).is_err(),
        "no pages image at all"
    );
    std::fs::write(dir.join("pages-1.img"), &pages).unwrap();
    assert!(runner::corrupt_pages(&dir).is_err(), "no marked page");
    pages[4096..4096 + runner::PAGE_MARKER.len()].copy_from_slice(runner::PAGE_MARKER);
    std::fs::write(dir.join("pages-1.img"), &pages).unwrap();
    runner::corrupt_pages(&dir).expect("flip");
    let after = std::fs::read(dir.join("pages-1.img")).unwrap();
    let changed: Vec<usize> = (0..pages.len()).filter(|&i| pages[i] != after[i]).collect();
    assert_eq!(changed, vec![4096 + 100]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// How interop results count: a failure of a test flagged criu42-fail is
/// that limitation only where CRIU 4.2 does the limited step; a pass with
/// CRIU 4.2 alone makes the flag stale; dump refusals count in the mixed
/// directions only.
#[test]
fn interop_results_follow_tests_desc() {
    use runner::interop::{self, CriuBin, Direction};
    use runner::{Res, Stage};
    let ours = CriuBin {
        path: "/nonexistent/ours".into(),
        name: "ours".into(),
        ours: true,
    };
    let reference = CriuBin {
        path: "/nonexistent/criu".into(),
        name: "criu42".into(),
        ours: false,
    };
    let tests = runner::parse_desc("plain\nlim criu42-fail(restore): why").unwrap();
    let [a, b, c] = [Direction::OursToRef, Direction::RefToOurs, Direction::RefAlone]
        .map(|d| interop::plan(d, &tests, &ours, &reference));
    assert_eq!(
        [a.label(), b.label(), c.label()],
        ["cr-ours-criu42", "cr-criu42-ours", "cr-criu42"]
    );
    assert!(interop::refusals_counted(&a) && interop::refusals_counted(&b));
    assert!(!interop::refusals_counted(&c));
    let fail = || Res::Fail(Stage::Restore, "x".into());
    let pass = || Res::Pass(None);
    assert!(matches!(interop::judge(&a, &tests[0], fail()), Res::Fail(..)));
    assert!(matches!(interop::judge(&a, &tests[1], fail()), Res::Known(_)));
    assert!(matches!(interop::judge(&c, &tests[1], fail()), Res::Known(_)));
    // (b): CRIU 4.2 only dumps; a restore limitation does not excuse ours.
    assert!(matches!(interop::judge(&b, &tests[1], fail()), Res::Fail(..)));
    assert!(matches!(interop::judge(&a, &tests[1], pass()), Res::Pass(_)));
    assert!(matches!(interop::judge(&c, &tests[1], pass()), Res::Fail(..)), "stale flag");
    assert!(matches!(interop::judge(&c, &tests[0], pass()), Res::Pass(_)));
}
