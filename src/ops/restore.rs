//! `criu restore`: CRIU's stages for a process tree — read and check the
//! images (files unchanged, every pid and thread id free, sessions and
//! process groups recreatable), then recreate the tree: criu forks the root
//! with its pid (clone3 set_tid), and every restoring task forks its own
//! children with theirs, after making itself a session leader (setsid) or
//! a process group leader if it was one, so children inherit what they
//! must. The root opens every file of the tree first, so a description
//! tasks shared is shared again: each task installs the ones its fd table
//! names and closes the rest.
//!
//! Tasks and criu meet at stages, over one pair of pipes per task (the
//! task reports on one, criu answers on the other):
//! 1. forked — every task exists, leaders are in place (`F`); each live
//!    task premapped and filled its memory before forking its children,
//!    who take the areas they share with it copy-on-write (`mem::inherit`);
//! 2. criu's go (`P`): each task joins its process group, zombies report
//!    (`Z`) and exit with their status (a signal raised at themselves for
//!    a signal death) without being reaped: their parent waits for them
//!    with WNOWAIT, SIGCHLD at its default so no signal is left over;
//! 3. each live task installs its fds, cwd/root/umask
//!    and rlimits, and hands over to the restorer blob, which puts memory
//!    in place, creates the threads and jumps into the saved registers;
//!    its cleaner holds it, restored but not running (`HELD`);
//! 4. once every task is held, post-restore and pre-resume run (once, with
//!    the root's pid), then criu lets every task go (`g`).
//!
//! Every restoring task dies with its parent until its restorer sets the
//! image's parent-death signal (PR_SET_PDEATHSIG, the root with criu's
//! death); held tasks die with their cleaner when criu goes away. A failure
//! anywhere kills the whole tree.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use tracing::info;

use crate::files::restore as fd_restore;
use crate::images::kind::kinds;
use crate::images::pb::{
    CoreEntry, FdinfoEntry, FsEntry, MmEntry, PstreeEntry, RegFileEntry, TaskKobjIdsEntry,
};
use crate::images::{inventory, ImageDir, ImageReader};
use crate::mem::premap;
use crate::opts::Opts;
use crate::restorer::plan::{MmMap, Plan};
use crate::sys::clone::{fork_with_pid, Forked};

/// core-PID.img's task_state of a zombie (CRIU's TASK_DEAD).
const TASK_DEAD: u32 = 2;
/// ... of a live task, and of one stopped at dump time.
const TASK_ALIVE: u32 = 1;
const TASK_STOPPED: u32 = 3;

/// The signal a task stopped at dump time is stopped by again once
/// restored, as CRIU 4.2 does: TASK_STOPPED with its stop_signo (SIGSTOP
/// when the image has none); None for a running task. A stop_signo that
/// is no stop signal is refused (sending it would do something else).
fn stop_signal(core: &CoreEntry, pid: i32) -> Result<Option<Signal>> {
    let Some(tc) = core.tc.as_ref().filter(|tc| tc.task_state == TASK_STOPPED) else { return Ok(None) };
    let Some(n) = tc.stop_signo.filter(|&n| n > 0) else { return Ok(Some(Signal::SIGSTOP)) };
    match Signal::try_from(n as i32) {
        Ok(s @ (Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU)) => Ok(Some(s)),
        _ => bail!("core-{pid}.img: task {pid} was stopped by signal {n}, which is no stop signal: the image is inconsistent"),
    }
}

/// The images of one live task, read and checked before anything is created.
pub struct TaskImages {
    pub pstree: PstreeEntry,
    pub core: CoreEntry,
    /// The other threads' cores, in pstree order.
    pub threads: Vec<(i32, CoreEntry)>,
    pub ids: TaskKobjIdsEntry,
    pub mm: MmEntry,
    pub fs: FsEntry,
    pub fdinfo: Vec<FdinfoEntry>,
    /// How it gets its vDSO (decided before any task exists).
    pub vdso: crate::mem::vdso::VdsoPlan,
}

fn one<M: prost::Message + Default>(dir: &ImageDir, name: &str, kind: crate::images::Kind<M>) -> Result<M> {
    Ok(ImageReader::open_kind(dir, name, kind)?.expect()?)
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
        let mut threads = Vec::new();
        for &tid in pstree.threads.iter().skip(1) {
            let t: CoreEntry = one(dir, &kinds::core().file_name(u64::from(tid)), kinds::core())?;
            if t.mtype != core.mtype || t.thread_info.is_none() || t.thread_core.is_none() {
                bail!("core-{tid}.img (thread {tid} of task {pid}) has no x86_64 registers or thread core");
            }
            if let Some(ti) = &t.thread_info {
                crate::task::thread_info::check_restorable(ti, tid)?;
            }
            threads.push((tid as i32, t));
        }
        let ids: TaskKobjIdsEntry = one(dir, &kinds::ids().file_name(u64::from(pid)), kinds::ids())?;
        let mm: MmEntry = one(dir, &kinds::mm().file_name(u64::from(pid)), kinds::mm())?;
        let fs: FsEntry = one(dir, &kinds::fs().file_name(u64::from(pid)), kinds::fs())?;
        let fdinfo: Vec<FdinfoEntry> =
            ImageReader::open_kind(dir, &kinds::fdinfo().file_name(u64::from(ids.files_id)), kinds::fdinfo())?.all()?;
        Ok(TaskImages { pstree: pstree.clone(), core, threads, ids, mm, fs, fdinfo, vdso: Default::default() })
    }

    pub fn pid(&self) -> i32 {
        self.pstree.pid as i32
    }
}

/// What a task of the tree is.
enum Body {
    Alive(Box<TaskImages>),
    /// A zombie: its core (task core only: name, exit code).
    Zombie(Box<CoreEntry>),
}

