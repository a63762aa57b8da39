//! What a confined caller may dump: tasks it could ptrace itself. Every
//! thread has the caller's uid as its real, effective and saved uid and
//! the caller's gid as its real, effective and saved gid, no permitted
//! capability the caller lacks, and the task is dumpable (the files in
//! /proc/PID are root's otherwise). Checked for every task before anything
//! touches any ([`check_live_tree`]) and for every task once the tree is
//! frozen ([`check_tree`]: no task can change its credentials any more).

use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result};

use super::{extra_caps, Caller};
use crate::proc::status::Status;

fn check_creds(c: &Caller, pid: i32, tid: i32, st: &Status) -> Result<()> {
    let who = if tid == pid { format!("task {pid}") } else { format!("task {pid} (thread {tid})") };
    let [r, e, s, _] = st.uids;
    if [r, e, s] != [c.uid; 3] {
        return Err(c.deny(format!("dump {who}: its real, effective and saved uids are {r} {e} {s}")).into());
    }
    let [r, e, s, _] = st.gids;
    if [r, e, s] != [c.gid; 3] {
        return Err(c.deny(format!("dump {who}: its real, effective and saved gids are {r} {e} {s}, not {}", c.gid)).into());
    }
    if let Some(extra) = extra_caps(st.cap_prm, c.caps()) {
        return Err(c.deny(format!("dump {who}: it holds capabilities the client lacks ({extra})")).into());
    }
    Ok(())
}

/// Task `pid` (each of its threads; only the task for a zombie) is one
/// `c` could ptrace.
pub fn check_task(c: &Caller, pid: i32, zombie: bool) -> Result<()> {
    let tids: Vec<i32> = if zombie {
        vec![pid]
    } else {
        crate::proc::threads(pid)?
    };
    for tid in tids {
        let st = if tid == pid { crate::proc::status::read(pid)? } else { crate::proc::status::read_thread(pid, tid)? };
        check_creds(c, pid, tid, &st)?;
    }
    if !zombie {
        let owner = std::fs::metadata(format!("/proc/{pid}/status")).with_context(|| format!("stat /proc/{pid}/status"))?.uid();
        if owner != c.uid {
            return Err(c.deny(format!("dump task {pid}: it is not dumpable (setuid, setgid or PR_SET_DUMPABLE 0)")).into());
        }
    }
    Ok(())
}

/// The tree of `root` as it is now (each thread's children, through
/// /proc), each task checked before criu touches any: a refusal here
/// leaves every task as it was. Tasks forked meanwhile are checked by
/// [`check_tree`] once the tree is frozen.
pub fn check_live_tree(c: &Caller, root: i32) -> Result<()> {
    let mut todo = vec![root];
    let mut seen = std::collections::HashSet::new();
    while let Some(pid) = todo.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let zombie = crate::proc::stat::read(pid).with_context(|| format!("can't dump task {pid}: no such process"))?.state == 'Z';
        check_task(c, pid, zombie)?;
        if zombie {
            continue;
        }
        for tid in crate::proc::threads(pid)? {
            let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")).unwrap_or_default();
            todo.extend(kids.split_whitespace().filter_map(|k| k.parse::<i32>().ok()));
        }
    }
    Ok(())
}

/// Every task of a frozen tree (`(pid, zombie)`), when the caller is confined.
pub fn check_tree(tasks: &[(i32, bool)]) -> Result<()> {
    let Some(c) = super::caller() else { return Ok(()) };
    tasks.iter().try_for_each(|&(pid, zombie)| check_task(c, pid, zombie))
}

/// WAIT_PID: task `pid` must be the caller's own (its real uid).
pub fn check_own(c: &Caller, pid: i32) -> Result<()> {
    let st = crate::proc::status::read(pid).with_context(|| format!("WAIT_PID {pid}"))?;
    if st.uids[0] != c.uid {
        return Err(c.deny(format!("wait for task {pid}: its real uid is {}", st.uids[0])).into());
    }
    Ok(())
}
