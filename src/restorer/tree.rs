//! The images of the tree to restore, read and checked before any task is
//! created (CRIU's pstree.c and the checks of cr-restore.c): pstree.img
//! with every task's core, ids, mm, fs and fd table ([`Tree::load`]); that
//! every file is unchanged ([`Tree::check_files`]) and every pid and thread
//! id free ([`Tree::check_pids_free`]); how each task gets its session and
//! process group ([`Tree::plan_ids`]) and its vDSO ([`Tree::plan_vdso`]);
//! which shared memory objects tasks share ([`Tree::shared_shmem`]).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use tracing::info;

use crate::images::kind::kinds;
use crate::images::pb::{
    CoreEntry, PstreeEntry, RegFileEntry, TaskKobjIdsEntry,
};
use crate::images::{inventory, ImageDir, ImageReader};
use crate::task::core::{TASK_ALIVE, TASK_DEAD, TASK_STOPPED};

/// The images of one live task, read and checked before anything is
/// created, with what the restore decided for it.
pub struct TaskImages {
    pub pstree: PstreeEntry,
    /// Its core, threads, ids, mm, fs and fd table.
    pub imgs: crate::task::images::TaskImages,
    /// How it gets its vDSO (decided before any task exists).
    pub vdso: crate::mem::vdso::VdsoPlan,
}

impl std::ops::Deref for TaskImages {
    type Target = crate::task::images::TaskImages;
    fn deref(&self) -> &Self::Target {
        &self.imgs
    }
}

fn one<M: prost::Message + Default>(dir: &ImageDir, name: &str, kind: crate::images::Kind<M>) -> Result<M> {
    crate::task::images::read_one(dir, name, kind)
}

impl TaskImages {
    fn load(dir: &ImageDir, pstree: &PstreeEntry, core: CoreEntry) -> Result<TaskImages> {
        let pid = pstree.pid;
        match &core.thread_info {
            None => bail!("core-{pid}.img is not an x86_64 task: restoring other architectures is not supported here"),
            Some(ti) => crate::task::thread_info::check_restorable(ti, pid)?,
        }
        if !pstree.threads.is_empty() && pstree.threads.first() != Some(&pid) {
            bail!("pstree.img: the threads of task {pid} do not start with its leader ({:?})", pstree.threads);
        }
        let tids: Vec<i32> = pstree.threads.iter().skip(1).map(|&t| t as i32).collect();
        let imgs = crate::task::images::TaskImages::read(dir, pid as i32, &tids, core)?;
        for (tid, t) in &imgs.threads {
            if t.mtype != imgs.core.mtype || t.thread_info.is_none() || t.thread_core.is_none() {
                bail!("core-{tid}.img (thread {tid} of task {pid}) has no x86_64 registers or thread core");
            }
            if let Some(ti) = &t.thread_info {
                crate::task::thread_info::check_restorable(ti, *tid as u32)?;
            }
        }
        crate::mem::aio::rings(&imgs.mm).with_context(|| format!("mm-{pid}.img"))?;
        Ok(TaskImages { pstree: pstree.clone(), imgs, vdso: Default::default() })
    }

    pub fn pid(&self) -> i32 {
        self.pstree.pid as i32
    }
}

/// What a task of the tree is.
pub enum Body {
    Alive(Box<TaskImages>),
    /// A zombie: its core (task core only: name, exit code).
    Zombie(Box<CoreEntry>),
    /// Not in the images: a task the restore adds (CRIU's TASK_HELPER) to
    /// recreate a session or process group whose leader had exited. It
    /// takes the leader's pid, leads the session or group, forks the
    /// children that must be born in it, and exits once every task joined
    /// its group; its parent reaps it.
    Helper,
}

/// One task of the tree to restore.
pub struct Node {
    pub pid: i32,
    /// The session and process group it ends up in (with --shell-job,
    /// the root's, if it led neither, become criu's).
    pub sid: i32,
    pub pgid: i32,
    pub body: Body,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
}

impl Node {
    pub fn zombie(&self) -> bool {
        matches!(self.body, Body::Zombie(_))
    }

    pub fn helper(&self) -> bool {
        matches!(self.body, Body::Helper)
    }

