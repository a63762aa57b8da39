//! The process tree: a task's children as /proc lists them, what a dumped
//! tree may not share between tasks, and the pstree.img entries (one per
//! task, parents before their children, as CRIU writes them).

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

use crate::images::pb::PstreeEntry;

/// The children of process `pid`: those of every thread
/// (/proc/PID/task/TID/children), in the kernel's order, zombies included.
/// Reliable once `pid` is stopped (its list then only loses children the
/// kernel reaps by itself and gains orphans if it is a subreaper).
pub fn children(pid: i32) -> Result<Vec<i32>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("can't list the threads of {pid}"))?;
    let mut tids: Vec<i32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    tids.sort_unstable_by_key(|t| (*t != pid, *t));
    let mut out = Vec::new();
    for tid in tids {
        // A thread that exited meanwhile has no children left.
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")) else { continue };
        for c in text.split_whitespace() {
            let c: i32 = c.parse().with_context(|| format!("bad child {c:?} of {pid}"))?;
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// What two processes of a dumped tree may not share yet (kcmp types).
/// Shared fs info (`task::shared`) and fd tables (`task::fdt`) are carried.
const SHARED_KINDS: [(i32, &str); 2] = [(1, "address space (CLONE_VM, e.g. a vfork child)"), (4, "signal handlers (CLONE_SIGHAND)")];

/// Refuse a child that shares kernel objects with its parent (CRIU restores
/// such sharing; we do not yet).
pub fn check_not_shared(parent: i32, child: i32) -> Result<()> {
    let (p, c) = (Pid::from_raw(parent), Pid::from_raw(child));
    for (kind, what) in SHARED_KINDS {
        if matches!(crate::sys::kcmp::kcmp(p, c, kind, 0, 0), Ok(0)) {
            bail!("task {child} shares its {what} with its parent {parent}: dumping that is not supported yet");
        }
    }
    Ok(())
}

/// A pstree.img entry.
pub fn entry(pid: i32, ppid: i32, pgid: i32, sid: i32, threads: &[i32]) -> PstreeEntry {
    PstreeEntry {
        pid: pid as u32,
        ppid: ppid as u32,
        pgid: pgid as u32,
        sid: sid as u32,
        threads: threads.iter().map(|t| *t as u32).collect(),
    }
}

/// Order tasks given as (pid, ppid) so each parent comes before its
/// children, depth first from the root (the first one), children in the
/// order given: CRIU's pstree order. Returns indexes into `tasks`.
pub fn preorder(tasks: &[(i32, i32)]) -> Vec<usize> {
    let mut out = Vec::with_capacity(tasks.len());
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        if tasks.is_empty() {
            break;
        }
        out.push(i);
        let kids: Vec<usize> = (0..tasks.len()).filter(|&k| k != i && tasks[k].1 == tasks[i].0 && !out.contains(&k)).collect();
        stack.extend(kids.into_iter().rev());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preorder_puts_parents_first() {
        // root 10 with children 11 (child 13) and 12
        let t = [(10, 0), (12, 10), (11, 10), (13, 11)];
        let o: Vec<i32> = preorder(&t).into_iter().map(|i| t[i].0).collect();
        assert_eq!(o, vec![10, 12, 11, 13]);
    }

    #[test]
    fn our_children_are_listed() {
        let mut c = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id() as i32;
        assert!(children(me).unwrap().contains(&(c.id() as i32)));
        let _ = c.kill();
        let _ = c.wait();
    }
}
