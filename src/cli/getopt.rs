//! glibc's `getopt_long` as CRIU runs it over its option table: short
//! option clusters and their optional or required arguments, `--name`,
//! `--name=value`, unambiguous abbreviations, argument permutation (or not,
//! under POSIXLY_CORRECT), `--` ending the options, and glibc's messages
//! for an unknown, ambiguous or misused option. Parsing stops at the first
//! error and after `-h`/`-V`, as CRIU stops there.

use super::table::{ArgKind, OptSpec, GETOPT_ORDER, OPTIONS, SHORT_OPTS};
use super::Item;

/// A getopt failure; `Display` is glibc's message without the `prog: ` prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetoptError {
    /// `--bogus[=value]`, as written after the dashes.
    Unrecognized(String),
    /// `-Z`.
    Invalid(char),
    /// An abbreviation of several options, as written, and those options.
    Ambiguous(String, Vec<String>),
    /// `--flag=value`, naming the full option.
    NoArgAllowed(String),
    /// `--opt` as the last word, naming the full option.
    LongNeedsArg(String),
    /// `-t` as the last word.
    ShortNeedsArg(char),
}

impl std::fmt::Display for GetoptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetoptError::Unrecognized(w) => write!(f, "unrecognized option '--{w}'"),
            GetoptError::Invalid(c) => write!(f, "invalid option -- '{c}'"),
            GetoptError::Ambiguous(w, names) => {
                write!(f, "option '--{w}' is ambiguous; possibilities:")?;
                names.iter().try_for_each(|n| write!(f, " '--{n}'"))
            }
            GetoptError::NoArgAllowed(n) => write!(f, "option '--{n}' doesn't allow an argument"),
            GetoptError::LongNeedsArg(n) => write!(f, "option '--{n}' requires an argument"),
            GetoptError::ShortNeedsArg(c) => write!(f, "option requires an argument -- '{c}'"),
        }
    }
}

/// What one run of getopt over a word list gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Getopt {
    /// Options in the order they were found.
    pub items: Vec<Item>,
    /// Non-option words, in order (getopt moves them after the options).
    pub operands: Vec<String>,
    /// Where parsing stopped, if it failed.
    pub error: Option<GetoptError>,
}

/// One entry of CRIU's `long_opts`: a Bool row gives `X` and `no-X`.
struct LongOpt {
    name: String,
    spec: &'static OptSpec,
    negated: bool,
}

impl LongOpt {
    /// getopt_long treats two matches of an abbreviation as one option when
    /// they have the same argument shape, flag pointer and value: in CRIU
    /// only `--daemon` and `--restore-detached` (and their `--no-` forms)
    /// share them.
    fn identity(&self) -> (&'static str, bool) {
        let long = if self.spec.long == "daemon" { "restore-detached" } else { self.spec.long };
        (long, self.negated)
    }
}

fn long_opts() -> Vec<LongOpt> {
    let mut v = Vec::with_capacity(GETOPT_ORDER.len() * 2);
    for name in GETOPT_ORDER {
        let Some(spec) = OPTIONS.iter().find(|s| s.long == *name) else { continue };
        v.push(LongOpt { name: spec.long.to_string(), spec, negated: false });
        if spec.kind == ArgKind::Bool {
            v.push(LongOpt { name: format!("no-{}", spec.long), spec, negated: true });
        }
    }
    v
}

/// The argument shape of short option `c` in CRIU's getopt string.
fn short_kind(c: char) -> Option<ArgKind> {
    if c == ':' {
        return None;
    }
    let at = SHORT_OPTS.find(c)?;
    let rest = &SHORT_OPTS[at + c.len_utf8()..];
    Some(if rest.starts_with("::") {
        ArgKind::Optional
    } else if rest.starts_with(':') {
        ArgKind::Required
    } else {
        ArgKind::Flag
    })
}

fn is_stop(item: &Item) -> bool {
    matches!(item.spec.long, "help" | "version")
}

/// Run getopt_long over `words` (argv without argv[0]). `posixly_correct`
/// stops at the first non-option word, as glibc does when POSIXLY_CORRECT is set.
pub fn getopt(words: &[String], posixly_correct: bool) -> Getopt {
    let longs = long_opts();
    let mut out = Getopt::default();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if w == "--" {
            out.operands.extend(words[i + 1..].iter().cloned());
            break;
        }
        if !w.starts_with('-') || w == "-" {
            if posixly_correct {
                out.operands.extend(words[i..].iter().cloned());
                break;
            }
            out.operands.push(w.clone());
            i += 1;
            continue;
        }
        i += 1;
        let r = match w.strip_prefix("--") {
            Some(body) => long(&longs, body, words, &mut i).map(|it| out.items.push(it)),
            None => short_cluster(&w[1..], words, &mut i, &mut out.items),
        };
        if let Err(e) = r {
            out.error = Some(e);
            break;
        }
        if out.items.last().is_some_and(is_stop) {
            break;
        }
    }
    out
}

fn long(longs: &[LongOpt], body: &str, words: &[String], i: &mut usize) -> Result<Item, GetoptError> {
    let (name, arg) = match body.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (body, None),
    };
    let found = match longs.iter().find(|e| e.name == name) {
        Some(e) => e,
        None => {
            let matches: Vec<&LongOpt> = longs.iter().filter(|e| e.name.starts_with(name)).collect();
            let Some(&first) = matches.first() else { return Err(GetoptError::Unrecognized(body.to_string())) };
            if matches.iter().any(|e| e.identity() != first.identity()) {
                let names = matches
                    .iter()
                    .enumerate()
                    .filter(|(n, e)| *n == 0 || e.identity() != first.identity())
                    .map(|(_, e)| e.name.clone())
                    .collect();
                return Err(GetoptError::Ambiguous(body.to_string(), names));
            }
            first
        }
    };
    let value = match found.spec.kind {
        ArgKind::Flag | ArgKind::Bool => {
            if arg.is_some() {
                return Err(GetoptError::NoArgAllowed(found.name.clone()));
            }
            None
        }
        ArgKind::Optional => arg.map(str::to_string),
        ArgKind::Required => match arg {
            Some(a) => Some(a.to_string()),
            None if *i < words.len() => {
                *i += 1;
                Some(words[*i - 1].clone())
            }
            None => return Err(GetoptError::LongNeedsArg(found.name.clone())),
        },
    };
    Ok(Item { spec: found.spec, negated: found.negated, value, short: false })
}

fn short_cluster(cluster: &str, words: &[String], i: &mut usize, items: &mut Vec<Item>) -> Result<(), GetoptError> {
    let mut rest = cluster;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        let kind = short_kind(c).ok_or(GetoptError::Invalid(c))?;
        let spec = OPTIONS.iter().find(|s| s.short == Some(c)).ok_or(GetoptError::Invalid(c))?;
        let value = match kind {
            ArgKind::Flag | ArgKind::Bool => None,
            ArgKind::Optional => (!rest.is_empty()).then(|| rest.to_string()),
            ArgKind::Required if !rest.is_empty() => Some(rest.to_string()),
            ArgKind::Required if *i < words.len() => {
                *i += 1;
                Some(words[*i - 1].clone())
            }
            ArgKind::Required => return Err(GetoptError::ShortNeedsArg(c)),
        };
        let takes_rest = kind != ArgKind::Flag;
        items.push(Item { spec, negated: false, value, short: true });
        if takes_rest || is_stop(items.last().expect("just pushed")) {
            break;
        }
    }
    Ok(())
}
