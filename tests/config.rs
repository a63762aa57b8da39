//! Config-file precedence as CRIU: /etc/criu/default.conf, then
//! $HOME/.criu/default.conf, then $CRIU_CONFIG_FILE, then --config FILE,
//! then the command line; --config and --no-default-config skip the two
//! default files.

use std::path::{Path, PathBuf};

use criu::config::{load, ConfigPaths};
use criu::opts::Opts;

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("home/.criu")).unwrap();
        std::fs::write(root.join("global.conf"), "log-file global.log\ntimeout 1\nshell-job\nwork-dir /g\n").unwrap();
        std::fs::write(root.join("home/.criu/default.conf"), "# user config\nlog-file home.log\ntimeout 2\n").unwrap();
        std::fs::write(root.join("env.conf"), "log-file env.log   # trailing comment\n").unwrap();
        std::fs::write(root.join("cli.conf"), "log-file cli.log\nno-shell-job\nwork-dir \"/a \\\"b\\\" c\"\n").unwrap();
        Env { _tmp: tmp, root }
    }

    fn paths(&self, env: bool) -> ConfigPaths {
        ConfigPaths {
            global: self.root.join("global.conf"),
            home: Some(self.root.join("home")),
            env_file: env.then(|| self.root.join("env.conf")),
        }
    }

    fn load(&self, env: bool, args: &[&str]) -> Opts {
        let args: Vec<String> = args.iter().map(|s| s.replace("ROOT", self.root.to_str().unwrap())).collect();
        load(&args, &self.paths(env)).unwrap_or_else(|e| panic!("{args:?}: {e}")).0
    }
}

#[test]
fn later_sources_win() {
    let e = Env::new();
    let o = e.load(false, &["check"]);
    assert_eq!(o.output.as_deref(), Some("home.log"));
    assert_eq!(o.timeout, 2);
    assert!(o.shell_job);
    assert_eq!(o.work_dir.as_deref(), Some(Path::new("/g")));

    let o = e.load(true, &["check"]);
    assert_eq!(o.output.as_deref(), Some("env.log"));

    let o = e.load(true, &["check", "-o", "cmd.log"]);
    assert_eq!(o.output.as_deref(), Some("cmd.log"));
    assert_eq!(o.timeout, 2);
}

#[test]
fn config_option_skips_default_files_but_not_the_env_file() {
    let e = Env::new();
    let o = e.load(true, &["check", "--config", "ROOT/cli.conf"]);
    assert_eq!(o.output.as_deref(), Some("cli.log"));
    assert_eq!(o.timeout, criu::opts::DEFAULT_TIMEOUT);
    assert!(!o.shell_job);
    assert_eq!(o.work_dir.as_deref(), Some(Path::new("/a \"b\" c")));

    let o = e.load(true, &["check", "--config=ROOT/cli.conf", "-o", "x.log", "-j"]);
    assert_eq!(o.output.as_deref(), Some("x.log"));
    assert!(o.shell_job);

    let o = e.load(true, &["check", "--no-default-config"]);
    assert_eq!(o.output.as_deref(), Some("env.log"));
    assert_eq!(o.timeout, criu::opts::DEFAULT_TIMEOUT);

    let o = e.load(false, &["--no-default-config", "check"]);
    assert_eq!(o, Opts::default());
}

#[test]
fn optional_argument_as_second_word_and_negations() {
    let e = Env::new();
    std::fs::write(e.root.join("c.conf"), "manage-cgroups full\nno-tcp-established\nverbosity=4\nghost-limit 2M\n").unwrap();
    let o = e.load(false, &["check", "--config", "ROOT/c.conf"]);
    assert_eq!(o.manage_cgroups, criu::opts::CgMode::Full);
    assert!(!o.tcp_established_ok);
    assert_eq!(o.log_level, 4);
    assert_eq!(o.ghost_limit, 2 << 20);
    // A negation sets the default and is not refused as unsupported.
    assert!(o.unsupported.iter().all(|u| u != "--no-tcp-established"), "{:?}", o.unsupported);
    // --manage-cgroups is accepted (the dump checks the tree's cgroups).
    assert!(o.unsupported.is_empty(), "{:?}", o.unsupported);
    assert!(o.manage_cgroups_given);
}

#[test]
fn bad_config_lines_name_file_and_line() {
    let e = Env::new();
    for (text, want) in [
        ("timeout 3\nbogus-option\n", "c.conf:2: unrecognized option '--bogus-option'"),
        ("work-dir \"unterminated\n", "c.conf:1: unterminated quote"),
        ("tcp-established extra words\n", "c.conf:1:"),
        ("--tree 5\n", "c.conf:1: write options without dashes"),
        ("tree abc\n", "invalid argument for --tree: abc"),
        ("dump\n", "c.conf:1: unrecognized option '--dump'"),
        ("tr 5\n", "is ambiguous; possibilities: '--tree' '--track-mem'"),
    ] {
        std::fs::write(e.root.join("c.conf"), text).unwrap();
        let args = vec!["check".to_string(), "--config".into(), e.root.join("c.conf").display().to_string()];
        let err = load(&args, &e.paths(false)).unwrap_err().to_string();
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
    let args = vec!["check".to_string(), "--config".into(), "/nonexistent/criu.conf".into()];
    let err = load(&args, &e.paths(false)).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/criu.conf"), "{err}");
}
