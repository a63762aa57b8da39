//! Parser tests over the whole CRIU 4.2 option list. The expected values
//! are written out here from CRIU's `long_opts`/optstring and glibc's
//! getopt_long rules (and what the real 4.2 binary printed), not derived
//! from our table, so a wrong table row fails them.

use super::table::{ArgKind, Support, OPTIONS};
use super::*;
use crate::opts::{FinalState, Opts};

/// The shape of an option in CRIU 4.2's `long_opts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// no_argument.
    No,
    /// BOOL_OPT: `--X` and `--no-X`, no argument.
    Bool,
    /// required_argument.
    Req,
    /// optional_argument.
    Opt,
}
use Shape::{Bool, No, Opt, Req};

/// CRIU 4.2's options: long name, short form, shape.
const CRIU_42: &[(&str, Option<char>, Shape)] = &[
    ("tree", Some('t'), Req),
    ("leave-stopped", Some('s'), No),
    ("leave-running", Some('R'), No),
    ("restore-detached", Some('d'), Bool),
    ("restore-sibling", Some('S'), Bool),
    ("daemon", None, Bool),
    ("images-dir", Some('D'), Req),
    ("work-dir", Some('W'), Req),
    ("log-file", Some('o'), Req),
    ("join-ns", Some('J'), Req),
    ("root", Some('r'), Req),
    ("ext-unix-sk", Some('x'), Opt),
    ("help", Some('h'), No),
    ("tcp-established", None, Bool),
    ("close", None, Req),
    ("log-pid", None, Bool),
    ("version", Some('V'), No),
    ("evasive-devices", None, Bool),
    ("pidfile", None, Req),
    ("veth-pair", None, Req),
    ("action-script", None, Req),
    ("link-remap", None, Bool),
    ("shell-job", Some('j'), Bool),
    ("file-locks", Some('l'), Bool),
    ("page-server", None, Bool),
    ("address", None, Req),
    ("port", None, Req),
    ("prev-images-dir", None, Req),
    ("ms", None, No),
    ("track-mem", None, Bool),
    ("auto-dedup", None, Bool),
    ("libdir", Some('L'), Req),
    ("cpu-cap", None, Opt),
    ("force-irmap", None, Bool),
    ("ext-mount-map", Some('M'), Req),
    ("exec-cmd", None, No),
    ("manage-cgroups", None, Opt),
    ("cgroup-root", None, Req),
    ("inherit-fd", None, Req),
    ("feature", None, Req),
    ("skip-mnt", None, Req),
    ("enable-fs", None, Req),
    ("enable-external-sharing", None, No),
    ("enable-external-masters", None, No),
    ("freeze-cgroup", None, Req),
    ("ghost-limit", None, Req),
    ("irmap-scan-path", None, Req),
    ("lsm-profile", None, Req),
    ("timeout", None, Req),
    ("external", None, Req),
    ("empty-ns", None, Req),
    ("lazy-pages", None, No),
    ("extra", None, Bool),
    ("experimental", None, Bool),
    ("all", None, No),
    ("cgroup-props", None, Req),
    ("cgroup-props-file", None, Req),
    ("cgroup-dump-controller", None, Req),
    ("skip-in-flight", None, Bool),
    ("deprecated", None, Bool),
    ("display-stats", None, Bool),
    ("weak-sysctls", None, Bool),
    ("status-fd", None, Req),
    ("tcp-close", None, Bool),
    ("verbosity", Some('v'), Opt),
    ("ps-socket", None, Req),
    ("stream", None, Bool),
    ("config", None, Req),
    ("no-default-config", None, No),
    ("tls-cacert", None, Req),
    ("tls-cacrl", None, Req),
    ("tls-cert", None, Req),
    ("tls-key", None, Req),
    ("tls", None, Bool),
    ("tls-no-cn-verify", None, No),
    ("cgroup-yard", None, Req),
    ("pre-dump-mode", None, Req),
    ("file-validation", None, Req),
    ("skip-file-rwx-check", None, Bool),
    ("lsm-mount-context", None, Req),
    ("network-lock", None, Req),
    ("mntns-compat-mode", None, Bool),
    ("unprivileged", None, Bool),
    ("ghost-fiemap", None, Bool),
    ("allow-uprobes", None, Bool),
];

