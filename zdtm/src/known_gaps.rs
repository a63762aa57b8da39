//! Known gaps: differences the /proc compare finds after a restore that
//! are real lost state, not yet fixed, listed here one by one (test, key,
//! what, whose criu) with the issue text. A difference a gap names is
//! reported as a warning, not a failure, so CI stays green until the fix;
//! the runner prints this table at the start of each run and each
//! difference a gap covers when it is seen. Never a silent skip: a gap
//! covers only its test, its key and its words, and only where the criu
//! it names took part.

/// Whose criu loses the state: the gap applies where that one dumped or
/// restored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Who {
    /// Our criu (criu-rs).
    Ours,
    /// The reference CRIU 4.2 (a limitation of the spec itself).
    Criu42,
}

pub struct Gap {
    pub test: &'static str,
    /// A substring of the difference's key (`fd    3 F_GETPIPE_SZ`,
    /// `vmflags `, `cow `, `status THP_enabled`).
    pub key: &'static str,
    /// A substring the difference's text must hold ("" = any).
    pub what: &'static str,
    pub who: Who,
    pub issue: &'static str,
}

pub const KNOWN_GAPS: &[Gap] = &[];

/// The table, one line a gap, for the start of a run.
pub fn banner() -> Vec<String> {
    KNOWN_GAPS
        .iter()
        .map(|g| {
            format!(
                "known gap ({:?}): {} `{}`{}: {}",
                g.who,
                g.test,
                g.key,
                if g.what.is_empty() { String::new() } else { format!(" ({})", g.what) },
                g.issue
            )
        })
        .collect()
}

/// Split a diff (snapshot::diff's lines) into what fails and what a known
/// gap of `test` covers (each with its gap's issue), given whether our
/// criu and CRIU 4.2 took part.
pub fn split(test: &str, ours: bool, criu42: bool, d: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for l in d {
        match groups.last_mut() {
            Some(g) if l.starts_with("  ") => g.push(l),
            _ => groups.push(vec![l]),
        }
    }
    let (mut fail, mut known) = (Vec::new(), Vec::new());
    for g in groups {
        let head = &g[0];
        let key = head.split(':').next().unwrap_or(head);
        let text = g.join("\n");
        let gap = KNOWN_GAPS.iter().find(|gap| {
            gap.test == test
                && key.contains(gap.key)
                && text.contains(gap.what)
                && match gap.who {
                    Who::Ours => ours,
                    Who::Criu42 => criu42,
                }
        });
        match gap {
            Some(gap) => {
                known.push(format!("{} [known gap: {}]", g.join(" "), gap.issue));
            }
            None => fail.extend(g),
        }
    }
    (fail, known)
}
