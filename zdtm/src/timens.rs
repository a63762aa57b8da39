//! The time namespace across a dump and restore, as CRIU 4.2 leaves it
//! (and so must ours): the restored tree is in a new time namespace (not
//! the host's), every task of it in that one and its children's the
//! same, and its CLOCK_MONOTONIC/BOOTTIME go on from the dump: the
//! namespace's offsets moved by minus the time between the dump's clock
//! reading and the restore's, which the runner brackets with its own
//! clock around the two criu runs.
//!
//! Snapshots hold the `ns time` / `ns time_for_children` links, so any
//! other compare (a pause, `dump -R`, a refused dump) wants them unchanged.

use super::Snapshot;
use std::time::Instant;

/// Offsets of CLOCK_MONOTONIC and CLOCK_BOOTTIME, in nanoseconds.
type Offsets = (i128, i128);

fn offsets(pid: i32) -> Result<Offsets, String> {
    let path = format!("/proc/{pid}/timens_offsets");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let get = |name: &str| -> Result<i128, String> {
        let l = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .ok_or_else(|| format!("{path}: no {name} line in {text:?}"))?;
        let f: Vec<i128> = l.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        match f[..] {
            [s, n] => Ok(s * 1_000_000_000 + n),
            _ => Err(format!("{path}: bad line {l:?}")),
        }
    };
    Ok((get("monotonic")?, get("boottime")?))
}

/// Whether a snapshot key is about the time namespace.
fn is_time_key(k: &str) -> bool {
    k.ends_with("ns time") || k.ends_with("ns time_for_children")
}

/// `s` without its time namespace keys.
pub fn without(s: &Snapshot) -> Snapshot {
    s.iter().filter(|(k, _)| !is_time_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The tree's time namespace offsets when a dump started, and the
/// runner's clock around that dump and the restore that follows.
pub struct Window {
    offsets: Offsets,
    dump_start: Instant,
    dump_end: Option<Instant>,
    restore_start: Option<Instant>,
    restore_end: Option<Instant>,
}

impl Window {
    /// Just before the dump of `pid`. None: the kernel has no time namespaces.
    pub fn before_dump(pid: i32) -> Option<Window> {
        std::fs::read_link(format!("/proc/{pid}/ns/time")).ok()?;
        let offsets = offsets(pid).ok()?;
        Some(Window {
            offsets,
            dump_start: Instant::now(),
            dump_end: None,
            restore_start: None,
            restore_end: None,
        })
    }

    pub fn dumped(&mut self) {
        self.dump_end = Some(Instant::now());
    }

    pub fn restoring(&mut self) {
        self.restore_start = Some(Instant::now());
    }

    pub fn restored(&mut self) {
        self.restore_end = Some(Instant::now());
    }

    /// What is wrong with the restored tree `after` (root `pid`).
    pub fn check(&self, pid: i32, after: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let Some(ns) = after.get("ns time") else {
            return vec!["ns time: the restored task shows no time namespace".into()];
        };
        let host = std::fs::read_link("/proc/self/ns/time")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // (The namespace the tree was dumped in died with it: its inode
        // number may well come back for the new one.)
        if *ns == host {
            out.push(format!("ns time: {ns}: restored into the host's time namespace, not a new one"));
        }
        for (k, v) in after.iter().filter(|(k, _)| is_time_key(k)) {
            if v != ns {
                out.push(format!("{k}: {v}, not the root's {ns}"));
            }
        }
        let (Some(d1), Some(r0), Some(r1)) = (self.dump_end, self.restore_start, self.restore_end) else {
            out.push("the runner did not time the dump and restore".into());
            return out;
        };
        // The dump read the clocks in [dump_start, d1], the restore set the
        // offsets in [r0, r1]: the offsets moved by minus the time between.
        let lo = -(r1.duration_since(self.dump_start).as_nanos() as i128);
        let hi = -(r0.duration_since(d1).as_nanos() as i128);
        match offsets(pid) {
            Err(e) => out.push(e),
            Ok(now) => {
                for (name, b, a) in [("monotonic", self.offsets.0, now.0), ("boottime", self.offsets.1, now.1)] {
                    let moved = a - b;
                    if moved < lo || moved > hi {
                        out.push(format!(
                            "timens_offsets {name}: moved by {moved} ns across dump and restore, \
                             not within [{lo}, {hi}] ns (the clock does not go on from the dump)"
                        ));
                    }
                }
            }
        }
        out
    }
}