type Found = Vec<(String, bool, Option<String>)>;

fn run(words: &[&str]) -> (Found, Vec<String>, Option<String>) {
    let (p, err) = parse_partial(words.iter().map(|s| s.to_string()));
    let found = p.items.into_iter().map(|i| (i.spec.long.to_string(), i.negated, i.value)).collect();
    let operands = p.command.into_iter().chain(p.args).collect();
    (found, operands, err.map(|e| e.0))
}

fn items(words: &[&str]) -> Found {
    let (found, _, err) = run(words);
    assert_eq!(err, None, "{words:?}");
    found
}

fn one(long: &str, negated: bool, value: Option<&str>) -> Found {
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
        "external" => "net[4026531992]:extRootNetNS",
        _ => "/some/value",
    }
}

#[test]
fn the_table_is_criu_4_2s() {
    assert_eq!(OPTIONS.len(), CRIU_42.len());
    for (long, short, shape) in CRIU_42 {
        let spec = table::find(long).unwrap_or_else(|| panic!("--{long} missing"));
        assert_eq!(spec.short, *short, "--{long}");
        let kind = match shape {
            No => ArgKind::Flag,
            Bool => ArgKind::Bool,
            Req => ArgKind::Required,
            Opt => ArgKind::Optional,
        };
        assert_eq!(spec.kind, kind, "--{long}");
    }
    // getopt scans the long options in CRIU's order.
    let order: Vec<&str> = CRIU_42.iter().map(|(l, _, _)| *l).collect();
    assert_eq!(table::GETOPT_ORDER, order.as_slice());
}

#[test]
fn every_long_form_of_every_option() {
    for (long, _, shape) in CRIU_42 {
        let l = format!("--{long}");
        let v = sample(long);
        match shape {
            No => {
                assert_eq!(items(&[&l]), one(long, false, None), "{l}");
                let (_, _, e) = run(&[&format!("{l}=x")]);
                assert_eq!(e.unwrap(), format!("option '{l}' doesn't allow an argument"));
            }
            Bool => {
                assert_eq!(items(&[&l]), one(long, false, None), "{l}");
                let n = format!("--no-{long}");
                assert_eq!(items(&[&n]), one(long, true, None), "{n}");
                let (_, _, e) = run(&[&format!("{n}=1")]);
                assert_eq!(e.unwrap(), format!("option '{n}' doesn't allow an argument"));
            }
            Req => {
                assert_eq!(items(&[&l, v]), one(long, false, Some(v)), "{l} {v}");
                assert_eq!(items(&[&format!("{l}={v}")]), one(long, false, Some(v)), "{l}={v}");
                // The next word is the argument whatever it looks like.
                assert_eq!(items(&[&l, "--tree"]), one(long, false, Some("--tree")), "{l} --tree");
                assert_eq!(items(&[&format!("{l}=")]), one(long, false, Some("")), "{l}=");
                let (found, _, e) = run(&["-j", &l]);
                assert_eq!(found, one("shell-job", false, None), "options before the error are kept");
                assert_eq!(e.unwrap(), format!("option '{l}' requires an argument"));
            }
            Opt => {
                assert_eq!(items(&[&format!("{l}={v}")]), one(long, false, Some(v)), "{l}={v}");
                assert_eq!(items(&[&format!("{l}=")]), one(long, false, Some("")), "{l}=");
                // An optional argument is never the next word.
                let (found, operands, e) = run(&[&l, v]);
                assert_eq!((found, operands, e), (one(long, false, None), vec![v.to_string()], None), "{l} {v}");
            }
        }
    }
}

