//! The commands. `main` reads every option source into one `Opts`, refuses
//! what we can't do yet, starts logging and dispatches; each command lives
//! in its own file and reads like CRIU's stages.

pub mod auth;
pub mod check;
pub mod cpuinfo;
pub mod dump;
pub mod restore;
pub mod service;
pub mod swrk;

use crate::cli::{self, table::COMMANDS};
use crate::config::{self, ConfigPaths};
use crate::opts::Opts;

/// Exit code of every failure, as CRIU.
pub const EXIT_FAILURE: i32 = 1;

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("Error: {msg}");
    EXIT_FAILURE
}

/// What `criu --version` prints. The first line is what callers (LXC) parse.
pub fn version_text() -> String {
    format!(
        "Version: {}\nImplementation: criu-rs {} (Rust, CRIU {} compatible)\n",
        crate::CRIU_VERSION,
        env!("CARGO_PKG_VERSION"),
        crate::CRIU_VERSION
    )
}

/// The command-word mistakes CRIU answers with its short usage: no
/// command, an unknown one, words after a command that takes none.
pub fn usage_error(opts: &Opts, command: Option<&str>, args: &[String]) -> Option<String> {
    let Some(cmd) = command else { return Some("command is required".into()) };
    if !COMMANDS.contains(&cmd) {
        return Some(format!("unknown command: {cmd}"));
    }
    if !matches!(cmd, "cpuinfo" | "swrk") && !opts.exec_cmd && !args.is_empty() {
        return Some(format!("excessive parameter{} for command {cmd}", if args.len() > 1 { "s" } else { "" }));
    }
    if cmd == "cpuinfo" && args.is_empty() {
        return Some("cpuinfo requires an action: dump or check".into());
    }
    None
}

/// Validate the parsed command line against the command, before anything
/// is written. Returns the command name.
pub fn validate(opts: &Opts, command: Option<&str>, args: &[String]) -> Result<String, String> {
    if let Some(e) = usage_error(opts, command, args) {
        return Err(e);
    }
    let cmd = command.unwrap_or_default();
    match cmd {
        "show" => return Err("the \"show\" action is deprecated by the CRIT utility; use crit".into()),
        "exec" => return Err("the \"exec\" action is deprecated; use compel".into()),
        _ => {}
    }
    // `check` only probes the kernel: dump and restore options mean nothing
    // to it (CRIU's check ignores them too).
    if let Some(spelling) = opts.unsupported.first().filter(|_| cmd != "check") {
        return Err(format!("option {spelling} is not supported yet"));
    }
    opts.check().map_err(|e| e.to_string())?;
    match cmd {
        "dump" | "pre-dump" if opts.tree_id.is_none() => {
            return Err(format!("{cmd} needs -t/--tree PID"));
        }
        "swrk" if args.len() != 1 => return Err("swrk needs exactly one argument: the socket fd".into()),
        "cpuinfo" => match args.first().map(String::as_str) {
            Some("dump" | "check") | None => {}
            Some(sub) => return Err(format!("unknown cpuinfo sub-command: {sub}")),
        },
        _ => {}
    }
    if let Some(dir) = opts.imgs_dir.as_ref().filter(|d| !matches!(cmd, "check" | "swrk" | "service") && !d.is_dir()) {
        return Err(format!("images directory {} does not exist or is not a directory", dir.display()));
    }
    if let Some(dir) = opts.work_dir.as_ref().filter(|d| !d.is_dir()) {
        return Err(format!("work directory {} does not exist or is not a directory", dir.display()));
    }
    Ok(cmd.to_string())
}

/// The whole program: argv (without argv[0]) in, exit code out.
pub fn main(args: Vec<String>) -> i32 {
    main_as("criu", args)
}

/// [`main`], with argv[0] as invoked (getopt's messages start with it).
pub fn main_as(prog: &str, args: Vec<String>) -> i32 {
    crate::log::start_clock();
    // CRIU looks for help before anything else, in every word, so a broken
    // config file can't hide it.
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", cli::usage());
        return 0;
    }
    let (opts, parsed) = match config::load(&args, &ConfigPaths::from_env()) {
        Ok(v) => v,
        Err(config::ConfigError::Getopt(e)) => {
            // glibc's message on stderr, CRIU's short usage on stdout.
            eprintln!("{prog}: {e}");
            print!("{}", cli::short_usage());
            return EXIT_FAILURE;
        }
        Err(e) => return fail(e),
    };
    if opts.show_help {
        print!("{}", cli::usage());
        return 0;
    }
    for fd in &opts.close_fds {
        crate::sys::inherited::close(*fd);
    }
    if opts.show_version {
        print!("{}", version_text());
        return 0;
    }
    if let Some(e) = usage_error(&opts, parsed.command.as_deref(), &parsed.args) {
        eprintln!("Error: {e}");
        print!("{}", cli::short_usage());
        return EXIT_FAILURE;
    }
    let cmd = match validate(&opts, parsed.command.as_deref(), &parsed.args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Err(e) = crate::log::init(&opts) {
        return fail(e);
    }
    let result = match cmd.as_str() {
        "check" => check::run(&opts),
        "dump" => dump::run(&opts),
        "restore" => restore::run(&opts),
        "swrk" => swrk::run(&opts, &parsed.args),
        "service" => service::run(&opts),
        "cpuinfo" => cpuinfo::run(&opts, &parsed.args),
        other => Err(anyhow::anyhow!("command '{other}' is not supported yet")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            if crate::log::log_path(&opts).is_none() {
                // Already on stderr through the log.
                EXIT_FAILURE
            } else {
                EXIT_FAILURE
            }
        }
    }
}
