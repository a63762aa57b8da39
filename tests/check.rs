//! `criu check` end to end: runs the built binary on this machine's kernel
//! (Linux 6.18, root) and expects the kernel's real answers.

mod common;

use std::process::Output;

use common::text;

const GOOD: &str = "Looks good.\n";
const MAYBE: &str = "Looks good but some kernel features are missing\n\
                     which, depending on your process tree, may cause\n\
                     dump or restore failure.\n";

/// The features this machine's kernel must have (see the task's machine
/// facts: soft-dirty is compiled out, but PAGEMAP_SCAN + uffd-wp async
/// make memory tracking work).
const REQUIRED: [&str; 7] =
    ["mem_dirty_track", "uffd", "uffd-noncoop", "pidfd_store", "ns_pid", "clone3_set_tid", "pagemap_scan"];

fn criu(args: &[&str]) -> Output {
    common::criu_cmd().args(args).env_remove("CRIU_CONFIG_FILE").arg("--no-default-config").output().expect("run criu")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

#[test]
fn plain_check_looks_good() {
    let o = criu(&["check"]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(out, GOOD, "stderr: {err}");
    assert_eq!(code(&o), 0);
    assert!(!err.contains("Error"), "{err}");
}

#[test]
fn feature_list_prints_every_name() {
    let o = criu(&["check", "--feature", "list"]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    let names: Vec<&str> = out.split_whitespace().collect();
    for want in REQUIRED
        .iter()
        .chain(&["timens", "get_rseq_conf", "openat2", "kcmp_epoll", "move_mount_set_group", "memfd_hugetlb", "tun"])
        .chain(&["userns", "fdinfo_lock", "seccomp_suspend", "seccomp_filters", "autofs", "compat_cr", "sk_unix_file"])
        .chain(&["nsid", "mnt_id", "external_net_ns", "pagemap_scan_guard_pages"])
    {
        assert!(names.contains(want), "{want} missing from {out}");
    }
    assert!(!names.contains(&"list"));
}

#[test]
fn required_features_are_supported() {
    for name in REQUIRED {
        let o = criu(&["check", "--feature", name]);
        assert_eq!(text(&o.stdout), format!("{name} is supported\n"), "stderr: {}", text(&o.stderr));
        assert_eq!(code(&o), 0, "{name}");
    }
}

#[test]
fn several_features_at_once() {
    let o = criu(&["check", "--feature", "uffd", "--feature", "ns_pid", "--feature", "timens"]);
    assert_eq!(text(&o.stdout), "uffd is supported\nns_pid is supported\ntimens is supported\n");
    assert_eq!(code(&o), 0);
}

#[test]
fn unknown_feature_is_an_error() {
    let o = criu(&["check", "--feature", "no_such_feature"]);
    assert_eq!(code(&o), 1);
    assert_eq!(text(&o.stdout), "");
    let err = text(&o.stderr);
    assert!(err.contains("Error") && err.contains("Unknown feature no_such_feature"), "{err}");

    // Validated before anything is checked.
    let o = criu(&["check", "--feature", "uffd", "--feature", "nope"]);
    assert_eq!(code(&o), 1);
    assert_eq!(text(&o.stdout), "");
}

#[test]
fn every_feature_answers_consistently() {
    let list = criu(&["check", "--feature", "list"]);
    let out = text(&list.stdout);
    for name in out.split_whitespace() {
        let o = criu(&["check", "--feature", name]);
        let stdout = text(&o.stdout);
        match code(&o) {
            0 => assert_eq!(stdout, format!("{name} is supported\n")),
            1 => assert_eq!(stdout, "", "{name}"),
            c => panic!("{name}: exit {c}, stderr {}", text(&o.stderr)),
        }
    }
}

fn assert_categories_ran(args: &[&str]) {
    let o = criu(args);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(!err.contains("Does not look good"), "{err}");
    match code(&o) {
        0 => assert_eq!(out, GOOD),
        1 => assert_eq!(out, MAYBE, "stderr: {err}"),
        c => panic!("exit {c}: {out} {err}"),
    }
}

#[test]
fn extra_and_experimental_categories() {
    assert_categories_ran(&["check", "--extra"]);
    assert_categories_ran(&["check", "--experimental"]);
}

#[test]
fn all_categories() {
    assert_categories_ran(&["check", "--all"]);
    // This implementation can't C/R 32-bit tasks (category 3), so --all
    // always reports "Looks good but ...", with CRIU's warning.
    let o = criu(&["check", "--all"]);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("can't C/R compatible tasks"));
}

#[test]
fn verbose_check_logs_each_category_one_probe() {
    let o = criu(&["check", "-v4"]);
    assert_eq!(text(&o.stdout), GOOD);
    let err = text(&o.stderr);
    for probe in [
        "map_files",
        "sock_diag",
        "ns_last_pid",
        "kcmp",
        "ptrace_seize",
        "ptrace_peeksiginfo",
        "special_mapping_mremap",
        "get_rseq_conf",
    ] {
        assert!(err.contains(&format!("Checking {probe}")), "{probe}: {err}");
    }
}