#[test]
fn every_short_form_of_every_option() {
    for (long, short, shape) in CRIU_42 {
        let Some(c) = short else { continue };
        let s = format!("-{c}");
        let v = sample(long);
        match shape {
            No | Bool => {
                assert_eq!(items(&[&s]), one(long, false, None), "{s}");
                // Clustered with a flag on either side.
                if !matches!(c, 'h' | 'V') {
                    let mut want = one("shell-job", false, None);
                    want.extend(one(long, false, None));
                    assert_eq!(items(&[&format!("-j{c}")]), want, "-j{c}");
                }
            }
            Req => {
                assert_eq!(items(&[&s, v]), one(long, false, Some(v)), "{s} {v}");
                assert_eq!(items(&[&format!("{s}{v}")]), one(long, false, Some(v)), "{s}{v}");
                let mut want = one("shell-job", false, None);
                want.extend(one(long, false, Some(v)));
                assert_eq!(items(&[&format!("-j{c}"), v]), want, "-j{c} {v}");
                assert_eq!(items(&[&format!("-j{c}{v}")]), want, "-j{c}{v}");
                let (_, _, e) = run(&[&s]);
                assert_eq!(e.unwrap(), format!("option requires an argument -- '{c}'"));
            }
            Opt => {
                assert_eq!(items(&[&format!("{s}{v}")]), one(long, false, Some(v)), "{s}{v}");
                let (found, operands, _) = run(&[&s, v]);
                assert_eq!((found, operands), (one(long, false, None), vec![v.to_string()]), "{s} {v}");
            }
        }
    }
    // Every other character is an invalid option.
    for c in ['a', 'Z', 'p', 'f', ':', '?', 'w'] {
        let (_, _, e) = run(&[&format!("-{c}")]);
        assert_eq!(e.unwrap(), format!("invalid option -- '{c}'"));
    }
}

/// argv, then the options getopt gives, the non-option words, and the error.
type Case = (&'static [&'static str], &'static [(&'static str, bool, Option<&'static str>)], &'static [&'static str], Option<&'static str>);

