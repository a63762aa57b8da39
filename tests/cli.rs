//! The `criu` binary's command line from the outside: versions, help, and
//! bad input that must fail with one clear line, exit code 1 and nothing
//! written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{criu42, text};

fn criu(cwd: &Path, args: &[&str]) -> Output {
    common::criu_cmd().args(args).current_dir(cwd).env("HOME", cwd).env_remove("CRIU_CONFIG_FILE").output().unwrap()
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
    assert!(text(&out.stderr).contains("default.conf:1: unrecognized option '--not-an-option'"), "{}", text(&out.stderr));
}

#[test]
fn bad_input_fails_with_one_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let d = imgs.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["dump", "-D", d, "-o", "dump.log"], "Error: dump needs -t/--tree PID"),
        (&["pre-dump", "-D", d], "Error: pre-dump needs -t/--tree PID"),
        (&["dump", "-t", "abc", "-D", d], "Error: invalid argument for -t: abc"),
        (&["dump", "--tree", "abc", "-D", d], "Error: invalid argument for --tree: abc"),
        (&["dump", "-t", "1", "-D", "/nonexistent/imgs"], "Error: images directory /nonexistent/imgs does not exist"),
        (&["restore", "-D", d, "-W", "/nonexistent/w"], "Error: work directory /nonexistent/w does not exist"),
        (&["dump", "-t", "1", "-D", d, "--page-server"], "Error: option --page-server is not supported yet"),
        (&["restore", "-D", d, "--lsm-profile", "apparmor:x"], "Error: option --lsm-profile is not supported yet"),
        (&["dump", "-t", "1", "-D", d, "--external", "file[1:2]"], "Error: option --external file[1:2] is not supported yet"),
        (&["restore", "-D", d, "-d", "--lazy-pages", "-o", "r.log"], "Error: option --lazy-pages is not supported yet"),
        (&["restore", "-D", d, "-S"], "Error: --restore-sibling only makes sense with --restore-detached"),
        (&["dump", "-t", "1", "-D", d, "--ms"], "Error: --ms is deprecated"),
        (&["restore", "-D", d, "--manage-cgroups=bogus"], "Error: Unknown cgroups mode `bogus' selected"),
        (&["dump", "-D", d, "-t", "abc"], "Error: invalid argument for -t: abc"),
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
fn command_word_mistakes_print_criu_short_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    for (args, want) in [
        (&["frobnicate", "-D", d][..], "Error: unknown command: frobnicate\n"),
        (&["-D", d], "Error: command is required\n"),
        (&["check", "extra-word"], "Error: excessive parameter for command check\n"),
        (&["check", "a", "b"], "Error: excessive parameters for command check\n"),
        (&["cpuinfo", "-D", d], "Error: cpuinfo requires an action: dump or check\n"),
    ] {
        let out = criu(tmp.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), want, "{args:?}");
        assert!(text(&out.stdout).starts_with("\nUsage:\n"), "{args:?}");
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

/// The real CRIU 4.2 binary, when this machine has it.
fn run_bin(bin: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin).args(args).current_dir(cwd).env("HOME", cwd).env_remove("CRIU_CONFIG_FILE").env_remove("POSIXLY_CORRECT").output().unwrap()
}

#[test]
fn getopt_errors_print_what_glibc_and_criu_print() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_criu"));
    let prog = bin.to_str().unwrap();
    for (args, msg) in [
        (&["check", "--bogus"][..], "unrecognized option '--bogus'"),
        (&["check", "-Z"], "invalid option -- 'Z'"),
        (&["check", "-t"], "option requires an argument -- 't'"),
        (&["check", "--tree"], "option '--tree' requires an argument"),
        (&["check", "--leave-running=yes"], "option '--leave-running' doesn't allow an argument"),
        (&["check", "--tls-c"], "option '--tls-c' is ambiguous; possibilities: '--tls-cacert' '--tls-cacrl' '--tls-cert'"),
    ] {
        let out = run_bin(bin, tmp.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), format!("{prog}: {msg}\n"), "{args:?}");
        let usage = text(&out.stdout);
        assert!(usage.starts_with("\nUsage:\n  criu dump|pre-dump -t PID [<options>]\n"), "{args:?}: {usage}");
        assert!(usage.ends_with("\nTry -h|--help for more info\n"), "{args:?}: {usage}");
    }
}

