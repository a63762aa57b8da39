//! Parser tests over the whole CRIU option list.

use super::table::{ArgKind, OPTIONS};
use super::*;
use crate::opts::{FinalState, Opts};

fn items(words: &[&str]) -> Vec<(String, bool, Option<String>)> {
    parse(words.iter().map(|s| s.to_string()))
        .unwrap_or_else(|e| panic!("{words:?}: {e}"))
        .items
        .into_iter()
        .map(|i| (i.spec.long.to_string(), i.negated, i.value))
        .collect()
}

fn one(long: &str, negated: bool, value: Option<&str>) -> Vec<(String, bool, Option<String>)> {
    vec![(long.to_string(), negated, value.map(str::to_string))]
}

/// A value each option accepts (what `Opts::apply` validates).
fn sample(long: &str) -> &'static str {
    match long {
        "tree" | "close" | "timeout" | "port" | "ps-socket" | "status-fd" | "verbosity" => "4",
        "ghost-limit" => "10M",
        "pre-dump-mode" => "read",
        "file-validation" => "buildid",
        "network-lock" => "nftables",
        "empty-ns" => "net",
        "manage-cgroups" => "full",
        "cpu-cap" => "fpu,ins",
        "join-ns" => "net:/proc/1/ns/net",
        "veth-pair" => "eth0=veth0",
        "ext-mount-map" => "/mnt:mnt",
        "cgroup-root" => "cpu:/newroot",
        "ext-unix-sk" => "1234",
        "inherit-fd" => "fd[3]:some/file",
        _ => "/some/value",
    }
}

#[test]
fn every_long_option_parses_in_every_form() {
    for spec in OPTIONS {
        let l = format!("--{}", spec.long);
        match spec.kind {
            ArgKind::Flag => assert_eq!(items(&[&l]), one(spec.long, false, None), "{l}"),
            ArgKind::Bool => {
                assert_eq!(items(&[&l]), one(spec.long, false, None), "{l}");
                let n = format!("--no-{}", spec.long);
                assert_eq!(items(&[&n]), one(spec.long, true, None), "{n}");
            }
            ArgKind::Required => {
                let v = sample(spec.long);
                assert_eq!(items(&[&l, v]), one(spec.long, false, Some(v)), "{l} {v}");
                assert_eq!(items(&[&format!("{l}={v}")]), one(spec.long, false, Some(v)), "{l}={v}");
                assert!(parse([l.clone()]).is_err(), "{l} without a value must fail");
            }
            ArgKind::Optional => {
                let v = sample(spec.long);
                assert_eq!(items(&[&format!("{l}={v}")]), one(spec.long, false, Some(v)), "{l}={v}");
                if spec.long != "verbosity" {
                    assert_eq!(items(&[&l]), one(spec.long, false, None), "{l}");
                }
            }
        }
    }
}

#[test]
fn every_short_option_parses() {
    for spec in OPTIONS {
        let Some(c) = spec.short else { continue };
        let s = format!("-{c}");
        match spec.kind {
            ArgKind::Flag | ArgKind::Bool => assert_eq!(items(&[&s]), one(spec.long, false, None), "{s}"),
            ArgKind::Required => {
                let v = sample(spec.long);
                assert_eq!(items(&[&s, v]), one(spec.long, false, Some(v)), "{s} {v}");
                assert_eq!(items(&[&format!("{s}{v}")]), one(spec.long, false, Some(v)), "{s}{v}");
            }
            ArgKind::Optional => {
                let v = sample(spec.long);
                assert_eq!(items(&[&format!("{s}{v}")]), one(spec.long, false, Some(v)), "{s}{v}");
            }
        }
    }
}

#[test]
fn every_option_applies_to_opts() {
    for spec in OPTIONS {
        if matches!(spec.long, "ms") {
            continue;
        }
        let mut o = Opts::default();
        let value = match spec.kind {
            ArgKind::Required | ArgKind::Optional => Some(sample(spec.long).to_string()),
            _ => None,
        };
        o.apply(&Item { spec, negated: false, value }).unwrap_or_else(|e| panic!("--{}: {e}", spec.long));
        if spec.kind == ArgKind::Bool {
            o.apply(&Item { spec, negated: true, value: None }).unwrap_or_else(|e| panic!("--no-{}: {e}", spec.long));
        }
    }
}