/// One task of the tree to restore.
struct Node {
    pid: i32,
    /// The session and process group it ends up in (with --shell-job,
    /// the root's, if it led neither, become criu's).
    sid: i32,
    pgid: i32,
    body: Body,
    parent: Option<usize>,
    children: Vec<usize>,
}

impl Node {
    fn zombie(&self) -> bool {
        matches!(self.body, Body::Zombie(_))
    }

    /// Leads its session: setsid right after its fork (its children inherit it).
    fn setsid(&self) -> bool {
        self.sid == self.pid
    }

    /// Leads its process group.
    fn own_group(&self) -> bool {
        self.pgid == self.pid
    }

    fn alive(&self) -> Option<&TaskImages> {
        match &self.body {
            Body::Alive(t) => Some(t),
            Body::Zombie(_) => None,
        }
    }
}

/// The images of the whole tree, read and checked.
pub struct Tree {
    /// Parents before children, the root first (pstree.img's order).
    nodes: Vec<Node>,
    /// files.img and the file kinds' side images.
    files: crate::files::Images,
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
                    stop_signal(&core, pid)?;
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
        Ok(Tree { nodes, files })
    }

    fn root(&self) -> &Node {
        &self.nodes[0]
    }

    /// Each live task's pid and ids, the root first.
    fn live_ids(&self) -> Vec<(i32, &TaskKobjIdsEntry)> {
        self.nodes.iter().filter_map(|n| n.alive().map(|t| (n.pid, &t.ids))).collect()
    }

    fn reg(&self, id: u32) -> Result<&RegFileEntry> {
        self.files.get(&id).and_then(|f| f.reg.as_ref()).with_context(|| format!("file id {id} is not a regular file in files.img"))
    }

    fn regs_by_id(&self) -> HashMap<u32, RegFileEntry> {
        self.files.iter().filter_map(|(id, f)| f.reg.clone().map(|r| (*id, r))).collect()
    }

    /// Check every regular file the tree uses still matches its record
    /// (but those replaced by --inherit-fd).
    fn check_files(&self, inherit: &[String]) -> Result<()> {
        let inherited: Vec<String> = inherit.iter().filter_map(|v| crate::opts::parse_inherit_fd(v).map(|(_, r)| r.to_string())).collect();
        let pids: Vec<i32> = self.nodes.iter().map(|n| n.pid).collect();
        crate::files::restore::check(&self.files, &inherited, &pids)
    }

    /// Every pid and thread id of the tree must be free.
    fn check_pids_free(&self) -> Result<()> {
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
    fn plan_vdso(&mut self, dir: &ImageDir) -> Result<()> {
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

    /// Decide how each task gets its session and process group, refusing
    /// by name what needs CRIU's helper tasks. With --shell-job, a root
    /// that led neither its session nor its group joins criu's, and so do
    /// the tasks that shared them with it.
    fn plan_ids(&mut self, shell_job: bool) -> Result<()> {
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
        for n in &self.nodes {
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
                        "task {pid} is in session {sid}, neither its own nor its parent's ({inherited}): restoring that needs a helper task, which is not supported yet"
                    );
                }
            }
            if !n.own_group() {
                let leader = self.nodes.iter().any(|l| l.pid == pgid && l.own_group() && l.sid == sid);
                let ours = pgid == our_pgid && sid == our_sid;
                if !leader && !ours {
                    bail!(
                        "task {pid} is in process group {pgid}, whose leader is not in the tree: restoring that needs a helper task, which is not supported yet"
                    );
                }
            }
        }
        Ok(())
    }

    /// Anonymous shared memory objects mapped by more than one task, with
    /// the size each needs: (shmid, bytes).
    fn shared_shmem(&self) -> Vec<(u64, u64)> {
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
    fn files_before(&self, idx: usize) -> Vec<u32> {
        self.nodes[..idx].iter().filter_map(Node::alive).flat_map(|t| t.fdinfo.iter().map(|fi| fi.id)).collect()
    }
}
/// What the parent hears from the child.
enum Report {
    /// Running.
    Ready,
    /// Restored but held until criu's go-ahead.
    Held,
    Failed(String),
}

/// Read the next report: an error text from the restoring process (`E...`
/// then EOF), or a report word of the restorer or its cleaner.
/// `tids`: the task's threads as pstree.img lists them (a failing thread
/// is named by its place there).
fn read_report(r: &mut File, tids: &[u32]) -> Report {
    let mut first = [0u8; 1];
    if r.read_exact(&mut first).is_err() {
        return Report::Failed("the restoring process died before the task was ready".into());
    }
    if first[0] == b'E' {
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        return Report::Failed(String::from_utf8_lossy(&rest).into_owned());
    }
    let mut buf = [0u8; 8];
    buf[0] = first[0];
    match r.read_exact(&mut buf[1..]) {
        Ok(()) => {
            let code = i64::from_le_bytes(buf);
            if code == crate::restorer::plan::HELD as i64 {
                Report::Held
            } else if code == 0 {
                Report::Ready
            } else {
                let shift = crate::restorer::proto::step::THREAD_SHIFT;
                let step = (code as u64 >> 32) & ((1 << (shift - 32)) - 1);
                let thread = code as u64 >> shift;
                let who = match tids.get(thread as usize) {
                    _ if thread == 0 => String::new(),
                    Some(tid) => format!(" in thread {tid}"),
                    None => format!(" in thread #{thread}"),
                };
                Report::Failed(format!(
                    "the restorer failed at step {step} ({}){who} with {}",
                    crate::restorer::step_name(step),
                    nix::errno::Errno::from_raw(-(code as i32))
                ))
            }
        }
        Err(_) => Report::Failed("the restoring process died before the task was ready".into()),
    }
}


