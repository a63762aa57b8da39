//! The task: its place in the tree (pstree), identity (creds), limits,
//! signal state and ids, read from /proc and ptrace from outside; what only
//! the task can report comes through [`remote`].

pub mod lsm;
pub mod posix_timers;
pub mod remote;
pub mod settings;
pub mod thread;
pub mod thread_info;
pub mod tree;

use anyhow::{Context, Result};

use crate::images::pb::{CredsEntry, RlimitEntry, SignalQueueEntry, SiginfoEntry, TaskRlimitsEntry};
use crate::proc::{self, status::Status};

fn cap_words(v: u64) -> Vec<u32> {
    vec![(v & 0xffff_ffff) as u32, (v >> 32) as u32]
}

/// Credentials as CRIU stores them (capabilities as two u32 words).
pub fn creds(st: &Status, secbits: u32) -> CredsEntry {
    CredsEntry {
        uid: st.uids[0],
        euid: st.uids[1],
        suid: st.uids[2],
        fsuid: st.uids[3],
        gid: st.gids[0],
        egid: st.gids[1],
        sgid: st.gids[2],
        fsgid: st.gids[3],
        cap_inh: cap_words(st.cap_inh),
        cap_prm: cap_words(st.cap_prm),
        cap_eff: cap_words(st.cap_eff),
        cap_bnd: cap_words(st.cap_bnd),
        secbits,
        groups: st.groups.clone(),
        lsm_profile: None,
        lsm_sockcreate: None,
        apparmor_data: None,
        no_new_privs: st.no_new_privs.then_some(1),
        cap_amb: cap_words(st.cap_amb),
    }
}

/// Resource limits from /proc/PID/limits (no prlimit, so no
/// CAP_SYS_RESOURCE needed).
pub fn rlimits(pid: i32) -> Result<TaskRlimitsEntry> {
    Ok(TaskRlimitsEntry {
        rlimits: proc::limits::read(pid)?.into_iter().map(|(cur, max)| RlimitEntry { cur, max }).collect(),
    })
}

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

/// The namespaces of `pid` that differ from ours (dumping them is not
/// supported yet), as "mnt", "net", ... The time namespace is not one of
/// them: crate::ns::timens checks it once the tree is frozen.
pub fn foreign_namespaces(pid: i32) -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for ns in ["pid", "net", "ipc", "uts", "mnt", "user", "cgroup"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
            .with_context(|| format!("can't read {ns} namespace of {pid}"))?;
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}"))?;
        if theirs != ours {
            out.push(ns);
        }
    }
    Ok(out)
}
