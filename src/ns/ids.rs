//! Namespace ids as CRIU 4.2 numbers them: one counter across every kind,
//! criu's own eight first (1..8: pid, net, ipc, uts, time, mnt, user,
//! cgroup, the inventory's root_ids), then each namespace of the tree's
//! root that is not criu's, in the same kind order. The tree's other tasks
//! (and threads) must share the root's, as CRIU 4.2 requires for every
//! kind but net and mnt (nested ones are refused here by name).

use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use crate::images::pb::TaskKobjIdsEntry;

/// The namespace kinds, in CRIU's numbering order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pid,
    Net,
    Ipc,
    Uts,
    Time,
    Mnt,
    User,
    Cgroup,
}

pub const ALL: [Kind; 8] = [Kind::Pid, Kind::Net, Kind::Ipc, Kind::Uts, Kind::Time, Kind::Mnt, Kind::User, Kind::Cgroup];

impl Kind {
    /// Its name under /proc/PID/ns.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::Pid => "pid",
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Time => "time",
            Kind::Mnt => "mnt",
            Kind::User => "user",
            Kind::Cgroup => "cgroup",
        }
    }

    /// The kind of a /proc/PID/ns name.
    pub fn of_proc_name(name: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.proc_name() == name)
    }

    /// Its clone/unshare/setns flag.
    pub fn cflag(self) -> libc::c_int {
        match self {
            Kind::Pid => libc::CLONE_NEWPID,
            Kind::Net => libc::CLONE_NEWNET,
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Uts => libc::CLONE_NEWUTS,
            Kind::Time => libc::CLONE_NEWTIME,
            Kind::Mnt => libc::CLONE_NEWNS,
            Kind::User => libc::CLONE_NEWUSER,
            Kind::Cgroup => libc::CLONE_NEWCGROUP,
        }
    }

    fn index(self) -> usize {
        ALL.iter().position(|k| *k == self).expect("every kind is in ALL")
    }

    /// Its id in a task's ids record.
    pub fn get(self, ids: &TaskKobjIdsEntry) -> Option<u32> {
        match self {
            Kind::Pid => ids.pid_ns_id,
            Kind::Net => ids.net_ns_id,
            Kind::Ipc => ids.ipc_ns_id,
            Kind::Uts => ids.uts_ns_id,
            Kind::Time => ids.time_ns_id,
            Kind::Mnt => ids.mnt_ns_id,
            Kind::User => ids.user_ns_id,
            Kind::Cgroup => ids.cgroup_ns_id,
        }
    }

    fn set(self, ids: &mut TaskKobjIdsEntry, v: u32) {
        let f = match self {
            Kind::Pid => &mut ids.pid_ns_id,
            Kind::Net => &mut ids.net_ns_id,
            Kind::Ipc => &mut ids.ipc_ns_id,
            Kind::Uts => &mut ids.uts_ns_id,
            Kind::Time => &mut ids.time_ns_id,
            Kind::Mnt => &mut ids.mnt_ns_id,
            Kind::User => &mut ids.user_ns_id,
            Kind::Cgroup => &mut ids.cgroup_ns_id,
        };
        *f = Some(v);
    }
}

/// The inode of `/proc/WHO/ns/KIND` (None: the kernel has no such kind).
pub fn ns_ino(who: &str, kind: Kind) -> Result<Option<u64>> {
    match std::fs::metadata(format!("/proc/{who}/ns/{}", kind.proc_name())) {
        Ok(m) => Ok(Some(m.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("can't read the {} namespace of {who}", kind.proc_name())),
    }
}

/// The namespace ids of a dump's tree (every task has the root's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeNs {
    ids: [u32; 8],
    own: [bool; 8],
}

impl TreeNs {
    /// A tree entirely in criu's namespaces.
    pub const fn criu() -> TreeNs {
        TreeNs { ids: [1, 2, 3, 4, 5, 6, 7, 8], own: [false; 8] }
    }

    /// Number the namespaces of the tree of `root`: each kind where the
    /// root's is not criu's gets the next id (9 on), in kind order.
    pub fn of_root(root: i32) -> Result<TreeNs> {
        let mut t = TreeNs::criu();
        let mut next = 9;
        for k in ALL {
            let (Some(theirs), Some(ours)) = (ns_ino(&root.to_string(), k)?, ns_ino("self", k)?) else { continue };
            if theirs != ours {
                t.own[k.index()] = true;
                t.ids[k.index()] = next;
                next += 1;
            }
        }
        Ok(t)
    }

    pub fn id(&self, k: Kind) -> u32 {
        self.ids[k.index()]
    }

    /// Whether the root's namespace of `k` is not criu's.
    pub fn own(&self, k: Kind) -> bool {
        self.own[k.index()]
    }

    /// The kinds the root has of its own.
    pub fn owned(&self) -> impl Iterator<Item = Kind> + '_ {
        ALL.into_iter().filter(|k| self.own(*k))
    }

    /// Put the tree's namespace ids into a task's ids.
    pub fn apply(&self, ids: &mut TaskKobjIdsEntry) {
        for k in ALL {
            k.set(ids, self.id(k));
        }
    }
}

/// Refuse a thread (or task) `tid` of task `pid` whose namespace of a
/// kind other than net differs from the root's (CRIU 4.2: "Can't dump
/// nested %s namespace"); net is checked by `net::ns`, time by `timens`.
pub fn check_same_as_root(root: i32, pid: i32, tid: i32) -> Result<()> {
    let path = format!("{pid}/task/{tid}");
    for k in [Kind::Pid, Kind::Ipc, Kind::Uts, Kind::Mnt, Kind::User, Kind::Cgroup] {
        if ns_ino(&path, k)? != ns_ino(&root.to_string(), k)? {
            let who = if tid == pid { format!("task {pid}") } else { format!("thread {tid} of task {pid}") };
            bail!(
                "{who} is in a {} namespace other than task {root}'s: nested {} namespaces can't be dumped \
                 (CRIU 4.2 refuses them too)",
                k.proc_name(),
                k.proc_name()
            );
        }
    }
    Ok(())
}

/// Every thread of the live tasks `pids` (the root first) in the root's
/// namespaces (see [`check_same_as_root`]).
pub fn check_tree(pids: &[i32]) -> Result<()> {
    let root = *pids.first().context("an empty tree")?;
    for &pid in pids {
        for tid in crate::proc::threads(pid)? {
            check_same_as_root(root, pid, tid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_first_then_the_roots_own_in_kind_order() {
        let me = std::process::id() as i32;
        let t = TreeNs::of_root(me).unwrap();
        assert_eq!(t, TreeNs::criu(), "this process is in its own namespaces");
        let mut ids = TaskKobjIdsEntry::default();
        t.apply(&mut ids);
        assert_eq!((ids.pid_ns_id, ids.cgroup_ns_id), (Some(1), Some(8)));
        // A child in new uts and ipc namespaces: ipc 9, uts 10.
        let child = std::process::Command::new("unshare").args(["--uts", "--ipc", "sleep", "5"]).spawn();
        let Ok(mut child) = child else {
            println!("skipped: no unshare(1) here");
            return;
        };
        let pid = child.id() as i32;
        let mut t = TreeNs::criu();
        for _ in 0..100 {
            t = TreeNs::of_root(pid).unwrap();
            if t.own(Kind::Uts) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(t.own(Kind::Uts) && t.own(Kind::Ipc) && !t.own(Kind::Net), "{t:?}");
        assert_eq!((t.id(Kind::Ipc), t.id(Kind::Uts), t.id(Kind::Net), t.id(Kind::Time)), (9, 10, 2, 5));
    }
}