/// One task's pipes to criu: it reports on `ready`, criu answers on `go`.
/// Raw fds: every restoring task inherits all of them and closes what is
/// not its own (criu's ends at once, others' once its children are forked).
#[derive(Clone, Copy, Debug)]
struct Chan {
    ready_r: RawFd,
    ready_w: RawFd,
    go_r: RawFd,
    go_w: RawFd,
}

impl Chan {
    fn new() -> Result<Chan> {
        let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
        let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
        Ok(Chan { ready_r: ready_r.into_raw_fd(), ready_w: ready_w.into_raw_fd(), go_r: go_r.into_raw_fd(), go_w: go_w.into_raw_fd() })
    }
}

/// Stage reports of a restoring task (before its restorer's report words).
mod msg {
    /// Forked, leads what it must, its children forked.
    pub const FORKED: u8 = b'F';
    /// A zombie in its group, about to exit.
    pub const ZOMBIE: u8 = b'Z';
    /// An error text follows, up to EOF.
    pub const ERROR: u8 = b'E';
    /// criu: every task is forked; join your group and go on.
    pub const PROCEED: u8 = b'P';
    /// criu (to the cleaners): resume.
    pub const GO: u8 = b'g';
}

/// Read a one-byte stage report `want` of task `pid`.
fn expect_stage(r: &mut File, want: u8, pid: i32) -> std::result::Result<(), String> {
    let mut b = [0u8; 1];
    match r.read_exact(&mut b) {
        Ok(()) if b[0] == want => Ok(()),
        Ok(()) if b[0] == msg::ERROR => {
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            Err(format!("task {pid}: {}", String::from_utf8_lossy(&rest)))
        }
        Ok(()) => Err(format!("task {pid} reported {:?} where {:?} was due", b[0] as char, want as char)),
        Err(_) => Err(format!("the restoring process of task {pid} died")),
    }
}

/// criu's side of a restore in progress: the root (our child unless
/// --restore-sibling), the tasks known to be ours (they reported), and the
/// pipes. Dropping the go pipes makes every waiting task and cleaner give
/// up.
struct Running<'a> {
    tree: &'a Tree,
    root: Pid,
    our_child: bool,
    ready: Vec<File>,
    go: Vec<Option<File>>,
    known: Vec<i32>,
}

impl Running<'_> {
    /// Kill the whole tree: the go pipes close first (a cleaner holding
    /// its task lets go and kills it; tasks waiting for a stage leave),
    /// then every task we know and the root get SIGKILL (those not yet
    /// reported die with their parent: PR_SET_PDEATHSIG), and the root is
    /// reaped.
    fn kill_all(&mut self) {
        self.go.iter_mut().for_each(|g| drop(g.take()));
        let _ = kill(self.root, Signal::SIGKILL);
        for &pid in &self.known {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if self.our_child {
            let _ = waitpid(self.root, None);
        }
    }

    fn fail(&mut self, msg: String) -> anyhow::Error {
        self.kill_all();
        anyhow::anyhow!("restore of task {} failed: {msg}", self.tree.root().pid)
    }

    fn send(&mut self, i: usize, b: u8) -> std::result::Result<(), String> {
        let pid = self.tree.nodes[i].pid;
        let sent = match self.go[i].as_mut() {
            Some(g) => g.write_all(&[b]).map_err(|e| format!("telling task {pid} to go on: {e}")),
            None => Err(format!("task {pid} can't be told to go on")),
        };
        // A task that stopped listening failed, or died with one that did:
        // the failure a task reported says why better than the pipe.
        sent.map_err(|e| self.reported_failure().unwrap_or(e))
    }

    /// The first failure some task has reported (within half a second).
    fn reported_failure(&mut self) -> Option<String> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let readable: Vec<usize> = {
            let mut fds: Vec<PollFd> = self.ready.iter().map(|r| PollFd::new(r.as_fd(), PollFlags::POLLIN)).collect();
            poll(&mut fds, PollTimeout::from(500u16)).ok()?;
            fds.iter().enumerate().filter(|(_, f)| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN))).map(|(i, _)| i).collect()
        };
        readable.into_iter().find_map(|i| {
            let pid = self.tree.nodes[i].pid;
            // Only an error report counts (no stage report is 0).
            expect_stage(&mut self.ready[i], 0, pid).err().filter(|m| m.starts_with(&format!("task {pid}: ")))
        })
    }

    /// Stages 1 and 2: every task forked, then groups joined and zombies
    /// gone.
    fn fork_stages(&mut self) -> std::result::Result<(), String> {
        for i in 0..self.tree.nodes.len() {
            let pid = self.tree.nodes[i].pid;
            expect_stage(&mut self.ready[i], msg::FORKED, pid)?;
            self.known.push(pid);
        }
        info!("{} task(s) forked with their pids", self.known.len());
        for i in 0..self.tree.nodes.len() {
            self.send(i, msg::PROCEED)?;
        }
        for i in 0..self.tree.nodes.len() {
            if self.tree.nodes[i].zombie() {
                let pid = self.tree.nodes[i].pid;
                expect_stage(&mut self.ready[i], msg::ZOMBIE, pid)?;
                self.go[i] = None;
            }
        }
        Ok(())
    }

    /// Stage 3: each live task's report: held (restored, not running),
    /// or running (no cleaner could hold it). Returns (held, running).
    fn restored(&mut self) -> std::result::Result<(Vec<usize>, Vec<usize>), String> {
        let (mut held, mut running) = (Vec::new(), Vec::new());
        for i in 0..self.tree.nodes.len() {
            let Some(t) = self.tree.nodes[i].alive() else { continue };
            match read_report(&mut self.ready[i], &t.pstree.threads) {
                Report::Held => held.push(i),
                Report::Ready => running.push(i),
                Report::Failed(m) => return Err(self.task_msg(i, m)),
            }
        }
        Ok((held, running))
    }

    /// Tasks stopped at dump time that no cleaner held (they run
    /// already) get their stop signal now; a held task gets it from its
    /// cleaner just before it is let go (see `Plan::stop_signo`).
    fn stop_again(&self, tasks: &[usize]) -> std::result::Result<(), String> {
        for &i in tasks {
            let Some(t) = self.tree.nodes[i].alive() else { continue };
            let pid = t.pid();
            let Ok(Some(sig)) = stop_signal(&t.core, pid) else { continue };
            info!("task {pid} was stopped by {sig}: stopping it again");
            kill(Pid::from_raw(pid), sig).map_err(|e| self.task_msg(i, format!("kill({sig}) to stop it again: {e}")))?;
        }
        Ok(())
    }

    /// Stage 4: let the held tasks go, and see them running.
    /// Tasks to be stopped again go last, one by one, parents first: when
    /// one stops, its parent runs untraced with its own signal mask, so
    /// the SIGCHLD of the stop is what it would be to it (not queued while
    /// its cleaner held it with every signal blocked).
    fn release(&mut self, held: &[usize]) -> std::result::Result<(), String> {
        let stops = |i: &usize| self.tree.nodes[*i].alive().is_some_and(|t| matches!(stop_signal(&t.core, t.pid()), Ok(Some(_))));
        let (last, first): (Vec<usize>, Vec<usize>) = held.iter().copied().partition(stops);
        self.release_batch(&first)?;
        for i in last {
            self.release_batch(&[i])?;
        }
        Ok(())
    }

    /// Let `held` go at once, and see each running.
    fn release_batch(&mut self, held: &[usize]) -> std::result::Result<(), String> {
        for &i in held {
            self.send(i, msg::GO)?;
        }
        for &i in held {
            let threads = &self.tree.nodes[i].alive().map(|t| t.pstree.threads.clone()).unwrap_or_default();
            match read_report(&mut self.ready[i], threads) {
                Report::Ready => {}
                Report::Held => return Err(self.task_msg(i, "the cleaner reported twice".into())),
                Report::Failed(m) => return Err(self.task_msg(i, m)),
            }
            self.go[i] = None;
        }
        Ok(())
    }

    /// A task's failure, named by its pid when the tree has more than one.
    fn task_msg(&self, i: usize, m: String) -> String {
        if self.tree.nodes.len() == 1 { m } else { format!("task {}: {m}", self.tree.nodes[i].pid) }
    }
}

