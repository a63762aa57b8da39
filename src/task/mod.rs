//! The task: its place in the tree (pstree), identity ([`creds`]), task
//! core ([`core`]: limits, signal state, stop), fs state ([`fs`]) and
//! threads, read from /proc and ptrace from outside and given back to the
//! restore; what only the task can report comes through [`remote`]; the
//! dump's freezing of the tree is [`freeze`].

pub mod core;
pub mod creds;
pub mod fdt;
pub mod freeze;
pub mod fs;
pub mod images;
pub mod lsm;
pub mod posix_timers;
pub mod remote;
pub mod seccomp;
pub mod settings;
pub mod shared;
pub mod thread;
pub mod thread_info;
pub mod tid_address;
pub mod tree;

use anyhow::{Context, Result};

use crate::images::pb::{SignalQueueEntry, SiginfoEntry};
use crate::proc;

/// Pending signals of a queue (the thread's own, or the process-wide one).
pub fn pending(pid: i32, shared: bool) -> Result<SignalQueueEntry> {
    let sigs = crate::sys::signals::peek_siginfo(pid, shared)
        .with_context(|| format!("reading pending signals of {pid}"))?;
    Ok(SignalQueueEntry { signals: sigs.into_iter().map(|s| SiginfoEntry { siginfo: s.to_vec() }).collect() })
}

/// /proc/PID/personality.
pub fn personality(pid: i32) -> Result<u32> {
    let t = proc::read(pid, "personality")?;
    u32::from_str_radix(t.trim(), 16).with_context(|| format!("bad personality {t:?} of {pid}"))
}

/// /proc/PID/oom_score_adj.
pub fn oom_score_adj(pid: i32) -> Result<i32> {
    let t = proc::read(pid, "oom_score_adj")?;
    t.trim().parse().with_context(|| format!("bad oom_score_adj {t:?} of {pid}"))
}
