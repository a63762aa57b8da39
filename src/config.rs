//! Config files as CRIU reads them, and the merge of every option source
//! into one [`Opts`]: /etc/criu/default.conf, $HOME/.criu/default.conf,
//! $CRIU_CONFIG_FILE, `--config FILE`, then the command line, each applied
//! in turn so later sources win.
//!
//! Syntax: one option per line without the leading dashes, its argument
//! after whitespace, `#` starts a comment, `"..."` quotes an argument (with
//! `\"` for a literal quote).

use std::path::{Path, PathBuf};

use crate::cli::{self, table::ArgKind, CliError, Item, Parsed};
use crate::opts::Opts;

/// Where config files are looked for; [`ConfigPaths::from_env`] gives CRIU's.
#[derive(Clone, Debug)]
pub struct ConfigPaths {
    pub global: PathBuf,
    pub home: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
}

impl ConfigPaths {
    pub fn from_env() -> Self {
        ConfigPaths {
            global: PathBuf::from("/etc/criu/default.conf"),
            home: std::env::var_os("HOME").map(PathBuf::from),
            env_file: std::env::var_os("CRIU_CONFIG_FILE").map(PathBuf::from),
        }
    }
}

/// A config or command-line problem, one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// getopt refused a word (CRIU then prints its short usage).
    #[error("{0}")]
    Getopt(CliError),
    #[error("{0}")]
    Other(String),
}

fn other(msg: impl Into<String>) -> ConfigError {
    ConfigError::Other(msg.into())
}

/// Split one config line into words, CRIU's way.
pub fn split_line(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == '#' {
            break;
        }
        let mut w = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'"') => {
                        chars.next();
                        w.push('"');
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => w.push(c),
                }
            }
            if !closed {
                return Err("unterminated quote".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        words.push(w);
    }
    Ok(words)
}

/// Parse a config file's text into option items. `name` is used in messages.
pub fn parse_config_text(name: &str, text: &str) -> Result<Vec<Item>, ConfigError> {
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("config file {name}:{}", n + 1);
        let words = split_line(line).map_err(|e| other(format!("{at}: {e}")))?;
        let Some((first, rest)) = words.split_first() else { continue };
        if first.starts_with('-') {
            return Err(other(format!("{at}: write options without dashes: '{first}'")));
        }
        let opt = format!("--{first}");
        // An optional argument can't be a separate word for getopt; in a
        // config file the second word is plainly meant as its value.
        let optional = cli::table::find(first).is_some_and(|s| s.kind == ArgKind::Optional);
        let mut argv = match (optional, rest) {
            (true, [v]) => vec![format!("{opt}={v}")],
            _ => std::iter::once(opt).chain(rest.iter().cloned()).collect(),
        };
        if argv.len() == 2 && !argv[0].contains('=') {
            // Keep a value that starts with '-' attached so it is not read as an option.
            let v = argv.pop().unwrap_or_default();
            let o = argv.pop().unwrap_or_default();
            argv.push(format!("{o}={v}"));
        }
        let parsed = cli::parse(argv).map_err(|e| ConfigError::Getopt(CliError(format!("{at}: {e}"))))?;
        if let Some(w) = parsed.command.iter().chain(parsed.args.iter()).next() {
            return Err(other(format!("{at}: unexpected word '{w}'")));
        }
        items.extend(parsed.items);
    }
    Ok(items)
}

fn read_config(path: &Path, must_exist: bool) -> Result<Vec<Item>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_config_text(&path.display().to_string(), &text),
        Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(other(format!("can't read config file {}: {e}", path.display()))),
    }
}

/// What CRIU's pre-parse finds on the command line before anything else.
struct PreParse {
    no_default_config: bool,
    config: Option<PathBuf>,
}

/// CRIU looks at every word, before getopt and whatever the word is (an
/// option's argument, a word after `--`): exactly `--no-default-config`,
/// exactly `--config` (the next word names the file), or any word holding
/// `--config=`. Abbreviations are not seen here (getopt then ignores them).
fn pre_parse(args: &[String]) -> PreParse {
    let mut p = PreParse { no_default_config: false, config: None };
    for (i, a) in args.iter().enumerate() {
        if a == "--no-default-config" {
            p.no_default_config = true;
        } else if a == "--config" {
            p.config = args.get(i + 1).map(PathBuf::from);
            p.no_default_config = true;
        } else if let Some(at) = a.find("--config=") {
            p.config = Some(PathBuf::from(&a[at + "--config=".len()..]));
            p.no_default_config = true;
        }
    }
    p
}

/// Read every source and fill one `Opts`. `args` is argv without argv[0].
/// Returns the options and the command-line parse (command and its words).
/// Sources are applied in CRIU's order, each option as getopt finds it: an
/// error stops there, and so do `-V` and `-h` (the caller prints).
pub fn load(args: &[String], paths: &ConfigPaths) -> Result<(Opts, Parsed), ConfigError> {
    let pre = pre_parse(args);
    let (cmdline, cmdline_error) = cli::parse_partial(args.iter().cloned());

    let mut sources: Vec<Vec<Item>> = Vec::new();
    if !pre.no_default_config {
        sources.push(read_config(&paths.global, false)?);
        if let Some(home) = &paths.home {
            sources.push(read_config(&home.join(".criu/default.conf"), false)?);
        }
    }
    if let Some(env) = &paths.env_file {
        sources.push(read_config(env, true)?);
    }
    if let Some(cfg) = &pre.config {
        sources.push(read_config(cfg, true)?);
    }
    sources.push(cmdline.items.clone());

    let mut opts = Opts::default();
    for item in sources.iter().flatten() {
        opts.apply(item).map_err(|e| other(e.to_string()))?;
        if opts.show_version || opts.show_help {
            return Ok((opts, cmdline));
        }
    }
    if let Some(e) = cmdline_error {
        return Err(ConfigError::Getopt(e));
    }
    Ok((opts, cmdline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(split_line("tcp-established").unwrap(), ["tcp-established"]);
        assert_eq!(split_line("  work-dir  /x  # c").unwrap(), ["work-dir", "/x"]);
        assert_eq!(
            split_line(r#"work-dir "/home/u/criu/my \"work\" directory""#).unwrap(),
            ["work-dir", r#"/home/u/criu/my "work" directory"#]
        );
        assert_eq!(split_line(r#"log-file """#).unwrap(), ["log-file", ""]);
        assert!(split_line("# all comment").unwrap().is_empty());
        assert!(split_line(r#"x "open"#).is_err());
    }
}