const CASES: &[Case] = &[
    // Test tools probe features like this: -v with the argument "erbosity=0".
    (&["check", "--no-default-config", "-verbosity=0", "--feature", "mem_dirty_track"],
        &[("no-default-config", false, None), ("verbosity", false, Some("erbosity=0")), ("feature", false, Some("mem_dirty_track"))], &["check"], None),
    (&["-vvv"], &[("verbosity", false, Some("vv"))], &[], None),
    (&["-v", "4"], &[("verbosity", false, None)], &["4"], None),
    (&["-v4", "-v"], &[("verbosity", false, Some("4")), ("verbosity", false, None)], &[], None),
    (&["-dSsRj"], &[("restore-detached", false, None), ("restore-sibling", false, None), ("leave-stopped", false, None), ("leave-running", false, None), ("shell-job", false, None)], &[], None),
    (&["-jt5"], &[("shell-job", false, None), ("tree", false, Some("5"))], &[], None),
    (&["-t", "--"], &[("tree", false, Some("--"))], &[], None),
    (&["-jZ", "-R"], &[("shell-job", false, None)], &[], Some("invalid option -- 'Z'")),
    (&["-x", "12"], &[("ext-unix-sk", false, None)], &["12"], None),
    // Unambiguous abbreviations, exact names that prefix others.
    (&["--tre", "5"], &[("tree", false, Some("5"))], &[], None),
    (&["--leave-r"], &[("leave-running", false, None)], &[], None),
    (&["--restore-d"], &[("restore-detached", false, None)], &[], None),
    (&["--no-restore-s"], &[("restore-sibling", true, None)], &[], None),
    (&["--da"], &[("daemon", false, None)], &[], None),
    (&["--tls"], &[("tls", false, None)], &[], None),
    (&["--ms"], &[("ms", false, None)], &[], None),
    (&["--no-default"], &[("no-default-config", false, None)], &[], None),
    (&["--verb=2"], &[("verbosity", false, Some("2"))], &[], None),
    (&["--ext-unix-sk"], &[("ext-unix-sk", false, None)], &[], None),
    (&["--manage-cgroups", "full"], &[("manage-cgroups", false, None)], &["full"], None),
    // Ambiguities, listed in CRIU's table order (seen from the 4.2 binary).
    (&["--tr", "5"], &[], &[], Some("option '--tr' is ambiguous; possibilities: '--tree' '--track-mem'")),
    (&["--tls-c=1"], &[], &[], Some("option '--tls-c=1' is ambiguous; possibilities: '--tls-cacert' '--tls-cacrl' '--tls-cert'")),
    (&["--d"], &[], &[], Some("option '--d' is ambiguous; possibilities: '--daemon' '--deprecated' '--display-stats'")),
    (&["--restore-"], &[], &[], Some("option '--restore-' is ambiguous; possibilities: '--restore-detached' '--restore-sibling'")),
    (&["--g"], &[], &[], Some("option '--g' is ambiguous; possibilities: '--ghost-limit' '--ghost-fiemap'")),
    (&["--m"], &[], &[], Some("option '--m' is ambiguous; possibilities: '--ms' '--manage-cgroups' '--mntns-compat-mode'")),
    // --no-daemon has --no-restore-detached's flag and value: not listed.
    (&["--no-d"], &[], &[], Some("option '--no-d' is ambiguous; possibilities: '--no-daemon' '--no-deprecated' '--no-display-stats' '--no-default-config'")),
    (&["--no-re"], &[], &[], Some("option '--no-re' is ambiguous; possibilities: '--no-restore-detached' '--no-restore-sibling'")),
    // The whole --no- family as the 4.2 binary lists it: no --no-daemon.
    (&["--no-"], &[], &[], Some("option '--no-' is ambiguous; possibilities: '--no-restore-detached' '--no-restore-sibling' \
        '--no-tcp-established' '--no-log-pid' '--no-evasive-devices' '--no-link-remap' '--no-shell-job' '--no-file-locks' \
        '--no-page-server' '--no-track-mem' '--no-auto-dedup' '--no-force-irmap' '--no-extra' '--no-experimental' \
        '--no-skip-in-flight' '--no-deprecated' '--no-display-stats' '--no-weak-sysctls' '--no-tcp-close' '--no-stream' \
        '--no-default-config' '--no-tls' '--no-skip-file-rwx-check' '--no-mntns-compat-mode' '--no-unprivileged' \
        '--no-ghost-fiemap' '--no-allow-uprobes'")),
    (&["--r"], &[], &[], Some("option '--r' is ambiguous; possibilities: '--restore-detached' '--restore-sibling' '--root'")),
    // Unknown and misused options.
    (&["--bogus=1"], &[], &[], Some("unrecognized option '--bogus=1'")),
    (&["--x"], &[], &[], Some("unrecognized option '--x'")),
    (&["--leave-running=yes"], &[], &[], Some("option '--leave-running' doesn't allow an argument")),
    (&["--no-sh=1"], &[], &[], Some("option '--no-shell-job' doesn't allow an argument")),
    (&["--j"], &[], &[], Some("option '--join-ns' requires an argument")),
    // Permutation: non-options go after the options; `--` ends them.
    (&["-t", "5", "dump", "-D", "/d", "-o", "-"], &[("tree", false, Some("5")), ("images-dir", false, Some("/d")), ("log-file", false, Some("-"))], &["dump"], None),
    (&["cpuinfo", "dump", "-v"], &[("verbosity", false, None)], &["cpuinfo", "dump"], None),
    (&["restore", "--exec-cmd", "--", "/bin/prog", "-x", "--y"], &[("exec-cmd", false, None)], &["restore", "/bin/prog", "-x", "--y"], None),
    (&["-", "check"], &[], &["-", "check"], None),
    // -h and -V end parsing where they stand (CRIU acts on them at once).
    (&["-jh", "--bogus"], &[("shell-job", false, None), ("help", false, None)], &[], None),
    (&["--vers", "--bogus"], &[("version", false, None)], &[], None),
    (&["--bogus", "-V"], &[], &[], Some("unrecognized option '--bogus'")),
];

#[test]
fn getopt_cases() {
    for (argv, want_items, want_operands, want_err) in CASES {
        let (found, operands, err) = run(argv);
        let want: Found = want_items.iter().map(|(l, n, v)| (l.to_string(), *n, v.map(str::to_string))).collect();
        assert_eq!(found, want, "{argv:?}");
        assert_eq!(operands, *want_operands, "{argv:?}");
        assert_eq!(err.as_deref(), *want_err, "{argv:?}");
    }
}

#[test]
fn posixly_correct_stops_at_the_first_non_option() {
    let words: Vec<String> = ["-j", "dump", "-t", "5"].iter().map(|s| s.to_string()).collect();
    let g = getopt::getopt(&words, true);
    assert_eq!(g.items.len(), 1);
    assert_eq!(g.operands, ["dump", "-t", "5"]);
    let g = getopt::getopt(&words, false);
    assert_eq!(g.items.len(), 2);
    assert_eq!(g.operands, ["dump"]);
}