/// Run `criu restore`.
pub fn run(opts: &Opts) -> Result<i32> {
    let t0 = Instant::now();
    if opts.display_stats {
        bail!("option --display-stats is not supported yet for restore");
    }
    // Restored tasks land in criu's cgroups (no cgroup images yet): a
    // cgroup root elsewhere would be silently ignored.
    for (ctl, path) in &opts.new_cgroup_roots {
        crate::cgroup::membership::check_root_is_criu_own(ctl.as_deref(), path)?;
    }
    let dir = ImageDir::open(opts.imgs_dir.as_deref().unwrap_or(std::path::Path::new(".")))?;
    crate::ops::cpuinfo::check_restore(opts, &dir)?;
    crate::scripts::run(crate::scripts::Action::PreRestore, opts, Some(&dir), None)?;
    let mut tree = Tree::load(&dir)?;
    let pid = tree.root().pid;
    if tree.nodes.len() == 1 {
        info!("Restoring task {pid}");
    } else {
        let zombies = tree.nodes.iter().filter(|n| n.zombie()).count();
        info!("Restoring the tree of task {pid}: {} task(s), {zombies} zombie(s)", tree.nodes.len());
    }
    // Unlinked files come back under a name every task opens them by,
    // and are unlinked again once all of them hold what they need.
    tree.files.prepare(&dir)?;
    tree.check_files(&opts.inherit_fds)?;
    tree.check_pids_free()?;
    tree.plan_vdso(&dir)?;
    for n in &tree.nodes {
        if let Some(t) = n.alive().filter(|t| !t.threads.is_empty()) {
            info!("task {} has {} threads", n.pid, t.threads.len() + 1);
        }
    }
    tree.plan_ids(opts.shell_job)?;

    let chans: Vec<Chan> = tree.nodes.iter().map(|_| Chan::new()).collect::<Result<_>>()?;
    let flags = if opts.restore_sibling { libc::CLONE_PARENT as u64 } else { 0 };
    // The root is born in the tree's time namespace; criu leaves it at once.
    let timens = crate::ns::timens::enter(&dir, opts.unprivileged, &tree.live_ids())?;
    let forked = fork_with_pid(pid, flags);
    if let Ok(Forked::Child) = forked {
        let ctx = Ctx { tree: &tree, dir: &dir, opts, chans: &chans };
        task_main(&ctx, 0, Inherited::default())
    }
    let own_timens = timens.as_ref().is_some_and(|t| t.own());
    let left = timens.map(crate::ns::timens::Entered::leave).transpose();
    // The tasks' ends are theirs; ours are owned from here.
    for c in &chans {
        crate::sys::fd::close_raw(c.ready_w);
        crate::sys::fd::close_raw(c.go_r);
    }
    let ready: Vec<File> = chans.iter().map(|c| File::from(crate::sys::fd::owned(c.ready_r))).collect();
    let go: Vec<Option<File>> = chans.iter().map(|c| Some(File::from(crate::sys::fd::owned(c.go_w)))).collect();
    let root = match forked {
        Err(nix::errno::Errno::EEXIST) => bail!("pid {pid} is taken: can't restore task {pid}"),
        Err(e) => bail!("clone3 with pid {pid}: {e}"),
        Ok(Forked::Parent(p)) => p,
        Ok(Forked::Child) => unreachable!("the child became the task"),
    };
    let mut rs = Running { tree: &tree, root, our_child: !opts.restore_sibling, ready, go, known: Vec::new() };
    if let Err(e) = left {
        rs.kill_all();
        return Err(e.context(format!("task {pid} was killed")));
    }

    // CRIU runs these for a root with namespaces of its own (or a sibling).
    if opts.restore_sibling || own_timens {
        for action in [crate::scripts::Action::SetupNamespaces, crate::scripts::Action::PostSetupNamespaces] {
            if let Err(e) = crate::scripts::run(action, opts, Some(&dir), Some(pid)) {
                rs.kill_all();
                return Err(e.context(format!("restore aborted at {action}; task {pid} was killed")));
            }
        }
    }
    if let Err(m) = rs.fork_stages() {
        return Err(rs.fail(m));
    }
    let (held, running) = match rs.restored() {
        Ok(v) => v,
        Err(m) => return Err(rs.fail(m)),
    };
    tree.files.settle();
    let what = if tree.nodes.len() == 1 { format!("task {pid} was killed") } else { format!("the tree of task {pid} was killed") };
    if running.is_empty() {
        // Everything is in place and no task has run yet: a failing
        // script here undoes the restore.
        for action in [crate::scripts::Action::PostRestore, crate::scripts::Action::PreResume] {
            if let Err(e) = crate::scripts::run(action, opts, Some(&dir), Some(pid)) {
                rs.kill_all();
                return Err(e.context(format!("restore aborted at {action}; {what}")));
            }
        }
        if let Err(m) = rs.release(&held) {
            return Err(rs.fail(m));
        }
    } else {
        // Some task could not be held: it runs already; so do the rest.
        if let Err(m) = rs.stop_again(&running).and_then(|()| rs.release(&held)) {
            return Err(rs.fail(m));
        }
        if let Err(e) = crate::scripts::run(crate::scripts::Action::PostRestore, opts, Some(&dir), Some(pid)) {
            rs.kill_all();
            return Err(e.context(format!("restore aborted at post-restore; {what}")));
        }
        crate::scripts::run_logged(crate::scripts::Action::PreResume, opts, &dir, pid);
    }
    drop(rs);
    info!("Restore finished successfully ({} us)", t0.elapsed().as_micros());
    crate::scripts::run_logged(crate::scripts::Action::PostResume, opts, &dir, pid);
    if let Some(pf) = &opts.pidfile {
        std::fs::write(pf, format!("{pid}")).with_context(|| format!("writing pidfile {}", pf.display()))?;
    }
    if opts.restore_detach || opts.restore_sibling {
        return Ok(0);
    }
    match waitpid(root, None).context("waiting for the restored task")? {
        WaitStatus::Exited(_, code) => Ok(code),
        WaitStatus::Signaled(_, sig, _) => Ok(128 + sig as i32),
        other => bail!("restored task {pid}: {other:?}"),
    }
}

