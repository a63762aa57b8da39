//! The command line: a clap parser generated from the option table, giving
//! back every option occurrence in the order it was written (getopt order),
//! so config files, the command line and (later) RPC all fill one
//! [`crate::opts::Opts`] the same way.

pub mod table;

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};

use table::{ArgKind, OPTIONS, OptSpec};

/// One option occurrence, in the order it appeared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub spec: &'static OptSpec,
    /// `--no-X` form of a Bool option.
    pub negated: bool,
    /// The argument, if the option took one.
    pub value: Option<String>,
}

impl Item {
    /// How the option was spelled, for messages.
    pub fn spelling(&self) -> String {
        if self.negated { format!("--no-{}", self.spec.long) } else { format!("--{}", self.spec.long) }
    }
}

/// The result of parsing one source of options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The command word (`dump`, `restore`, ...), if any.
    pub command: Option<String>,
    /// Words after the command (`cpuinfo dump`, `--exec-cmd -- CMD ARGS`).
    pub args: Vec<String>,
    pub items: Vec<Item>,
}

/// A parse failure, rendered as one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

fn neg_id(long: &str) -> String {
    format!("no-{long}")
}

/// Build the clap command from the option table.
fn command() -> Command {
    let mut cmd = Command::new("criu")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .infer_long_args(true)
        .arg(Arg::new("COMMAND").index(1).action(ArgAction::Set))
        .arg(
            Arg::new("ARGS")
                .index(2)
                .num_args(0..)
                .action(ArgAction::Append),
        );
    for spec in OPTIONS {
        let mut arg = Arg::new(spec.long).long(spec.long).help(spec.help);
        if let Some(c) = spec.short {
            arg = arg.short(c);
        }
        arg = match spec.kind {
            ArgKind::Flag | ArgKind::Bool => arg.action(ArgAction::Count),
            ArgKind::Required => arg
                .action(ArgAction::Append)
                .num_args(1)
                .allow_hyphen_values(true)
                .value_name(spec.value_name),
            ArgKind::Optional => arg
                .action(ArgAction::Append)
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("")
                .value_name(spec.value_name),
        };
        cmd = cmd.arg(arg);
        if spec.kind == ArgKind::Bool {
            let id = neg_id(spec.long);
            cmd = cmd.arg(Arg::new(id.clone()).long(id).action(ArgAction::Count).hide(true));
        }
    }
    cmd
}

/// Turn clap's multi-line error into one line naming the problem.
fn one_line(err: &clap::Error) -> String {
    let arg = |k| match err.get(k) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        _ => String::new(),
    };
    match err.kind() {
        ErrorKind::UnknownArgument => format!("unknown option '{}'", arg(ContextKind::InvalidArg)),
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::WrongNumberOfValues => {
            format!("option '{}' needs a value", arg(ContextKind::InvalidArg))
        }
        _ => {
            let s = err.kind().as_str().map(str::to_string).unwrap_or_else(|| err.to_string());
            s.lines().next().unwrap_or("bad command line").trim_start_matches("error: ").to_string()
        }
    }
}

/// Parse one source of words (the command line without argv[0], or a config
/// file's words).
pub fn parse<I, T>(words: I) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let words: Vec<OsString> = words.into_iter().map(Into::into).collect();
    let words = expand_optional_shorts(words);
    let m = command().try_get_matches_from(words).map_err(|e| CliError(one_line(&e)))?;

    let mut found: Vec<(usize, Item)> = Vec::new();
    for spec in OPTIONS {
        let ids: &[(String, bool)] = &[(spec.long.to_string(), false), (neg_id(spec.long), true)];
        for (id, negated) in ids {
            if *negated && spec.kind != ArgKind::Bool {
                continue;
            }
            if m.value_source(id) != Some(ValueSource::CommandLine) {
                continue;
            }
            let Some(indices) = m.indices_of(id) else { continue };
            match spec.kind {
                ArgKind::Flag | ArgKind::Bool => {
                    for i in indices {
                        found.push((i, Item { spec, negated: *negated, value: None }));
                    }
                }
                ArgKind::Required | ArgKind::Optional => {
                    let values: Vec<&String> = m.get_many::<String>(id).map(|v| v.collect()).unwrap_or_default();
                    for (i, v) in indices.zip(values) {
                        let value = if spec.kind == ArgKind::Optional && v.is_empty() { None } else { Some(v.clone()) };
                        found.push((i, Item { spec, negated: false, value }));
                    }
                }
            }
        }
    }
    found.sort_by_key(|(i, _)| *i);
    Ok(Parsed {
        command: m.get_one::<String>("COMMAND").cloned(),
        args: m.get_many::<String>("ARGS").map(|v| v.cloned().collect()).unwrap_or_default(),
        items: found.into_iter().map(|(_, it)| it).collect(),
    })
}

/// getopt gives a short option with an optional argument (`-v`, `-x`)
/// only an attached value: `-vvv` is `-v` with the argument `vv`, `-v4` is
/// level 4, `-x123` is inode 123. clap would read `-vvv` as three flags, so
/// rewrite these to their long `--name[=value]` form first. Words after `--`
/// are left alone.
fn expand_optional_shorts(words: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(words.len());
    let mut rest = false;
    for w in words {
        if rest {
            out.push(w);
            continue;
        }
        let long = w.to_str().and_then(|s| {
            let mut chars = s.strip_prefix('-').filter(|t| !t.starts_with('-'))?.chars();
            let c = chars.next()?;
            let spec = OPTIONS.iter().find(|o| o.short == Some(c) && o.kind == ArgKind::Optional)?;
            let tail = chars.as_str();
            Some(if tail.is_empty() { format!("--{}", spec.long) } else { format!("--{}={tail}", spec.long) })
        });
        match long {
            Some(l) => out.push(l.into()),
            None => {
                rest = w == "--";
                out.push(w);
            }
        }
    }
    out
}

/// The usage text for `-h`/`--help`.
pub fn usage() -> String {
    let mut s = String::from(
        "Usage:\n  criu dump|pre-dump -t PID [<options>]\n  criu restore [<options>]\n  criu check [--feature FEAT]\n  \
         criu page-server\n  criu service [<options>]\n  criu swrk FD\n  criu lazy-pages -D DIR [<options>]\n  \
         criu dedup\n  criu cpuinfo dump|check\n\nOptions:\n",
    );
    for spec in OPTIONS {
        let short = spec.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let (pre, val) = match spec.kind {
            ArgKind::Bool => ("[no-]", String::new()),
            ArgKind::Flag => ("", String::new()),
            ArgKind::Required => ("", format!(" {}", spec.value_name)),
            ArgKind::Optional => ("", format!("[={}]", spec.value_name)),
        };
        let left = format!("  {short}--{pre}{}{val}", spec.long);
        s.push_str(&format!("{left:<40} {}\n", spec.help));
    }
    s
}

#[cfg(test)]
mod tests;
