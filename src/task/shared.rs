//! Kernel objects tasks of a tree share with one another, both ways: fs
//! information (cwd, root, umask: a child cloned with CLONE_FS). At dump
//! the sharing is found with kcmp(KCMP_FS) and recorded as equal fs_id in
//! ids-PID.img, each distinct fs numbered on from criu's own as CRIU's id
//! generators do ([`fs_ids`]); at restore a task whose fs_id is its
//! parent's is forked with CLONE_FS ([`clone_flags`]). Sharing a restore
//! could not rebuild (with a task other than the parent, or under a root
//! of its own) is refused by name.
//! Shared fd tables (CLONE_FILES) are `task::fdt`'s (numbered by
//! [`assign`] too, forked with CLONE_FILES by [`clone_flags`]).

use anyhow::{bail, Result};
use nix::unistd::Pid;

use crate::images::pb::TaskKobjIdsEntry;
use crate::restorer::tree::Tree;
use crate::sys::kcmp::{kcmp, KCMP_FS};

/// The first fs_id of a dump's tasks (criu's own is 1).
const FIRST_FS_ID: u32 = 2;

/// The ids (fs_id, files_id) of each of `n` live tasks in pstree order
/// (parents first): `same(i, j)` says whether tasks i and j share the
/// object (`what` names it in errors), `parent(i)` is task i's parent
/// among them, `name(i)` names it in errors. Only a child can share its
/// parent's: other sharing is refused.
pub(super) fn assign(
    n: usize,
    what: &str,
    same: impl Fn(usize, usize) -> Result<bool>,
    parent: impl Fn(usize) -> Option<usize>,
    name: impl Fn(usize) -> i32,
) -> Result<Vec<u32>> {
    let mut ids: Vec<u32> = Vec::with_capacity(n);
    for i in 0..n {
        let mut with = None;
        for j in 0..i {
            if same(j, i)? {
                with = Some(j);
                break;
            }
        }
        let Some(j) = with else {
            // A new object: the next number.
            ids.push(ids.iter().max().map_or(FIRST_FS_ID, |m| m + 1));
            continue;
        };
        match parent(i) {
            Some(p) if p == j || same(p, i)? => ids.push(ids[p]),
            _ => bail!(
                "task {} shares its {what} with task {}, which is not its parent: dumping that is not supported",
                name(i),
                name(j)
            ),
        }
    }
    Ok(ids)
}

/// Set the fs_id of each live task `(pid, ppid, ids)` (pstree order).
/// A task sharing its fs must have the host's root: the restore sets the
/// root with chroot, which a task sharing the fs would see happen midway.
pub fn fs_ids(tasks: &mut [(i32, i32, &mut TaskKobjIdsEntry)]) -> Result<()> {
    let pids: Vec<(i32, i32)> = tasks.iter().map(|t| (t.0, t.1)).collect();
    let same = |a: usize, b: usize| -> Result<bool> {
        match kcmp(Pid::from_raw(pids[a].0), Pid::from_raw(pids[b].0), KCMP_FS, 0, 0) {
            Ok(r) => Ok(r == 0),
            Err(e) => bail!("can't compare the fs info of tasks {} and {} (kcmp KCMP_FS): {e}", pids[a].0, pids[b].0),
        }
    };
    let parent = |i: usize| pids.iter().position(|p| p.0 == pids[i].1);
    let ids = assign(pids.len(), "fs info (CLONE_FS: cwd, root, umask)", same, parent, |i| pids[i].0)?;
    for (i, t) in tasks.iter_mut().enumerate() {
        t.2.fs_id = ids[i];
        let shared = ids.iter().filter(|&&x| x == ids[i]).count() > 1;
        if shared && !has_host_root(t.0)? {
            bail!("task {} shares its fs info (CLONE_FS) with another task and has a root of its own: dumping that is not supported", t.0);
        }
    }
    Ok(())
}

fn has_host_root(pid: i32) -> Result<bool> {
    let root = std::fs::read_link(format!("/proc/{pid}/root"));
    match root {
        Ok(r) => Ok(r == std::path::Path::new("/")),
        Err(e) => bail!("can't read the root of task {pid}: {e}"),
    }
}

/// The clone flags task `idx` of the restore's tree is forked with: CLONE_FS
/// when its fs_id is its (live) parent's, CLONE_FILES when its files_id is
/// (as CRIU 4.2's get_clone_mask).
pub fn clone_flags(tree: &Tree, idx: usize) -> u64 {
    let node = &tree.nodes[idx];
    let (Some(me), Some(p)) = (node.alive(), node.parent.and_then(|p| tree.nodes[p].alive())) else { return 0 };
    let mut flags = 0;
    if shares_fs(&me.ids, &p.ids) {
        flags |= libc::CLONE_FS as u64;
    }
    if me.ids.files_id == p.ids.files_id {
        flags |= libc::CLONE_FILES as u64;
    }
    flags
}