    /// Leads its session: setsid right after its fork (its children inherit it).
    pub fn setsid(&self) -> bool {
        self.sid == self.pid
    }

    /// Leads its process group.
    pub fn own_group(&self) -> bool {
        self.pgid == self.pid
    }

    pub fn alive(&self) -> Option<&TaskImages> {
        match &self.body {
            Body::Alive(t) => Some(t),
            Body::Zombie(_) | Body::Helper => None,
        }
    }
}

/// The images of the whole tree, read and checked.
pub struct Tree {
    /// Parents before children, the root first (pstree.img's order).
    pub nodes: Vec<Node>,
    /// files.img and the file kinds' side images.
    pub files: crate::files::Images,
    /// seccomp.img's filters, read when some thread is in filter mode.
    pub seccomp: Option<crate::images::pb::SeccompEntry>,
}

impl Tree {
    pub fn load(dir: &ImageDir) -> Result<Tree> {
        let inv = inventory::read(dir)?;
        if inv.img_version != crate::images::kind::CRTOOLS_IMAGES_V1_1 {
            bail!("inventory.img: images version {} is not supported (want 2)", inv.img_version);
        }
        let items: Vec<PstreeEntry> = ImageReader::open_kind(dir, "pstree.img", kinds::pstree())?.all()?;
        if items.is_empty() {
            bail!("pstree.img is empty");
        }
        let mut nodes: Vec<Node> = Vec::with_capacity(items.len());
        for (i, e) in items.iter().enumerate() {
            let pid = e.pid as i32;
            if pid <= 0 || nodes.iter().any(|n| n.pid == pid) {
                bail!("pstree.img: task {pid} is listed twice (or is not a pid)");
            }
            let parent = if i == 0 {
                None
            } else {
                Some(nodes.iter().position(|n| n.pid == e.ppid as i32).with_context(|| {
                    format!("pstree.img: the parent {} of task {pid} is not listed before it", e.ppid)
                })?)
            };
            let core: CoreEntry = one(dir, &kinds::core().file_name(u64::from(e.pid)), kinds::core())?;
            if core.mtype != crate::images::pb::core_entry::March::X8664 as i32 {
                bail!("core-{pid}.img is not an x86_64 task: restoring other architectures is not supported here");
            }
            let state = core.tc.as_ref().map(|tc| tc.task_state).with_context(|| format!("core-{pid}.img has no task core"))?;
            let body = match state {
                TASK_DEAD if i == 0 => bail!("the root task {pid} is a zombie: nothing to restore"),
                TASK_DEAD => {
                    if let Some(p) = parent.filter(|&p| nodes[p].zombie()) {
                        bail!("pstree.img: task {pid} is a child of zombie {}", nodes[p].pid);
                    }
                    Body::Zombie(Box::new(core))
                }
                TASK_ALIVE | TASK_STOPPED => {
                    crate::task::core::stop_signal(&core, pid)?;
                    Body::Alive(Box::new(TaskImages::load(dir, e, core)?))
                }
                s => bail!("core-{pid}.img: task state {s} can't be restored (not alive, stopped or a zombie)"),
            };
            nodes.push(Node { pid, sid: e.sid as i32, pgid: e.pgid as i32, body, parent, children: Vec::new() });
            if let Some(p) = parent {
                nodes[p].children.push(i);
            }
        }
        let files = crate::files::Images::load(dir)?;
        // Filter mode in a thread core, or (older images) in the task core.
        let filtered = |c: &CoreEntry| {
            let mode = c.thread_core.as_ref().and_then(|t| t.seccomp_mode).or(c.tc.as_ref().and_then(|t| t.old_seccomp_mode));
            mode == Some(crate::images::pb::SeccompMode::Filter as i32)
        };
        let seccomp = if nodes.iter().filter_map(Node::alive).any(|t| filtered(&t.core) || t.threads.iter().any(|(_, c)| filtered(c))) {
            ImageReader::open_kind(dir, "seccomp.img", kinds::seccomp())?.next_entry()?
        } else {
            None
        };
        Ok(Tree { nodes, files, seccomp })
    }