/// What the root makes for the whole tree before it forks: the files and
/// the anonymous shared memory tasks share. Each task takes its copy, and
/// with it where its parent premapped its memory (`cow`).
#[derive(Default)]
struct Inherited {
    opened: fd_restore::Opened,
    shm: premap::SharedShmem,
    cow: Option<crate::mem::inherit::Premapped>,
}

/// What every restoring task reads (a copy of criu's memory, by fork).
struct Ctx<'a> {
    tree: &'a Tree,
    dir: &'a ImageDir,
    opts: &'a Opts,
    chans: &'a [Chan],
}

/// Become task `idx` of the tree (we were just forked with its pid).
/// Never returns: the restorer jumps into the task, a zombie exits, and an
/// error is reported to criu before we exit.
fn task_main(ctx: &Ctx, idx: usize, inherited: Inherited) -> ! {
    let chan = ctx.chans[idx];
    let mut ready = Some(crate::sys::fd::owned(chan.ready_w));
    let go = crate::sys::fd::owned(chan.go_r);
    let err = match task_body(ctx, idx, inherited, &mut ready, go) {
        Ok(plan) => {
            let (e, fd) = crate::restorer::jump(plan);
            ready = Some(fd);
            e
        }
        Err(e) => e,
    };
    if let Some(r) = ready {
        let _ = File::from(r).write_all(format!("{}{err:#}", msg::ERROR as char).as_bytes());
    }
    crate::sys::restorer::exit_now(1)
}

/// Read criu's next word on `go`: `want`, or an error (EOF: criu gave up).
fn wait_for(go: &OwnedFd, want: u8) -> Result<()> {
    let mut b = [0u8; 1];
    let n = loop {
        match nix::unistd::read(go, &mut b) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.context("reading criu's go-ahead")?,
        }
    };
    if n != 1 || b[0] != want {
        bail!("criu gave up on the restore");
    }
    Ok(())
}

fn report(ready: &Option<OwnedFd>, b: u8) -> Result<()> {
    let fd = ready.as_ref().context("ready fd")?;
    let n = nix::unistd::write(fd, &[b]).context("reporting to criu")?;
    if n != 1 {
        bail!("reporting to criu: short write");
    }
    Ok(())
}

