//! The command line: glibc's getopt_long run over the option table (see
//! [`getopt`]), giving back every option occurrence in the order it was
//! written, so config files, the command line and RPC all fill one
//! [`crate::opts::Opts`] the same way.

pub mod getopt;
pub mod table;

use table::{ArgKind, OptSpec, OPTIONS};

/// One option occurrence, in the order it appeared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub spec: &'static OptSpec,
    /// `--no-X` form of a Bool option.
    pub negated: bool,
    /// The argument, if the option took one (`Some("")` for `--X=`).
    pub value: Option<String>,
    /// Written as its short form (`-t`), which CRIU's messages use.
    pub short: bool,
}

impl Item {
    /// An occurrence spelled as the long option (config files, RPC).
    pub fn long(spec: &'static OptSpec, negated: bool, value: Option<String>) -> Item {
        Item { spec, negated, value, short: false }
    }

    /// How the option was spelled, for messages: `-t`, `--tree`, `--no-tls`.
    pub fn spelling(&self) -> String {
        match self.spec.short {
            Some(c) if self.short => format!("-{c}"),
            _ if self.negated => format!("--no-{}", self.spec.long),
            _ => format!("--{}", self.spec.long),
        }
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

/// A getopt failure: glibc's message, without the `prog: ` prefix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

fn posixly_correct() -> bool {
    std::env::var_os("POSIXLY_CORRECT").is_some()
}

/// Parse one source of words (the command line without argv[0], or a
/// config file's words) the way getopt_long would. The options found before
/// an error are kept: CRIU applies each option as getopt returns it, so an
/// earlier bad value is reported before a later unknown option.
pub fn parse_partial<I, T>(words: I) -> (Parsed, Option<CliError>)
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let words: Vec<String> = words.into_iter().map(Into::into).collect();
    let g = getopt::getopt(&words, posixly_correct());
    let mut operands = g.operands.into_iter();
    let parsed = Parsed { command: operands.next(), args: operands.collect(), items: g.items };
    (parsed, g.error.map(|e| CliError(e.to_string())))
}

/// [`parse_partial`], failing on any getopt error.
pub fn parse<I, T>(words: I) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    match parse_partial(words) {
        (p, None) => Ok(p),
        (_, Some(e)) => Err(e),
    }
}

/// What CRIU prints on stdout after a getopt error (its short usage).
pub fn short_usage() -> &'static str {
    "\nUsage:\n  criu dump|pre-dump -t PID [<options>]\n  criu restore [<options>]\n  criu check [--feature FEAT]\n  \
     criu page-server\n  criu service [<options>]\n  criu dedup\n  criu lazy-pages -D DIR [<options>]\n\nCommands:\n  \
     dump           checkpoint a process/tree identified by pid\n  \
     pre-dump       pre-dump task(s) minimizing their frozen time\n  \
     restore        restore a process/tree\n  \
     check          checks whether the kernel support is up-to-date\n  \
     page-server    launch page server\n  \
     service        launch service\n  \
     dedup          remove duplicates in memory dump\n  \
     cpuinfo dump   writes cpu information into image file\n  \
     cpuinfo check  validates cpu information read from image file\n\nTry -h|--help for more info\n"
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
