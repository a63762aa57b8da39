//! Fd tables shared between processes (CLONE_FILES; threads share theirs
//! anyway), both ways. Dump: [`files_ids`] numbers the tables with
//! kcmp(KCMP_FILES): a child sharing its parent's table takes its files_id
//! and the table is dumped once (fdinfo-N.img, as CRIU 4.2); sharing with
//! a task other than the parent is refused by name. Restore: [`Tables`]
//! groups the tasks of one table (a child whose files_id is its parent's
//! is forked with CLONE_FILES, `task::shared::clone_flags`), names the one
//! task that installs the table (the group's top task, its owner) and who
//! closes which stage pipe ends left in the shared table
//! ([`Tables::closes_chan`]); `restorer::fdt` is the meeting of the
//! group's tasks around the install.

use anyhow::{bail, Result};
use nix::unistd::Pid;

use crate::restorer::tree::Tree;
use crate::sys::kcmp::{kcmp, KCMP_FILES};

/// The files_id of each live task `(pid, ppid)` (pstree order, parents
/// first): tasks with one fd table get one id, numbered as CRIU's id
/// generator does (from 2 on, criu's own being 1).
pub fn files_ids(tasks: &[(i32, i32)]) -> Result<Vec<u32>> {
    let same = |a: usize, b: usize| -> Result<bool> {
        match kcmp(Pid::from_raw(tasks[a].0), Pid::from_raw(tasks[b].0), KCMP_FILES, 0, 0) {
            Ok(r) => Ok(r == 0),
            Err(e) => bail!("can't compare the fd tables of tasks {} and {} (kcmp KCMP_FILES): {e}", tasks[a].0, tasks[b].0),
        }
    };
    let parent = |i: usize| tasks.iter().position(|p| p.0 == tasks[i].1);
    super::shared::assign(tasks.len(), "fd table (CLONE_FILES)", same, parent, |i| tasks[i].0)
}

/// The tasks of a restore's tree that are one fd table.
#[derive(Debug, Default)]
pub struct Tables {
    /// Per node: the index of its group in `groups`, when it shares.
    group: Vec<Option<usize>>,
    /// Groups of two tasks or more, by node index, the owner (the task
    /// whose parent is not in the group) first, then pstree order.
    groups: Vec<Vec<usize>>,
    /// Per node: its parent.
    parent: Vec<Option<usize>>,
    /// Per node: its pid and files_id (None: not a live task).
    files: Vec<(i32, Option<u32>)>,
}

impl Tables {
    /// The groups of a tree whose node i has parent `parent[i]` and, when
    /// alive, files_id `files[i].1` (nodes in pstree order).
    pub fn new(parent: &[Option<usize>], files: &[(i32, Option<u32>)]) -> Tables {
        let mut at: Vec<Option<usize>> = vec![None; parent.len()];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in 0..parent.len() {
            let Some(id) = files[i].1 else { continue };
            match parent[i] {
                Some(p) if files[p].1 == Some(id) => {
                    let g = at[p].expect("a parent comes before its children");
                    groups[g].push(i);
                    at[i] = Some(g);
                }
                _ => {
                    at[i] = Some(groups.len());
                    groups.push(vec![i]);
                }
            }
        }
        // Only groups of two or more share anything.
        let mut group = vec![None; parent.len()];
        let mut kept = Vec::new();
        for g in groups.into_iter().filter(|g| g.len() > 1) {
            for &i in &g {
                group[i] = Some(kept.len());
            }
            kept.push(g);
        }
        Tables { group, groups: kept, parent: parent.to_vec(), files: files.to_vec() }
    }

    pub fn of(tree: &Tree) -> Tables {
        let parent: Vec<Option<usize>> = tree.nodes.iter().map(|n| n.parent).collect();
        let files: Vec<(i32, Option<u32>)> = tree.nodes.iter().map(|n| (n.pid, n.alive().map(|t| t.ids.files_id))).collect();
        Tables::new(&parent, &files)
    }

    /// Tasks with one files_id that the restore can't make one table:
    /// forks share a table only with the parent, so every task of a
    /// files_id must hang from one of them through parents of that id
    /// (CRIU 4.2 would give the others a table of their own).
    pub fn check(&self) -> Result<()> {
        let mut tops: Vec<(u32, i32)> = Vec::new();
        for (i, &(pid, id)) in self.files.iter().enumerate() {
            let Some(id) = id else { continue };
            let shares_parent = self.parent[i].is_some_and(|p| self.files[p].1 == Some(id));
            if shares_parent {
                continue;
            }
            if let Some(&(_, other)) = tops.iter().find(|t| t.0 == id) {
                bail!(
                    "tasks {other} and {pid} share their fd table (files_id {id}) without one descending from the other \
                     through tasks sharing it: restoring that is not supported"
                );
            }
            tops.push((id, pid));
        }
        Ok(())
    }

    /// The group task `i` is in (owner first), if it shares its table.
    pub fn group(&self, i: usize) -> Option<&[usize]> {
        self.group.get(i).copied().flatten().map(|g| self.groups[g].as_slice())
    }

    /// The task that installs task `i`'s shared table (None: not shared).
    pub fn owner(&self, i: usize) -> Option<usize> {
        self.group(i).map(|g| g[0])
    }

    /// Whether task `i` shares its table and does not install it.
    pub fn member(&self, i: usize) -> bool {
        self.owner(i).is_some_and(|o| o != i)
    }