/// Everything a task does before its restorer (or, a zombie, its exit).
fn task_body(ctx: &Ctx, idx: usize, mut inh: Inherited, ready: &mut Option<OwnedFd>, go: OwnedFd) -> Result<Plan> {
    let tree = ctx.tree;
    let node = &tree.nodes[idx];
    let pid = node.pid;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("PR_SET_PDEATHSIG")?;
    if let Some(p) = node.parent {
        // Our parent may have died before the line above: then we go too.
        if nix::unistd::getppid().as_raw() != tree.nodes[p].pid {
            bail!("the parent {} of task {pid} died", tree.nodes[p].pid);
        }
    } else {
        // criu's ends of every task's pipes are criu's alone.
        for c in ctx.chans {
            crate::sys::fd::close_raw(c.ready_r);
            crate::sys::fd::close_raw(c.go_w);
        }
    }
    if ctx.opts.log_file_per_pid {
        // --log-pid: this restoring process logs to LOG.PID from here on.
        crate::log::reopen_for_pid(pid).context("--log-pid")?;
    }
    if node.setsid() {
        nix::unistd::setsid().with_context(|| format!("setsid for task {pid}"))?;
    } else if node.own_group() {
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).with_context(|| format!("setpgid for task {pid}"))?;
    }
    let imgs = match &node.body {
        Body::Zombie(core) => {
            drop(inh);
            zombie(ctx, idx, core, ready, go)
        }
        Body::Alive(t) => t,
    };
    // Zombie children stay ours to reap (the restored code does), and
    // their exit leaves no SIGCHLD behind (the image has what was pending).
    crate::sys::sigreset::default(Signal::SIGCHLD).context("SIGCHLD to its default")?;
    crate::sys::sigreset::unblock(Signal::SIGCHLD).context("unblocking SIGCHLD")?;
    if idx == 0 {
        // Every file of the tree, once: the children inherit them.
        let inherit: Vec<(i32, String)> = ctx
            .opts
            .inherit_fds
            .iter()
            .filter_map(|v| crate::opts::parse_inherit_fd(v).map(|(n, r)| (n, r.to_string())))
            .collect();
        let all: Vec<FdinfoEntry> = tree.nodes.iter().filter_map(Node::alive).flat_map(|t| t.fdinfo.iter().cloned()).collect();
        let pids: Vec<i32> = tree.nodes.iter().map(|n| n.pid).collect();
        inh.opened = fd_restore::open(&all, &tree.files, &inherit, ctx.opts.shell_job, &pids)?;
        let shared = tree.shared_shmem();
        if !shared.is_empty() {
            info!("{} anonymous shared memory object(s) shared between tasks", shared.len());
            inh.shm = premap::SharedShmem::create(ctx.dir, &shared)?;
        }
        let vmas = tree.nodes.iter().filter_map(Node::alive).flat_map(|t| t.mm.vmas.iter());
        inh.shm.memfds = crate::mem::memfd::Memfds::create(ctx.dir, &tree.files, vmas)?;
    }
    // Memory before the children: they take what they share with it
    // (`mem::inherit`).
    let own = crate::proc::maps::read(std::process::id() as i32)?;
    let mem = premap::premap(&imgs.mm, &tree.regs_by_id(), ctx.dir, pid as u64, &own, &[], &inh.shm, &imgs.vdso, inh.cow.as_ref())?;
    drop(own);
    inh.cow = Some(crate::mem::inherit::Premapped::new(pid as u64, &imgs.mm, &mem));
    for &c in &node.children {
        let cpid = tree.nodes[c].pid;
        match fork_with_pid(cpid, 0) {
            Err(nix::errno::Errno::EEXIST) => bail!("pid {cpid} is taken: can't restore task {cpid}"),
            Err(e) => bail!("clone3 with pid {cpid} (a child of {pid}): {e}"),
            Ok(Forked::Child) => task_main(ctx, c, std::mem::take(&mut inh)),
            Ok(Forked::Parent(_)) => {}
        }
    }
    // Our children hold their own pipe ends now.
    for (j, c) in ctx.chans.iter().enumerate() {
        if j != idx {
            crate::sys::fd::close_raw(c.ready_w);
            crate::sys::fd::close_raw(c.go_r);
        }
    }
    report(ready, msg::FORKED)?;
    wait_for(&go, msg::PROCEED)?;
    join_group(node)?;
    // Our zombies must be dead before we go on (and stay unreaped).
    for &c in &node.children {
        if tree.nodes[c].zombie() {
            let cpid = Pid::from_raw(tree.nodes[c].pid);
            let flags = nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT;
            loop {
                match nix::sys::wait::waitid(nix::sys::wait::Id::Pid(cpid), flags) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => {
                        r.with_context(|| format!("waiting for zombie {cpid} to exit"))?;
                        break;
                    }
                }
            }
        }
    }
    prepare(ctx, idx, imgs, inh, mem, ready, go)
}

/// Join the process group the image names, once every leader exists.
fn join_group(node: &Node) -> Result<()> {
    if node.own_group() || nix::unistd::getpgrp().as_raw() == node.pgid {
        return Ok(());
    }
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(node.pgid))
        .with_context(|| format!("task {} joining process group {}", node.pid, node.pgid))
}

/// Signals a zombie can have died of (their default action kills).
fn fatal(sig: i32) -> bool {
    !matches!(
        sig,
        libc::SIGCHLD | libc::SIGCONT | libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU | libc::SIGURG | libc::SIGWINCH
    ) && sig > 0
        && sig <= 64
}

