//! The `criu` binary's command line from the outside: versions, help, and
//! bad input that must fail with one clear line, exit code 1 and nothing
//! written.

use std::path::Path;
use std::process::{Command, Output};

fn criu(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env_remove("CRIU_CONFIG_FILE")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn version_first_line_is_what_lxc_parses() {
    let tmp = tempfile::tempdir().unwrap();
    for flag in ["--version", "-V"] {
        let out = criu(tmp.path(), &[flag]);
        assert!(out.status.success());
        let s = text(&out.stdout);
        assert_eq!(s.lines().next(), Some("Version: 4.2"), "{s}");
        assert!(s.lines().nth(1).unwrap().contains("criu-rs"), "{s}");
        assert!(!s.contains("GitID"), "GitID would make LXC misread our version");
    }
}

#[test]
fn help_wins_over_a_broken_config() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join(".criu")).unwrap();
    std::fs::write(tmp.path().join(".criu/default.conf"), "not-an-option\n").unwrap();
    let out = criu(tmp.path(), &["dump", "--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("--[no-]tcp-established"));
    let out = criu(tmp.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("default.conf:1: unknown option '--not-an-option'"), "{}", text(&out.stderr));
}

#[test]
fn bad_input_fails_with_one_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let d = imgs.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["dump", "-t", "1", "-D", d, "--bogus"], "Error: unknown option '--bogus'"),
        (&["frobnicate", "-D", d], "Error: unknown command 'frobnicate'"),
        (&["-D", d], "Error: no command given"),
        (&["dump", "-D", d, "-o", "dump.log"], "Error: dump needs -t/--tree PID"),
        (&["pre-dump", "-D", d], "Error: pre-dump needs -t/--tree PID"),
        (&["dump", "-t", "abc", "-D", d], "Error: invalid argument for --tree: abc"),
        (&["dump", "-t", "1", "-D", "/nonexistent/imgs"], "Error: images directory /nonexistent/imgs does not exist"),
        (&["restore", "-D", d, "-W", "/nonexistent/w"], "Error: work directory /nonexistent/w does not exist"),
        (&["dump", "-t", "1", "-D", d, "--tcp-established"], "Error: option --tcp-established is not supported yet"),
        (&["restore", "-D", d, "-d", "--lazy-pages", "-o", "r.log"], "Error: option --lazy-pages is not supported yet"),
        (&["restore", "-D", d, "-S"], "Error: --restore-sibling only makes sense with --restore-detached"),
        (&["dump", "-t", "1", "-D", d, "--ms"], "Error: --ms is deprecated"),
        (&["restore", "-D", d, "--manage-cgroups=bogus"], "Error: invalid argument for --manage-cgroups: bogus"),
        (&["cpuinfo", "-D", d], "Error: cpuinfo requires an action: dump or check"),
        (&["check", "extra-word"], "Error: unexpected argument 'extra-word'"),
        (&["show", "-D", d], "Error: the \"show\" action is deprecated by the CRIT utility"),
        (&["check", "--config", "/nonexistent.conf"], "Error: can't read config file /nonexistent.conf"),
    ];
    for (args, want) in cases {
        let out = criu(tmp.path(), args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with(want), "{args:?}: got {err:?}, want {want:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(entries(&imgs).is_empty(), "{args:?} wrote {:?}", entries(&imgs));
    }
}

#[test]
fn log_file_goes_to_work_dir_then_images_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let imgs = tmp.path().join("imgs");
    let work = tmp.path().join("work");
    std::fs::create_dir(&imgs).unwrap();
    std::fs::create_dir(&work).unwrap();
    // `cpuinfo check` without a cpuinfo.img fails: its error goes to the
    // log file and to stderr, in CRIU's format.
    let out = criu(tmp.path(), &["cpuinfo", "check", "-D", imgs.to_str().unwrap(), "-o", "x.log", "-v4"]);
    assert_eq!(out.status.code(), Some(1));
    let log = std::fs::read_to_string(imgs.join("x.log")).unwrap();
    let err_line = log.lines().find(|l| l.contains("Error (")).unwrap();
    assert!(err_line.starts_with('('), "timestamped at -v4: {err_line}");
    assert!(err_line.contains("Error (src/ops/mod.rs:"), "{err_line}");
    assert!(err_line.ends_with("cpu: No cpuinfo image"), "{err_line}");
    assert!(text(&out.stderr).contains("cpu: No cpuinfo image"));

    let out = criu(tmp.path(), &["cpuinfo", "check", "-D", imgs.to_str().unwrap(), "-W", work.to_str().unwrap(), "-o", "y.log"]);
    assert_eq!(out.status.code(), Some(1));
    let log = std::fs::read_to_string(work.join("y.log")).unwrap();
    assert!(log.starts_with("Error (src/ops/mod.rs:"), "no timestamp at the default level: {log}");
    assert!(!imgs.join("y.log").exists());

    // -v0: nothing logged.
    let out = criu(tmp.path(), &["cpuinfo", "check", "-D", imgs.to_str().unwrap(), "-o", "z.log", "-v0"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(imgs.join("z.log")).unwrap(), "");
}
