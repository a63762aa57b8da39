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

#[path = "../zdtm/src/runner.rs"]
mod runner;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Build the zdtm crate's binaries next to our criu binary (same target
/// dir and profile). Cargo does not hold its build lock while tests run.
fn build_zdtm(bindir: &Path) {
    if std::env::var_os("ZDTM_NO_BUILD").is_some() {
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
}

#[test]
fn zdtm() {
    let criu = PathBuf::from(env!("CARGO_BIN_EXE_criu"));
    let bindir = criu.parent().expect("criu's directory").to_path_buf();
    build_zdtm(&bindir);

    let all = runner::parse_desc(runner::DESC).expect("zdtm/tests.desc");
    let args: Vec<String> = std::env::var("ZDTM_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let cli = runner::parse_cli(&args, &all, None).unwrap_or_else(|e| panic!("ZDTM_ARGS: {e}"));
    let target = bindir.parent().unwrap_or(&bindir);
    let cfg = runner::Config {
        criu: cli.criu.clone().unwrap_or(criu),
        bindir: bindir.clone(),
        workroot: runner::new_workroot(&target.join("zdtm")),
        jobs: cli.jobs.unwrap_or_else(runner::default_jobs),
        keep: cli.keep,
        criu_timeout: Duration::from_secs(300),
        verbose: cli.verbose,
        as_user: true,
    };
    let sum = runner::run(&cfg, &cli.plans);
    assert_eq!(
        sum.failed,
        0,
        "zdtm: {} failed: {}",
        sum.failed,
        sum.failures.join(", ")
    );
    assert!(sum.passed > 0, "zdtm ran nothing");
}

/// The comparison itself: equal snapshots give no diff; a changed map,
/// fd or field each show up.
#[test]
fn snapshot_diff_reports_changes() {
    let me = std::process::id() as i32;
    let a = runner::snapshot(me).expect("snapshot of ourselves");
    for key in [
        "maps",
        "cwd",
        "limits",
        "status SigBlk",
        "stat session",
        "environ",
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
}

#[test]
fn tests_desc_parses_and_matches_the_binaries() {
    let all = runner::parse_desc(runner::DESC).expect("zdtm/tests.desc");
    assert!(all.iter().any(|t| t.crfail), "a crfail test");
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