    /// Whether task `i`, once its children are forked, closes its copy of
    /// the stage pipe ends of task `j` (every task inherits every task's).
    /// A task with a table of its own closes all but its own. In a shared
    /// table each fd is closed once, by one task, and only once no task
    /// of the group forks a task needing it: task j's ends are closed by
    /// the member one of whose children (outside the group) is j or an
    /// ancestor of j, by the owner when there is none; the ends of the
    /// group's own tasks are each one's own.
    pub fn closes_chan(&self, i: usize, j: usize) -> bool {
        let Some(g) = self.group(i) else { return j != i };
        if g.contains(&j) {
            return false;
        }
        let mut up = Some(j);
        while let Some(a) = up {
            if g.contains(&a) {
                return a == i;
            }
            up = self.parent[a];
        }
        i == g[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree: (pid, parent, files_id or None for a zombie or helper).
    fn tables(t: &[(i32, Option<usize>, Option<u32>)]) -> Tables {
        let parent: Vec<Option<usize>> = t.iter().map(|x| x.1).collect();
        let files: Vec<(i32, Option<u32>)> = t.iter().map(|x| (x.0, x.2)).collect();
        Tables::new(&parent, &files)
    }

    #[test]
    fn a_child_with_its_parents_files_id_is_in_its_group_and_the_parent_installs() {
        // 10 -> 11 (shares), 10 -> 12 (own), 11 -> 13 (shares), 12 -> 14 (shares with 12)
        let t = tables(&[(10, None, Some(2)), (11, Some(0), Some(2)), (12, Some(0), Some(3)), (13, Some(1), Some(2)), (14, Some(2), Some(3))]);
        t.check().unwrap();
        assert_eq!(t.group(0), Some(&[0, 1, 3][..]));
        assert_eq!(t.group(2), Some(&[2, 4][..]));
        assert_eq!(t.owner(3), Some(0));
        assert!(!t.member(0) && t.member(1) && t.member(3) && !t.member(2) && t.member(4));
        // nobody shares: no group, nobody installs for another
        let alone = tables(&[(10, None, Some(2)), (11, Some(0), Some(3)), (12, Some(1), None)]);
        alone.check().unwrap();
        assert!((0..3).all(|i| alone.group(i).is_none() && !alone.member(i)));
    }

    #[test]
    fn one_files_id_in_two_branches_is_refused_by_pid() {
        // siblings 11 and 12 with one table (CLONE_PARENT | CLONE_FILES), the parent another
        let t = tables(&[(10, None, Some(2)), (11, Some(0), Some(3)), (12, Some(0), Some(3))]);
        let e = t.check().unwrap_err().to_string();
        assert!(e.contains("tasks 11 and 12 share their fd table (files_id 3)"), "{e}");
        // a grandchild with the root's table, its parent (a helper or a task) between
        let t = tables(&[(10, None, Some(2)), (11, Some(0), None), (12, Some(1), Some(2))]);
        assert!(t.check().unwrap_err().to_string().contains("tasks 10 and 12"));
    }

    #[test]
    fn each_pipe_end_in_a_shared_table_has_one_closer() {
        // 0 (owner) -> 1 (member) -> 2 (own table) -> 3; 0 -> 4 (own table); 0's parent is nobody;
        // 5 is a sibling branch: 0 -> 5 (member) -> 6 (own table)
        let t = tables(&[
            (10, None, Some(2)),
            (11, Some(0), Some(2)),
            (12, Some(1), Some(3)),
            (13, Some(2), Some(4)),
            (14, Some(0), Some(5)),
            (15, Some(0), Some(2)),
            (16, Some(5), None),
        ]);
        let n = 7;
        for j in 0..n {
            let closers: Vec<usize> = [0, 1, 5].into_iter().filter(|&i| t.closes_chan(i, j)).collect();
            match j {
                // the group's own ends: nobody in the group closes them
                0 | 1 | 5 => assert!(closers.is_empty(), "{j}: {closers:?}"),
                // below member 1's own-table child: member 1, after forking it
                2 | 3 => assert_eq!(closers, vec![1], "{j}"),
                // the owner's own-table child
                4 => assert_eq!(closers, vec![0], "{j}"),
                // member 5's zombie or helper child
                6 => assert_eq!(closers, vec![5], "{j}"),
                _ => unreachable!(),
            }
        }
        // a task with its own table closes every end but its own
        assert!(t.closes_chan(2, 0) && t.closes_chan(2, 3) && !t.closes_chan(2, 2));
    }

    #[test]
    fn kcmp_sees_a_clone_files_child_share_our_table() {
        // A child sharing our table (CLONE_FILES) and one with a copy.
        let me = std::process::id() as i32;
        let shared = crate::sys::clone::spawn_sleeper(libc::CLONE_FILES as u64);
        let copied = crate::sys::clone::spawn_sleeper(0);
        let (Ok(shared), Ok(copied)) = (shared, copied) else {
            println!("skipped: can't clone test children");
            return;
        };
        let ids = files_ids(&[(me, 0), (shared.as_raw(), me), (copied.as_raw(), me)]);
        for c in [shared, copied] {
            let _ = nix::sys::signal::kill(c, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(c, None);
        }
        match ids {
            Ok(ids) => assert_eq!(ids, vec![2, 2, 3]),
            Err(e) if e.to_string().contains("kcmp") => println!("skipped: kcmp is not available here ({e:#})"),
            Err(e) => panic!("{e:#}"),
        }
    }
}