fn opts_of(words: &[&str]) -> Result<Opts, String> {
    let p = parse(words.iter().map(|s| s.to_string())).map_err(|e| e.0)?;
    let mut o = Opts::default();
    for i in &p.items {
        o.apply(i).map_err(|e| e.to_string())?;
    }
    Ok(o)
}

fn ok(words: &[&str]) -> Opts {
    opts_of(words).unwrap_or_else(|e| panic!("{words:?}: {e}"))
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
        o.apply(&Item::long(spec, false, value)).unwrap_or_else(|e| panic!("--{}: {e}", spec.long));
        assert_eq!(o.unsupported.is_empty(), spec.support != Support::NotYet, "--{}: {:?}", spec.long, o.unsupported);
        if spec.kind == ArgKind::Bool {
            let mut o = Opts::default();
            o.apply(&Item::long(spec, true, None)).unwrap_or_else(|e| panic!("--no-{}: {e}", spec.long));
            assert!(o.unsupported.is_empty(), "--no-{} asks for the default", spec.long);
        }
    }
}

#[test]
fn numbers_as_criu_reads_them() {
    // log level: -v adds one, -vvv adds three, -vN / --verbosity=N set
    // it with atoi, so anything else after -v is level 0.
    for (argv, level) in [
        (&[][..], 2),
        (&["-v"], 3),
        (&["-vv"], 4),
        (&["-vvv"], 5),
        (&["-vvx"], 5),
        (&["-v4"], 4),
        (&["-v0"], 0),
        (&["-verbosity=0"], 0),
        (&["-vfoo"], 0),
        (&["-v-1"], -1),
        (&["--verbosity"], 3),
        (&["--verbosity="], 0),
        (&["--verbosity=1"], 1),
        (&["-v4", "-v"], 5),
        (&["-v", "-v"], 4),
    ] {
        assert_eq!(ok(argv).log_level, level, "{argv:?}");
    }
    assert_eq!(ok(&["-vvv"]).effective_log_level(), 4);
    assert_eq!(ok(&["-v-1"]).effective_log_level(), 4, "CRIU's level is unsigned");
    assert_eq!(ok(&["-verbosity=0"]).effective_log_level(), 0);

    assert_eq!(ok(&["-t", "5x"]).tree_id, Some(5));
    assert_eq!(ok(&["-t", " 7"]).tree_id, Some(7));
    assert_eq!(ok(&["-t", "99999999999"]).tree_id, Some(1215752191), "atoi truncates strtol's long");
    assert_eq!(ok(&["--timeout", "5x"]).timeout, 5);
    assert_eq!(ok(&["--timeout", "abc"]).timeout, 0);
    assert_eq!(ok(&["--close", "3x"]).close_fds, [3]);
    assert_eq!(ok(&["--ps-socket", "x"]).ps_socket, Some(0));
    assert_eq!(ok(&["--port", "70000"]).port, Some(4464), "16 bits, as CRIU keeps it");
    assert_eq!(ok(&["--status-fd", "5x"]).status_fd, Some(5));
    assert_eq!(ok(&["--ghost-limit", "1k"]).ghost_limit, 1);
    assert_eq!(ok(&["--ghost-limit", "2M"]).ghost_limit, 2 << 20);

    for (argv, err) in [
        (&["-t", "abc"][..], "invalid argument for -t: abc"),
        (&["--tree", "abc"], "invalid argument for --tree: abc"),
        (&["--tre=0"], "invalid argument for --tree: 0"),
        (&["-t0"], "invalid argument for -t: 0"),
        (&["--port", "0"], "invalid argument for --port: 0"),
        (&["--port", "65536"], "invalid argument for --port: 65536"),
        (&["--status-fd", "abc"], "Unable to parse a value of --status-fd"),
        (&["--pre-dump-mode", "bogus"], "Unable to parse value of --pre-dump-mode"),
        (&["--manage-cgroups=bogus"], "Unknown cgroups mode `bogus' selected"),
        (&["--file-validation", "x"], "Unknown file validation method `x' selected"),
        (&["--network-lock", "bogus"], "Invalid value for --network-lock: bogus"),
        (&["--empty-ns=pid"], "Unsupported empty namespace: pid"),
        (&["--join-ns", "bogus"], "invalid argument for --join-ns: bogus"),
        (&["--veth-pair", "x"], "invalid argument for --veth-pair: x"),
        (&["-M", "x"], "invalid argument for -M: x"),
        (&["--inherit-fd", "x"], "Invalid inherit fd argument: x"),
        (&["--ext-unix-sk=abc"], "Failed to parse unix socket inode from optarg: abc"),
        (&["--ms"], "--ms is deprecated"),
    ] {
        let e = opts_of(argv).unwrap_err();
        assert!(e.starts_with(err), "{argv:?}: {e}");
    }
}