#[test]
fn test_tools_feature_probe_argv_works() {
    // How test tools probe a feature: `-verbosity=0` is -v with the
    // argument "erbosity=0", level atoi("erbosity=0") = 0.
    let tmp = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_criu"));
    let plain = run_bin(bin, tmp.path(), &["check", "--no-default-config", "--feature", "mem_dirty_track"]);
    let odd = run_bin(bin, tmp.path(), &["check", "--no-default-config", "-verbosity=0", "--feature", "mem_dirty_track"]);
    assert_eq!(odd.status.code(), plain.status.code(), "{}", text(&odd.stderr));
    assert!(!text(&odd.stderr).contains("invalid argument"), "{}", text(&odd.stderr));
    if plain.status.success() {
        assert!(odd.status.success());
    } else {
        eprintln!("SKIPPED (partly): mem_dirty_track is not supported by this kernel: {}", text(&plain.stderr));
    }
    // A feature every kernel we run on has: the odd argv succeeds.
    let out = run_bin(bin, tmp.path(), &["check", "--no-default-config", "-verbosity=0", "--feature", "timens"]);
    if Path::new("/proc/self/ns/time").exists() {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

/// Our binary and CRIU 4.2's on the same odd argv of `criu check`: the same
/// exit code; for getopt errors the same stderr (but for argv[0]) and
/// stdout; for bad values the same message after CRIU's `Error (file:line): `.
#[test]
fn odd_argv_matches_the_real_criu_4_2() {
    let Some(real) = criu42() else {
        eprintln!("SKIPPED: no CRIU 4.2 binary at ../shared/tools/criu-4.2/criu");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ours = Path::new(env!("CARGO_BIN_EXE_criu"));
    let probe = run_bin(&real, tmp.path(), &["check", "--no-default-config", "--feature", "timens"]);
    if !probe.status.success() {
        eprintln!("SKIPPED: CRIU 4.2 does not run here: {}", text(&probe.stderr));
        return;
    }
    let accepted: &[&[&str]] = &[
        &["-verbosity=0"], &["-vfoo"], &["--verbosity="], &["-v0"], &["--timeout", "5x"], &["--status-fd", "5x"],
        &["--ghost-limit", "1k"], &["--pre-dump-mode", "splice"], &["--manage-cgroups=ignore"], &["--manage-cgroups", "full"][..1],
        &["-x12"], &["--restore-d"], &["--no-restore-d"], &["--da"], &["--port", "70000"], &["--tre", "5"], &["-t", "5x"],
        &["--external", "bogus"], &["--enable-fs", "hugetlbfs"], &["--skip-mnt", "/x"], &["--tls"], &["--no-default"],
        &["-jlSd"], &["-t5", "-R"], &["--close", "99"], &["--ext-unix-sk="],
    ];
    for extra in accepted {
        let mut args = vec!["check", "--no-default-config"];
        args.extend_from_slice(extra);
        args.extend(["--feature", "timens"]);
        let (a, b) = (run_bin(ours, tmp.path(), &args), run_bin(&real, tmp.path(), &args));
        assert_eq!(a.status.code(), b.status.code(), "{args:?}: ours {} / criu {}", text(&a.stderr), text(&b.stderr));
        assert_eq!(a.status.code(), Some(0), "{args:?}: {}", text(&a.stderr));
    }
    let getopt_errors: &[&[&str]] = &[
        &["--bogus=1"], &["-jZ"], &["-:"], &["--tls-c=1"], &["--no-"], &["--no-d"], &["--d"], &["--tr", "5"], &["--restore-"],
        &["-t"], &["--tree"], &["--j"], &["--leave-running=yes"], &["--no-sh=1"], &["--x"], &["--=x"], &["--m"], &["--g"],
    ];
    for extra in getopt_errors {
        let mut args = vec!["check", "--no-default-config", "--feature", "timens"];
        args.extend_from_slice(extra);
        let (a, b) = (run_bin(ours, tmp.path(), &args), run_bin(&real, tmp.path(), &args));
        assert_eq!(a.status.code(), b.status.code(), "{args:?}");
        let theirs = text(&b.stderr).replace(real.to_str().unwrap(), ours.to_str().unwrap());
        assert_eq!(text(&a.stderr), theirs, "{args:?}");
        assert_eq!(text(&a.stdout), text(&b.stdout), "{args:?}");
    }
    let value_errors: &[&[&str]] = &[
        &["-t", "abc"], &["--tree", "abc"], &["--tree=0"], &["-t0"], &["--port", "0"], &["--port", "65536"],
        &["--status-fd", "abc"], &["--pre-dump-mode", "bogus"], &["--empty-ns=pid"], &["--network-lock", "bogus"],
        &["--join-ns", "bogus"], &["--veth-pair", "x"], &["-M", "x"], &["--inherit-fd", "x"], &["--ms"],
    ];
    for extra in value_errors {
        let mut args = vec!["check", "--no-default-config"];
        args.extend_from_slice(extra);
        args.extend(["--feature", "timens"]);
        let (a, b) = (run_bin(ours, tmp.path(), &args), run_bin(&real, tmp.path(), &args));
        assert_eq!(a.status.code(), b.status.code(), "{args:?}");
        let theirs = text(&b.stderr);
        let msg = theirs.lines().find_map(|l| l.split_once("): ").map(|(_, m)| m.to_string())).unwrap_or_default();
        assert!(!msg.is_empty(), "{args:?}: {theirs}");
        assert!(text(&a.stderr).contains(&msg), "{args:?}: ours {:?}, criu {msg:?}", text(&a.stderr));
    }
}