fn opts_of(words: &[&str]) -> Opts {
    let p = parse(words.iter().map(|s| s.to_string())).unwrap();
    let mut o = Opts::default();
    for i in &p.items {
        o.apply(i).unwrap();
    }
    o
}

#[test]
fn verbosity_forms() {
    assert_eq!(opts_of(&[]).log_level, 2);
    assert_eq!(opts_of(&["-v"]).log_level, 3);
    assert_eq!(opts_of(&["-vv"]).log_level, 4);
    assert_eq!(opts_of(&["-vvv"]).log_level, 5);
    assert_eq!(opts_of(&["-v4"]).log_level, 4);
    assert_eq!(opts_of(&["-v0"]).log_level, 0);
    assert_eq!(opts_of(&["--verbosity=1"]).log_level, 1);
    assert_eq!(opts_of(&["--verbosity"]).log_level, 3);
    assert_eq!(opts_of(&["-v4", "-v"]).log_level, 5);
    assert_eq!(opts_of(&["-v", "-v"]).log_level, 4);
    assert_eq!(opts_of(&["-vvv"]).effective_log_level(), 4);
    // -v does not swallow the next word.
    let p = parse(["-v", "dump"]).unwrap();
    assert_eq!(p.command.as_deref(), Some("dump"));
}

#[test]
fn order_decides_between_negations_and_final_state() {
    assert!(opts_of(&["--shell-job", "--no-shell-job"]).shell_job == false);
    assert!(opts_of(&["--no-shell-job", "-j"]).shell_job);
    assert_eq!(opts_of(&["-R", "-s"]).final_state, FinalState::Stopped);
    assert_eq!(opts_of(&["-s", "-R"]).final_state, FinalState::Alive);
    assert_eq!(opts_of(&["-D", "/a", "--images-dir=/b"]).imgs_dir.unwrap(), std::path::PathBuf::from("/b"));
}

#[test]
fn commands_args_and_permutation() {
    let p = parse(["-t", "5", "dump", "-D", "/d", "-o", "-"]).unwrap();
    assert_eq!(p.command.as_deref(), Some("dump"));
    assert!(p.args.is_empty());
    assert_eq!(p.items.len(), 3);
    assert_eq!(p.items[2].value.as_deref(), Some("-"));

    let p = parse(["cpuinfo", "dump"]).unwrap();
    assert_eq!(p.args, ["dump"]);

    let p = parse(["restore", "--exec-cmd", "--", "/bin/prog", "-x", "--y"]).unwrap();
    assert_eq!(p.command.as_deref(), Some("restore"));
    assert_eq!(p.args, ["/bin/prog", "-x", "--y"]);

    // Unambiguous prefixes of long options work, as with getopt_long.
    let p = parse(["--leave-runn"]).unwrap();
    assert_eq!(p.items[0].spec.long, "leave-running");
}

#[test]
fn bad_input_is_one_line() {
    for words in [&["--bogus"][..], &["-Z"], &["--tree"], &["--leave-running=yes"]] {
        let e = parse(words.iter().map(|s| s.to_string())).unwrap_err().0;
        assert!(!e.contains('\n'), "{words:?}: {e}");
        assert!(!e.is_empty());
    }
    assert_eq!(parse(["--bogus"]).unwrap_err().0, "unknown option '--bogus'");
    let mut o = Opts::default();
    let spec = table::find("tree").unwrap();
    let e = o.apply(&Item { spec, negated: false, value: Some("abc".into()) }).unwrap_err();
    assert_eq!(e.to_string(), "invalid argument for --tree: abc");
    let e = o.apply(&Item { spec, negated: false, value: Some("0".into()) }).unwrap_err();
    assert_eq!(e.to_string(), "invalid argument for --tree: 0");
}

#[test]
fn usage_lists_every_option() {
    let u = usage();
    for spec in OPTIONS {
        assert!(u.contains(&format!("--{}", spec.long)) || u.contains(&format!("--[no-]{}", spec.long)), "{}", spec.long);
    }
}