#[test]
fn the_last_occurrence_wins() {
    assert!(!ok(&["--shell-job", "--no-shell-job"]).shell_job);
    assert!(ok(&["--no-shell-job", "-j"]).shell_job);
    assert!(!ok(&["-d", "--no-daemon"]).restore_detach, "--no-daemon clears what -d set");
    assert_eq!(ok(&["-R", "-s"]).final_state, FinalState::Stopped);
    assert_eq!(ok(&["-s", "-R"]).final_state, FinalState::Alive);
    assert_eq!(ok(&["-D", "/a", "--images-dir=/b"]).imgs_dir.unwrap(), std::path::PathBuf::from("/b"));
    assert_eq!(ok(&["-o", "a", "--log-f=b"]).output.as_deref(), Some("b"));
    assert_eq!(ok(&["-t", "5", "-t", "6"]).tree_id, Some(6));
    assert_eq!(ok(&["--timeout", "5", "--timeout=7"]).timeout, 7);
    assert_eq!(ok(&["--manage-cgroups=full", "--manage-cgroups"]).manage_cgroups, crate::opts::CgMode::Soft);
}

#[test]
fn what_callers_pass_is_accepted() {
    // LXC's dump and restore argv, runc's RPC options as command-line
    // options, and what test harnesses pass on every dump.
    for argv in [
        &["dump", "--tcp-established", "--file-locks", "--link-remap", "--manage-cgroups=full", "--ext-mount-map", "auto",
          "--enable-external-sharing", "--enable-external-masters", "--enable-fs", "hugetlbfs", "--enable-fs", "tracefs",
          "--skip-in-flight", "--force-irmap", "-D", "/d", "-o", "/d/dump.log", "-v4", "-t", "1", "--freeze-cgroup", "/x"][..],
        &["restore", "--root", "/r", "--restore-detached", "--restore-sibling", "--inherit-fd", "fd[3]:tty",
          "--external", "veth[eth0]:vethX@br0", "--tcp-established", "--file-locks", "--link-remap", "--manage-cgroups=full"],
        &["dump", "-t", "1", "--pre-dump-mode", "splice", "--ext-unix-sk", "--evasive-devices", "--empty-ns", "net",
          "--external", "net[4026531992]:extRootNetNS", "--external", "mnt[/proc]:m", "--network-lock", "skip",
          "--weak-sysctls", "--tcp-close", "--skip-mnt", "/x", "--ghost-fiemap", "--unprivileged", "--file-validation", "filesize"],
    ] {
        let o = ok(argv);
        assert!(o.unsupported.is_empty(), "{argv:?}: {:?}", o.unsupported);
    }
    // Refused where accepting would silently lose what is asked for.
    for (argv, refused) in [
        (&["--lsm-profile", "apparmor:x"][..], "--lsm-profile"),
        (&["--external", "file[1:2]"], "--external file[1:2]"),
        (&["--external", "tty[88:0]"], "--external tty[88:0]"),
        (&["--join-ns", "net:/proc/1/ns/net"], "--join-ns"),
        (&["-J", "net:/proc/1/ns/net"], "-J"),
        (&["--page-server"], "--page-server"),
        (&["--lazy-pages"], "--lazy-pages"),
        (&["--exec-cmd"], "--exec-cmd"),
        (&["--prev-images-dir", "../p"], "--prev-images-dir"),
        (&["-L", "/usr/lib/criu"], "-L"),
    ] {
        assert_eq!(ok(argv).unsupported, [refused], "{argv:?}");
    }
}

#[test]
fn usage_lists_every_option() {
    let u = usage();
    for spec in OPTIONS {
        assert!(u.contains(&format!("--{}", spec.long)) || u.contains(&format!("--[no-]{}", spec.long)), "{}", spec.long);
    }
}