/// A zombie: in its session and group, named, then dead with its exit
/// status (a signal death by the same signal), as CRIU's
/// restore_one_zombie. Its parent does not reap it.
fn zombie(ctx: &Ctx, idx: usize, core: &CoreEntry, ready: &mut Option<OwnedFd>, go: OwnedFd) -> ! {
    use std::os::fd::AsRawFd;
    let node = &ctx.tree.nodes[idx];
    let r = (|| -> Result<()> {
        let keep = [ready.as_ref().context("ready fd")?.as_raw_fd(), go.as_raw_fd()];
        crate::sys::fd::close_all_but(&keep);
        let tc = core.tc.as_ref().context("a zombie's core has no task core")?;
        if let Ok(name) = std::ffi::CString::new(tc.comm.as_str()) {
            let _ = nix::sys::prctl::set_name(&name);
        }
        report(ready, msg::FORKED)?;
        wait_for(&go, msg::PROCEED)?;
        join_group(node)?;
        report(ready, msg::ZOMBIE)?;
        Ok(())
    })();
    if let Err(e) = r {
        if let Some(fd) = ready.take() {
            let _ = File::from(fd).write_all(format!("{}{e:#}", msg::ERROR as char).as_bytes());
        }
        crate::sys::restorer::exit_now(1);
    }
    drop(ready.take());
    drop(go);
    let code = core.tc.as_ref().map_or(0, |tc| tc.exit_code as i32);
    crate::sys::sigreset::all_default();
    if code & 0x7f != 0 {
        // No core file for a death replayed.
        let _ = nix::sys::prctl::set_dumpable(false);
        let sig = if fatal(code & 0x7f) { code & 0x7f } else { libc::SIGABRT };
        crate::sys::sigreset::raise(sig);
        // Still here (it could not kill us): just exit.
        crate::sys::restorer::exit_now(0);
    }
    crate::sys::restorer::exit_now((code >> 8) & 0xff)
}
/// A thread's scheduling from its core: without a policy, SCHED_OTHER at
/// nice 0 (as CRIU 4.2 reads it); an absent priority is 0.
fn sched_of(thc: &crate::images::pb::ThreadCoreEntry) -> Option<crate::restorer::plan::Sched> {
    Some(crate::restorer::plan::Sched {
        nice: thc.sched_policy.and(thc.sched_nice).unwrap_or(0),
        policy: thc.sched_policy.unwrap_or(0),
        prio: thc.sched_prio.unwrap_or(0),
    })
}

/// Whether a thread is to be in seccomp strict mode; filters are refused
/// (restoring them is not supported yet).
fn seccomp_strict(tid: i32, mode: Option<i32>) -> Result<bool> {
    use crate::images::pb::SeccompMode;
    match mode.map(SeccompMode::try_from) {
        None | Some(Ok(SeccompMode::Disabled)) => Ok(false),
        Some(Ok(SeccompMode::Strict)) => Ok(true),
        Some(Ok(SeccompMode::Filter)) => bail!("thread {tid} has seccomp filters (seccomp.img): restoring them is not supported yet"),
        Some(Err(_)) => bail!("thread {tid}: unknown seccomp mode {mode:?} in its core image"),
    }
}

/// A thread's rseq registration. A recorded `rseq_cs_pointer` (a section
/// flagged RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL) would have to be written back
/// into `rseq->rseq_cs` once the restorer is gone, which ours does not do.
fn rseq_of(tid: i32, r: Option<crate::images::pb::RseqEntry>) -> Result<Option<crate::images::pb::RseqEntry>> {
    if let Some(p) = r.and_then(|r| r.rseq_cs_pointer).filter(|p| *p != 0) {
        bail!("thread {tid}: its core image records an rseq critical section ({p:#x}, non-abortable): restoring it is not supported");
    }
    Ok(r)
}

/// What the restorer needs of a thread but the leader.
fn thread_plan(tid: i32, core: &CoreEntry, leader_tls: &[crate::images::pb::UserDescT]) -> Result<crate::restorer::plan::ThreadPlan> {
    let ti = core.thread_info.as_ref().with_context(|| format!("core-{tid}.img has no registers"))?;
    let thc = core.thread_core.as_ref().with_context(|| format!("core-{tid}.img has no thread core"))?;
    Ok(crate::restorer::plan::ThreadPlan {
        tid,
        regs: crate::task::thread_info::regs_from_image(&ti.gpregs),
        fpu: crate::task::thread_info::fpu_from_image(&ti.fpregs),
        sigmask: thc.blk_sigset.unwrap_or(0),
        sigaltstack: thc.sas,
        clear_tid_addr: ti.clear_tid_addr,
        rseq: rseq_of(tid, thc.rseq_entry)?,
        tls: crate::task::thread_info::tls_words(&ti.tls, leader_tls),
        robust_list: (thc.futex_rla, thc.futex_rla_len),
        comm: thc.comm.clone(),
        creds: thc.creds.clone(),
        pdeath_sig: thc.pdeath_sig.unwrap_or(0),
        sched: sched_of(thc),
        seccomp_strict: seccomp_strict(tid, thc.seccomp_mode)?,
        pending: thc.signals_p.as_ref().map(|q| q.signals.iter().map(|s| s.siginfo.clone()).collect()).unwrap_or_default(),
    })
}