fn shares_fs(a: &TaskKobjIdsEntry, b: &TaskKobjIdsEntry) -> bool {
    a.fs_id == b.fs_id
}

/// One id of a task's ids entry.
type IdOf = fn(&TaskKobjIdsEntry) -> u32;

/// Tasks sharing any of these the restore refuses: it gives each task its
/// own.
const NOT_RESTORED: [(&str, IdOf); 2] = [
    ("address space (vm_id", |i| i.vm_id),
    ("signal handlers (sighand_id", |i| i.sighand_id),
];

/// Refuse a tree sharing what the restore can't share again
/// ([`NOT_RESTORED`]; fd tables other than a child's with its parent:
/// `task::fdt`), or whose shared fs it can't rebuild: forks share
/// only with the parent, so the tasks of one fs_id must hang together
/// from one of them through parents (one has no parent among them); and
/// the root of a shared fs must be the host's (see [`fs_ids`]).
pub fn check_restorable(tree: &Tree) -> Result<()> {
    super::fdt::Tables::of(tree).check()?;
    let live: Vec<(i32, &TaskKobjIdsEntry)> = tree.live_ids();
    for (k, &(pid, ids)) in live.iter().enumerate() {
        for (what, id) in NOT_RESTORED {
            if let Some((other, _)) = live[..k].iter().find(|(_, o)| id(o) == id(ids)) {
                bail!("task {pid} shares its {what} {}) with task {other}: restoring that is not supported yet", id(ids));
            }
        }
    }
    for n in &tree.nodes {
        let Some(me) = n.alive() else { continue };
        let group: Vec<&crate::restorer::tree::Node> =
            tree.nodes.iter().filter(|o| o.alive().is_some_and(|t| shares_fs(&t.ids, &me.ids))).collect();
        if group.len() < 2 {
            continue;
        }
        let tops: Vec<i32> = group.iter().filter(|o| !o.parent.is_some_and(|p| group.iter().any(|g| g.pid == tree.nodes[p].pid))).map(|o| o.pid).collect();
        if tops.len() > 1 {
            bail!(
                "tasks {tops:?} share their fs info (fs_id {}) without one being the parent of the other: can't restore that",
                me.ids.fs_id
            );
        }
        let root = tree.reg(me.fs.root_id)?;
        if root.name != "/" {
            bail!("task {} shares its fs info (fs_id {}) and has the root {}: can't restore that", n.pid, me.ids.fs_id, root.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups of tasks sharing their fs, by index.
    fn groups(g: &'static [&'static [usize]]) -> impl Fn(usize, usize) -> Result<bool> {
        move |a, b| Ok(a == b || g.iter().any(|s| s.contains(&a) && s.contains(&b)))
    }

    #[test]
    fn a_child_sharing_its_parents_fs_takes_its_id() {
        // 0 -> 1 (shares with 0), 0 -> 2 (own), 2 -> 3 (shares with 2)
        let parents = [None, Some(0), Some(0), Some(2)];
        let ids = assign(4, "fs", groups(&[&[0, 1], &[2, 3]]), |i| parents[i], |i| i as i32).unwrap();
        assert_eq!(ids, vec![2, 2, 3, 3]);
        // nobody shares: each its own, counted on
        let ids = assign(4, "fs", groups(&[]), |i| parents[i], |i| i as i32).unwrap();
        assert_eq!(ids, vec![2, 3, 4, 5]);
    }

    #[test]
    fn a_grandchild_sharing_through_its_parent_is_fine() {
        let parents = [None, Some(0), Some(1)];
        let ids = assign(3, "fs", groups(&[&[0, 1, 2]]), |i| parents[i], |i| i as i32).unwrap();
        assert_eq!(ids, vec![2, 2, 2]);
    }

    #[test]
    fn sharing_with_a_task_other_than_the_parent_is_refused() {
        // 2's parent 1 has its own fs; 2 shares the root's.
        let parents = [None, Some(0), Some(1)];
        let e = assign(3, "fs info", groups(&[&[0, 2]]), |i| parents[i], |i| 100 + i as i32).unwrap_err();
        assert!(e.to_string().contains("task 102 shares its fs info"), "{e}");
        assert!(e.to_string().contains("task 100"), "{e}");
    }

    #[test]
    fn kcmp_sees_our_fs_shared_with_ourselves_and_not_a_forked_child() {
        let mut c = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let (me, kid) = (Pid::from_raw(std::process::id() as i32), Pid::from_raw(c.id() as i32));
        let same = kcmp(me, me, KCMP_FS, 0, 0);
        let other = kcmp(me, kid, KCMP_FS, 0, 0);
        let _ = c.kill();
        let _ = c.wait();
        match (same, other) {
            (Ok(s), Ok(o)) => {
                assert_eq!(s, 0);
                assert_ne!(o, 0);
            }
            (Err(e), _) | (_, Err(e)) => println!("skipped: kcmp is not available here ({e})"),
        }
    }
}