    /// Helper tasks were added (`plan_ids`).
    pub fn has_helpers(&self) -> bool {
        self.nodes.iter().any(Node::helper)
    }

    pub fn root(&self) -> &Node {
        &self.nodes[0]
    }

    /// Each live task's pid and ids, the root first.
    pub fn live_ids(&self) -> Vec<(i32, &TaskKobjIdsEntry)> {
        self.nodes.iter().filter_map(|n| n.alive().map(|t| (n.pid, &t.ids))).collect()
    }

    pub fn reg(&self, id: u32) -> Result<&RegFileEntry> {
        self.files.get(&id).and_then(|f| f.reg.as_ref()).with_context(|| format!("file id {id} is not a regular file in files.img"))
    }

    pub fn regs_by_id(&self) -> HashMap<u32, RegFileEntry> {
        self.files.iter().filter_map(|(id, f)| f.reg.clone().map(|r| (*id, r))).collect()
    }

    /// Check every regular file the tree uses still matches its record
    /// (but those replaced by --inherit-fd).
    pub fn check_files(&self, inherit: &[String]) -> Result<()> {
        let inherited: Vec<String> = inherit.iter().filter_map(|v| crate::opts::parse_inherit_fd(v).map(|(_, r)| r.to_string())).collect();
        let pids: Vec<i32> = self.nodes.iter().map(|n| n.pid).collect();
        let tables: Vec<(i32, &[crate::images::pb::FdinfoEntry])> =
            self.nodes.iter().map(|n| (n.pid, n.alive().map(|t| t.fdinfo.as_slice()).unwrap_or(&[]))).collect();
        crate::files::pidfd::check_targets(self.files.values(), &tables)?;
        crate::files::restore::check(&self.files, &inherited, &pids)
    }