/// Everything before the restorer of a live task: returns the plan, with
/// the ready fd moved into it.
fn prepare(
    ctx: &Ctx,
    idx: usize,
    imgs: &TaskImages,
    inh: Inherited,
    mem: premap::MemPlan,
    ready_w: &mut Option<OwnedFd>,
    go_r: OwnedFd,
) -> Result<Plan> {
    let tree = ctx.tree;
    let pid = imgs.pid();
    let core = &imgs.core;
    let tc = core.tc.as_ref().context("core image has no task core")?;
    let thc = core.thread_core.as_ref().context("core image has no thread core")?;
    let ti = core.thread_info.as_ref().context("core image has no registers")?;

    // The task's name (per thread; ours is "criu" until now).
    let comm = thc.comm.as_deref().unwrap_or(tc.comm.as_str());
    nix::sys::prctl::set_name(&std::ffi::CString::new(comm).context("comm with a NUL byte")?).context("PR_SET_NAME")?;
    // OOM score, login uid, THP, membarrier: before the memory comes in.
    crate::task::settings::restore(pid, tc, &imgs.mm)?;

    // Memory was premapped and filled before the children were forked;
    // the shared objects' fds go (before the fd table is set).
    let Inherited { mut opened, shm, cow } = inh;
    drop(shm);
    drop(cow);

    // Limits: lowering always works; raising a hard limit needs
    // CAP_SYS_RESOURCE, which this machine may lack: say so, go on.
    if let Some(rl) = &tc.rlimits {
        for (res, l) in rl.rlimits.iter().enumerate() {
            let lim = libc::rlimit { rlim_cur: l.cur, rlim_max: l.max };
            if let Err(e) = crate::sys::rlimit::set(res as u32, &lim) {
                tracing::warn!("can't set rlimit {res} to {}/{} for task {pid}: {e}", l.cur, l.max);
            }
        }
    }

    // The executable for PR_SET_MM_MAP.
    let exe = tree.reg(imgs.mm.exe_file_id)?;
    let exe_file = File::open(&exe.name).with_context(|| format!("can't open the executable {}", exe.name))?;
    crate::files::reg::validate(exe, &exe_file)?;

    // cwd, root, umask.
    let cwd = tree.reg(imgs.fs.cwd_id)?;
    let root = tree.reg(imgs.fs.root_id)?;
    // Both names are as criu sees them (from the host's root): the cwd
    // now, the root just before the jump to the restorer (chroot keeps the
    // cwd; we still need the host's /proc until then).
    nix::unistd::chdir(cwd.name.as_str()).with_context(|| format!("chdir {}", cwd.name))?;
    let chroot = (root.name != "/").then(|| root.name.clone());
    if let Some(r) = &chroot {
        std::fs::read_dir(r).with_context(|| format!("root {r} of task {pid}"))?;
    }
    if let Some(u) = imgs.fs.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(u));
    }

    let mut pending: Vec<(bool, Vec<u8>)> = Vec::new();
    if let Some(q) = &tc.signals_s {
        pending.extend(q.signals.iter().map(|s| (true, s.siginfo.clone())));
    }
    if let Some(q) = &thc.signals_p {
        pending.extend(q.signals.iter().map(|s| (false, s.siginfo.clone())));
    }

    // Service fds go above the task's fds; then the task's fd table (the
    // files opened for the tree, those it names).
    let top = imgs.fdinfo.iter().map(|f| f.fd as i32).max().unwrap_or(2).max(2) + 1;
    let base = top.max(100);
    let mut keep = Vec::new();
    let mut lift = |fd: &OwnedFd| -> Result<OwnedFd> {
        let n = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(base)).context("F_DUPFD_CLOEXEC")?;
        keep.push(n);
        Ok(crate::sys::fd::owned(n))
    };
    // The ready fd moves up (errors are still reported through it).
    let lifted = lift(ready_w.as_ref().context("ready fd")?)?;
    *ready_w = Some(lifted);
    let exe_fd = lift(&OwnedFd::from(exe_file))?;
    let go_fd = lift(&go_r)?;
    drop(go_r);
    let mut mem = mem;
    for m in &mut mem.file_maps {
        m.fd = lift(&m.fd)?;
    }
    if let Some(l) = crate::log::lift_fd(base)? {
        keep.push(l);
    }
    opened.open_deferred(&imgs.fdinfo, &tree.files)?;
    opened.install(&imgs.fdinfo, &keep)?;
    fd_restore::installed(&imgs.fdinfo, &tree.files, &tree.files_before(idx))?;
    // POSIX timers: checked here, made by the restorer (their threads exist there).
    let posix_timers = tc.timers.as_ref().map(|t| t.posix.clone()).unwrap_or_default();
    crate::task::posix_timers::check_restore(&posix_timers, pid, &imgs.threads.iter().map(|(tid, _)| *tid).collect::<Vec<_>>())?;

    let plan = Plan {
        pid,
        chroot,
        mem,
        mm: MmMap {
            start_code: imgs.mm.mm_start_code,
            end_code: imgs.mm.mm_end_code,
            start_data: imgs.mm.mm_start_data,
            end_data: imgs.mm.mm_end_data,
            start_brk: imgs.mm.mm_start_brk,
            brk: imgs.mm.mm_brk,
            start_stack: imgs.mm.mm_start_stack,
            arg_start: imgs.mm.mm_arg_start,
            arg_end: imgs.mm.mm_arg_end,
            env_start: imgs.mm.mm_env_start,
            env_end: imgs.mm.mm_env_end,
            auxv: imgs.mm.mm_saved_auxv.clone(),
        },
        exe_fd: Some(exe_fd),
        sigactions: tc.sigactions.clone(),
        itimers: tc.timers.clone(),
        posix_timers,
        fowns: crate::files::fown::restore_list(&imgs.fdinfo, &tree.files, thc.creds.as_ref(), pid)?,
        sigaltstack: thc.sas,
        clear_tid_addr: ti.clear_tid_addr,
        rseq: rseq_of(pid, thc.rseq_entry)?,
        tls: crate::task::thread_info::tls_words(&ti.tls, &[]),
        personality: tc.personality,
        creds: thc.creds.clone(),
        pdeath_sig: thc.pdeath_sig.unwrap_or(0),
        sched: sched_of(thc),
        // Images of CRIU before 2.x kept the mode in the task core.
        seccomp_strict: seccomp_strict(pid, thc.seccomp_mode.or(tc.old_seccomp_mode))?,
        threads: imgs.threads.iter().map(|(tid, c)| thread_plan(*tid, c, &ti.tls)).collect::<Result<_>>()?,
        dumpable: imgs.mm.dumpable,
        robust_list: (thc.futex_rla, thc.futex_rla_len),
        pending,
        regs: crate::task::thread_info::regs_from_image(&ti.gpregs),
        fpu: crate::task::thread_info::fpu_from_image(&ti.fpregs),
        sigmask: tc.blk_sigset,
        ready_fd: ready_w.take().context("ready fd")?,
        go_fd: Some(go_fd),
        leave_stopped: ctx.opts.final_state == crate::opts::FinalState::Stopped,
        stop_signo: stop_signal(core, pid)?.map_or(0, |s| s as i32),
        child_subreaper: tc.child_subreaper.unwrap_or(false),
    };
    info!("task {pid}: files, memory and state prepared; jumping to the restorer");
    Ok(plan)
}