    /// Every pid and thread id of the tree must be free.
    pub fn check_pids_free(&self) -> Result<()> {
        for n in &self.nodes {
            let pid = n.pid;
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                bail!("pid {pid} is taken: can't restore task {pid} (a process with that pid is running)");
            }
            if let Some(t) = n.alive() {
                for (tid, _) in &t.threads {
                    if std::path::Path::new(&format!("/proc/{tid}")).exists() {
                        bail!("pid {tid} is taken: can't restore thread {tid} of task {pid} (a task with that id is running)");
                    }
                }
            }
        }
        Ok(())
    }

    /// Compare each task's vDSO with ours: remap ours, or proxy to it
    /// (refusing here, by symbol, an image's vDSO ours can't stand in for).
    pub fn plan_vdso(&mut self, dir: &ImageDir) -> Result<()> {
        use crate::mem::vdso;
        let rt = vdso::Runtime::current()?;
        for n in &mut self.nodes {
            let Body::Alive(t) = &mut n.body else { continue };
            let pid = t.pid() as u64;
            let img = vdso::image_vdso(&t.mm, dir, pid).with_context(|| format!("task {pid}"))?;
            t.vdso = vdso::decide(img.as_ref(), rt.as_ref(), pid)?;
            match (&t.vdso, &img) {
                (vdso::VdsoPlan::Proxy(p), Some(img)) => {
                    info!("task {pid}: its vDSO differs from this kernel's: restored as a proxy ({} entries)", p.len());
                    let cores = std::iter::once((pid as i32, &t.core)).chain(t.threads.iter().map(|(tid, c)| (*tid, c)));
                    for (tid, core) in cores {
                        let ip = core.thread_info.as_ref().map_or(0, |ti| ti.gpregs.ip);
                        if img.vdso.0 <= ip && ip < img.vdso.1 && !p.iter().any(|x| img.vdso.0 + x.offset == ip) {
                            tracing::warn!(
                                "thread {tid} of task {pid} was stopped inside its vDSO (+{:#x}): that one call ends in the image's code \
                                 against zeroed vvar data (clock_gettime/gettimeofday fall back to the system call, time() may give 0)",
                                ip - img.vdso.0
                            );
                        }
                    }
                }
                (vdso::VdsoPlan::Remap, _) => info!("task {pid}: its vDSO is this kernel's"),
                _ => {}
            }
        }
        Ok(())
    }

    /// Decide how each task gets its session and process group, adding
    /// helper tasks where a leader had exited (as CRIU's
    /// prepare_pstree_ids) and refusing by name what even they can't
    /// recreate. With --shell-job, a root that led neither its session nor
    /// its group joins criu's, and so do the tasks that shared them with it.
    pub fn plan_ids(&mut self, shell_job: bool) -> Result<()> {
        let our_sid = nix::unistd::getsid(None).context("getsid")?.as_raw();
        let our_pgid = nix::unistd::getpgrp().as_raw();
        let (rpid, rsid, rpgid) = (self.root().pid, self.root().sid, self.root().pgid);
        if rsid != rpid {
            if !shell_job {
                bail!("task {rpid} is not a session leader (session {rsid}): restore it with --shell-job");
            }
            for n in &mut self.nodes {
                if n.sid == rsid {
                    n.sid = our_sid;
                }
            }
        }
        if shell_job && rpgid != rpid {
            for n in &mut self.nodes {
                if n.pgid == rpgid {
                    n.pgid = our_pgid;
                }
            }
        }
        self.add_session_helpers()?;
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            let (pid, sid, pgid) = (n.pid, n.sid, n.pgid);
            if n.setsid() && !n.own_group() {
                bail!("task {pid} leads session {sid} but is in process group {pgid}: the images are inconsistent");
            }
            // Sessions come only from a fork (or setsid): a task's must be
            // its parent's, or its own.
            if !n.setsid() {
                let inherited = n.parent.map_or(our_sid, |p| self.nodes[p].sid);
                if sid != inherited {
                    bail!(
                        "task {pid} is in session {sid}, neither its own nor its parent's ({inherited}): only a child of the root can be (through a helper task), as CRIU 4.2"
                    );
                }
            }
            if !n.own_group() {
                let leader = self.nodes.iter().find(|l| l.pid == pgid);
                let ours = pgid == our_pgid && sid == our_sid;
                match leader {
                    Some(l) if l.own_group() && l.sid == sid => {}
                    Some(l) if l.own_group() => bail!(
                        "task {pid} is in process group {pgid} of session {sid}, but its leader {} is in session {}: the images are inconsistent",
                        l.pid, l.sid
                    ),
                    Some(l) => bail!(
                        "task {pid} is in process group {pgid}, whose leader {} left it for group {}: restoring that is not supported yet",
                        l.pid,
                        l.pgid
                    ),
                    None if ours => {}
                    None if n.zombie() => bail!("zombie {pid} is in process group {pgid}, whose leader is not in the tree: a zombie can't fork the helper task that recreates it"),
                    None => self.add_helper(pgid, sid, pgid, i, &[])?,
                }
            }
        }
        Ok(())
    }

    /// A child of the root in a session neither the root's nor its own,
    /// whose leader is not in the tree, is born to a helper with the
    /// leader's pid, a child of the root, that leads the session (and the
    /// group of the same id); every such child of the root in that session
    /// moves under it. It exits once they are restored: they are the
    /// root's again (the root was a subreaper, or they could not have been
    /// its children).
    fn add_session_helpers(&mut self) -> Result<()> {
        let rsid = self.root().sid;
        let mut i = 0;
        while i < self.nodes[0].children.len() {
            let c = self.nodes[0].children[i];
            let (cpid, sid) = (self.nodes[c].pid, self.nodes[c].sid);
            i += 1;
            if sid == rsid || sid == cpid || self.nodes[c].helper() {
                continue;
            }
            let moved: Vec<usize> = self.nodes[0]
                .children
                .iter()
                .copied()
                .filter(|&k| self.nodes[k].sid == sid && self.nodes[k].pid != sid && !self.nodes[k].helper())
                .collect();
            match self.nodes.iter().position(|n| n.pid == sid) {
                // The leader is gone: the helper is it.
                None => self.add_helper(sid, sid, sid, 0, &moved)?,
                // The leader lives (they were its descendants): a helper
                // with a free pid, its child in its group, forks them.
                Some(l) if self.nodes[l].setsid() && !self.nodes[l].zombie() => {
                    let pid = self.free_pid()?;
                    let pgid = self.nodes[l].pgid;
                    self.add_helper(pid, sid, pgid, l, &moved)?;
                }
                Some(l) => bail!(
                    "task {cpid} is in session {sid}, whose task {} is {}: the images are inconsistent",
                    self.nodes[l].pid,
                    if self.nodes[l].zombie() { "a zombie (no helper can be forked by it)" } else { "not its leader" }
                ),
            }
            i = 0;
        }
        Ok(())
    }

    /// A pid for a helper that stands for no task of the images. CRIU
    /// takes the one just after the tree's pids; but that is where the
    /// kernel hands out the next pids too (the tree was just made, or just
    /// restored), so another process could take it before the helper is
    /// forked. The helper leaves no trace, so any free pid does: the first
    /// free one half the pid space away from the last pid handed out.
    fn free_pid(&self) -> Result<i32> {
        let pids: std::collections::HashSet<i32> = self
            .nodes
            .iter()
            .flat_map(|n| std::iter::once(n.pid).chain(n.alive().into_iter().flat_map(|t| t.threads.iter().map(|(tid, _)| *tid))))
            .collect();
        let read = |f: &str| std::fs::read_to_string(f).ok().and_then(|s| s.trim().parse::<i32>().ok());
        let max = read("/proc/sys/kernel/pid_max").unwrap_or(32768);
        let last = read("/proc/sys/kernel/ns_last_pid").unwrap_or(0);
        // Pids below 300 are handed out only once, at boot.
        let (low, span) = (300, max - 300);
        anyhow::ensure!(span > 0, "no free pid for a helper task (pid_max is {max})");
        (0..span)
            .map(|k| low + ((last - low).rem_euclid(span) + span / 2 + k) % span)
            .find(|p| !pids.contains(p) && !std::path::Path::new(&format!("/proc/{p}")).exists())
            .context("no free pid for a helper task")
    }

    /// Add helper `pid` (in session `sid` and group `pgid`) as a child of
    /// node `parent`, adopting `adopt` (children of the root).
    fn add_helper(&mut self, pid: i32, sid: i32, pgid: i32, parent: usize, adopt: &[usize]) -> Result<()> {
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            bail!("pid {pid} is taken: can't restore the helper task that recreates session/process group {pid} (a process with that pid is running)");
        }
        let idx = self.nodes.len();
        info!(
            "task {pid}: a helper (child of {}) recreating {} {pid}{}",
            self.nodes[parent].pid,
            if sid == pid { "session" } else if pgid == pid { "process group" } else { "session (its leader lives)" },
            if adopt.is_empty() { String::new() } else { format!(", parent of {:?}", adopt.iter().map(|&a| self.nodes[a].pid).collect::<Vec<_>>()) }
        );
        self.nodes[0].children.retain(|c| !adopt.contains(c));
        // Forked first: the group must exist before any task joins it.
        self.nodes[parent].children.insert(0, idx);
        for &a in adopt {
            self.nodes[a].parent = Some(idx);
        }
        self.nodes.push(Node { pid, sid, pgid, body: Body::Helper, parent: Some(parent), children: adopt.to_vec() });
        Ok(())
    }

    /// Anonymous shared memory objects mapped by more than one task, with
    /// the size each needs: (shmid, bytes).
    pub fn shared_shmem(&self) -> Vec<(u64, u64)> {
        let mut users: HashMap<u64, (Vec<i32>, u64)> = HashMap::new();
        for n in &self.nodes {
            let Some(t) = n.alive() else { continue };
            for v in t.mm.vmas.iter().filter(|v| v.status & crate::mem::vma::status::ANON_SHARED != 0) {
                let u = users.entry(v.shmid).or_default();
                if !u.0.contains(&n.pid) {
                    u.0.push(n.pid);
                }
                u.1 = u.1.max(v.pgoff + (v.end - v.start));
            }
        }
        let mut out: Vec<(u64, u64)> = users.into_iter().filter(|(_, (p, _))| p.len() > 1).map(|(id, (_, size))| (id, size)).collect();
        out.sort_unstable();
        out
    }

    /// The file descriptions tasks before `idx` hold (they set them up
    /// once installed: task `idx` must not again).
    pub fn files_before(&self, idx: usize) -> Vec<u32> {
        self.nodes[..idx].iter().filter_map(Node::alive).flat_map(|t| t.fdinfo.iter().map(|fi| fi.id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of zombies (plan_ids needs only pids, ids and shape).
    fn tree(tasks: &[(i32, Option<usize>, i32, i32)]) -> Tree {
        let mut nodes: Vec<Node> = Vec::new();
        for (i, &(pid, parent, sid, pgid)) in tasks.iter().enumerate() {
            nodes.push(Node { pid, sid, pgid, body: Body::Zombie(Box::default()), parent, children: Vec::new() });
            if let Some(p) = parent {
                nodes[p].children.push(i);
            }
        }
        Tree { nodes, files: Default::default(), seccomp: None }
    }

    /// A pid no process has (the helper's must be free).
    fn free_pid() -> i32 {
        (4_000_000..4_100_000).find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).expect("a free pid")
    }

    #[test]
    fn session_helper_adopts_the_roots_children_of_its_session() {
        let (r, s) = (free_pid(), free_pid() + 1);
        // The root; B in session S (group S); C in session S (its own
        // group); D in the root's session.
        let mut t = tree(&[(r, None, r, r), (r + 10, Some(0), s, s), (r + 11, Some(0), s, r + 11), (r + 12, Some(0), r, r)]);
        if std::path::Path::new(&format!("/proc/{s}")).exists() {
            eprintln!("skipped: pid {s} is taken");
            return;
        }
        t.plan_ids(false).expect("plan_ids");
        assert_eq!(t.nodes.len(), 5);
        let h = &t.nodes[4];
        assert!(h.helper());
        assert_eq!((h.pid, h.sid, h.pgid, h.parent), (s, s, s, Some(0)));
        assert_eq!(h.children, vec![1, 2]);
        assert_eq!(t.nodes[0].children, vec![4, 3], "the helper is forked first; B and C moved under it");
        assert_eq!(t.nodes[1].parent, Some(4));
        assert_eq!(t.nodes[2].parent, Some(4));
    }

    #[test]
    fn a_group_without_leader_under_a_zombie_is_refused() {
        let r = free_pid();
        let mut t = tree(&[(r, None, r, r), (r + 10, Some(0), r, r + 5)]);
        let e = t.plan_ids(false).unwrap_err().to_string();
        assert!(e.contains(&format!("zombie {} is in process group {}", r + 10, r + 5)), "{e}");
        assert!(!t.has_helpers());
    }

    #[test]
    fn a_session_whose_leader_is_a_zombie_is_refused_by_name() {
        let r = free_pid();
        // L (a zombie) leads session L; its former grandchild G (session L) is the root's child.
        let mut t = tree(&[(r, None, r, r), (r + 1, Some(0), r + 1, r + 1), (r + 2, Some(0), r + 1, r + 1)]);
        let e = t.plan_ids(false).unwrap_err().to_string();
        assert!(e.contains(&format!("task {} is in session {}, whose task {} is a zombie", r + 2, r + 1, r + 1)), "{e}");
    }

    #[test]
    fn a_session_whose_leader_lives_gets_a_helper_with_a_free_pid_under_it() {
        let r = free_pid();
        let mut t = tree(&[(r, None, r, r), (r + 1, Some(0), r + 1, r + 1), (r + 2, Some(0), r + 1, r + 2)]);
        // A stand-in for a live leader (plan_ids asks only "not a zombie").
        t.nodes[1].body = Body::Helper;
        t.plan_ids(false).expect("plan_ids");
        let h = &t.nodes[3];
        let max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
        assert!((300..max).contains(&h.pid), "helper pid {} is outside 300..{max}", h.pid);
        assert!(![r, r + 1, r + 2].contains(&h.pid));
        assert_eq!((h.sid, h.pgid, h.parent, h.children.clone()), (r + 1, r + 1, Some(1), vec![2]));
        assert_eq!(t.nodes[0].children, vec![1]);
        assert_eq!(t.nodes[1].children, vec![3]);
        assert_eq!(t.nodes[2].parent, Some(3));
    }
}
