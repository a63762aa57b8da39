//! `criu dump`: CRIU's stages for a process tree — check what we can dump,
//! freeze it (the root, then every child found in /proc/PID/task/TID/children
//! of each frozen task, every thread of each seized until /proc/PID/task
//! stops growing; the lists are read again until nothing new appears),
//! collect everything per task (from /proc and ptrace outside; from the task
//! itself through the parasite, which runs in each leader, and through
//! remote syscalls in each thread for what is per thread), write the images
//! (pstree.img with every task, a core-TID.img per thread, per task its
//! ids/mm/fs/fdinfo; files shared between tasks recorded once), then kill
//! the tree, leave it running (-R) or stopped (-s). Zombies are not seized:
//! their pid, parentage, group, session, name and exit code come from
//! /proc/PID/stat. Any failure before the final stage releases every thread
//! of every task exactly as it was.
//!
//! Fault injection for tests: `CRIU_FAULT=N` fails stage N (see [`Stage`]).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tracing::{debug, info};

use crate::compel::Seized;
use nix::unistd::Pid;
use crate::files::{fds, FileTable};
use crate::images::kind::kinds;
use crate::images::pb::{
    CoreEntry, DumpStatsEntry, FdinfoEntry, FsEntry, PstreeEntry, SeccompEntry, StatsEntry, TaskCoreEntry, TaskKobjIdsEntry,
};
use crate::images::{inventory, ImageDir, ImageWriter};
use crate::mem::{self, pages, vma};
use crate::opts::{FinalState, Opts};
use crate::task::{self, remote, tree};
use crate::{files, ns, proc};

/// The stages of a dump, numbered for `CRIU_FAULT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Collect = 1,
    Freeze = 2,
    Remote = 3,
    Memory = 4,
    Files = 5,
    Core = 6,
    Write = 7,
}

fn fault(stage: Stage) -> Result<()> {
    if std::env::var("CRIU_FAULT").ok().and_then(|v| v.parse::<i32>().ok()) == Some(stage as i32) {
        bail!("fault injected at stage {stage:?} (CRIU_FAULT={})", stage as i32);
    }
    Ok(())
}

/// CRIU's task_state of a zombie in core-PID.img (TASK_DEAD).
pub const TASK_DEAD: u32 = 2;
/// ... and of a live task (TASK_ALIVE).
pub const TASK_ALIVE: u32 = 1;
/// ... and of a live task stopped by a signal (TASK_STOPPED, with the
/// signal in stop_signo).
pub const TASK_STOPPED: u32 = 3;

/// What CRIU's dump checks before touching the root task.
fn precheck(pid: i32) -> Result<proc::stat::Stat> {
    let stat = proc::stat::read(pid).with_context(|| format!("can't dump task {pid}: no such process"))?;
    if stat.state == 'Z' {
        bail!("task {pid} is a zombie");
    }
    check_namespaces(pid)?;
    Ok(stat)
}

fn check_namespaces(pid: i32) -> Result<()> {
    let foreign = task::foreign_namespaces(pid)?;
    if !foreign.is_empty() {
        bail!("task {pid} is in its own {} namespace(s): dumping namespaces is not supported yet", foreign.join(", "));
    }
    Ok(())
}

/// What a child must pass before it is seized.
fn check_child(pid: i32, parent: i32) -> Result<()> {
    check_namespaces(pid)?;
    tree::check_not_shared(parent, pid)
}

/// The seized task, with a scratch page for remote syscalls' results.
struct Ctl {
    seized: Seized,
    scratch: Option<u64>,
}

/// Infect the task, ask the parasite what only the task can tell, and cure
/// it again (the task stays frozen).
fn ask_parasite(ctl: Ctl) -> (Result<remote::ParasiteReport>, Result<Ctl>) {
    let pid = ctl.seized.pid();
    let mut infected = match ctl.seized.infect() {
        Ok(i) => i,
        Err(e) => return (Err(anyhow::Error::from(e).context(format!("infecting task {pid}"))), Err(anyhow::anyhow!("task {pid} was released"))),
    };
    let report = (|| -> Result<remote::ParasiteReport> {
        let acts = infected.call::<crate::compel::DumpSigacts>(&())?;
        let misc = infected.call::<crate::compel::DumpMisc>(&())?;
        Ok(remote::from_parasite(&acts, &misc))
    })();
    let back = infected
        .cure_keep_seized()
        .map(|seized| Ctl { seized, scratch: None })
        .map_err(|e| anyhow::Error::from(e).context(format!("curing task {pid}")));
    (report, back)
}

impl remote::Remote for Ctl {
    fn syscall(&mut self, nr: i64, args: [u64; 6]) -> Result<i64> {
        Ok(self.seized.syscall(nr, args)?)
    }

    fn scratch(&mut self) -> Result<u64> {
        if let Some(a) = self.scratch {
            return Ok(a);
        }
        let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        let a = self.seized.syscall_ok("mmap", libc::SYS_mmap, [0, 4096, prot, flags, u64::MAX, 0])?;
        self.scratch = Some(a);
        Ok(a)
    }

    fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let pid = self.seized.pid();
        let mem = std::fs::File::open(format!("/proc/{pid}/mem")).with_context(|| format!("can't open memory of {pid}"))?;
        let mut b = vec![0u8; len];
        mem.read_exact_at(&mut b, addr).with_context(|| format!("reading {len} bytes at {addr:#x} of {pid}"))?;
        Ok(b)
    }
}

impl Ctl {
    /// Unmap the scratch page (before the memory dump, so it is not dumped).
    fn drop_scratch(&mut self) -> Result<()> {
        if let Some(a) = self.scratch.take() {
            self.seized.syscall_ok("munmap", libc::SYS_munmap, [a, 4096, 0, 0, 0, 0])?;
        }
        Ok(())
    }
}

/// One task of the frozen tree.
struct Task {
    pid: i32,
    /// Its parent in the tree (0 for the root).
    ppid: i32,
    /// A live task, seized (its other threads in `threads`); None for a zombie.
    ctl: Option<Ctl>,
    threads: Vec<Seized>,
    /// /proc/PID/stat, read once the task holds still.
    stat: proc::stat::Stat,
}

impl Task {
    fn zombie(&self) -> bool {
        self.ctl.is_none()
    }

    /// Put every thread back as it was (a failed dump), logging what could not be.
    fn release(self) {
        let pid = self.pid;
        for t in self.threads {
            let tid = t.pid();
            if let Err(e) = t.release() {
                tracing::error!("releasing thread {tid} of {pid} after a failed dump: {e:#}");
            }
        }
        if let Some(mut ctl) = self.ctl {
            let _ = ctl.drop_scratch();
            if let Err(e) = ctl.seized.release() {
                tracing::error!("releasing task {pid} after a failed dump: {e:#}");
            }
        }
    }
}

fn release_all(tasks: Vec<Task>) {
    for t in tasks {
        t.release();
    }
}

/// Everything the dump collected of one live task, ready to be written.
struct Collected {
    pid: i32,
    /// The leader's core (with `tc`).
    core: CoreEntry,
    /// The other threads' (tid, core), by tid.
    threads: Vec<(i32, CoreEntry)>,
    ids: TaskKobjIdsEntry,
    mm: crate::images::pb::MmEntry,
    fs: FsEntry,
    fdinfo: Vec<FdinfoEntry>,
}

/// What the tasks of a tree share in the images: files.img, pipe data,
/// socket queues, terminals, shared memory objects, page file numbers.
struct Shared {
    files: FileTable,
    fds: fds::Fds,
    next_pages_id: u32,
    shmem_done: Vec<u64>,
    mem: pages::MemStats,
}

#[allow(clippy::too_many_arguments)]
fn collect(
    ctl: &mut Ctl,
    threads: &mut [Seized],
    parasite: remote::ParasiteReport,
    pid: i32,
    nth: u32,
    stat: &proc::stat::Stat,
    dir: &ImageDir,
    opts: &Opts,
    sh: &mut Shared,
) -> Result<Collected> {
    let status = proc::status::read(pid)?;
    if status.seccomp == 2 {
        bail!("task {pid} has seccomp filters: dumping them is not supported yet");
    }
    let report = parasite;
    let sigactions = report.sigactions;
    let mut timers = report.itimers;
    let brk = report.brk;
    let subreaper = report.child_subreaper;
    // Per thread: the leader told the parasite; the others are asked with
    // syscalls run in each of them.
    let asked = task::thread::Asked {
        tid_addr: report.tid_address,
        sas: report.sigaltstack,
        secbits: report.securebits,
        pdeath: report.pdeath_sig,
    };
    let leader = task::thread::dump(pid, pid, ctl.seized.state(), asked, true)?;
    let mut others = Vec::with_capacity(threads.len());
    if !threads.is_empty() {
        let page = remote::Remote::scratch(ctl)?;
        for t in threads.iter_mut() {
            let tid = t.pid().as_raw();
            let asked = task::thread::ask(pid, tid, &mut remote::ThreadRemote { seized: t, scratch: page })?;
            others.push(task::thread::dump(pid, tid, t.state(), asked, false)?);
        }
        ctl.drop_scratch()?;
    }
    // POSIX timers: their state asked of the task (before its scratch page
    // goes, so the page is never part of the memory dump).
    timers.posix = task::posix_timers::dump(pid, ctl)?;
    ctl.drop_scratch()?;
    let membarrier = task::settings::membarrier_mask(pid, ctl)?;
    debug!("task {pid}: {} thread(s) dumped", others.len() + 1);

    fault(Stage::Memory)?;
    let exe_id = vma::exe_file_id(pid, &mut sh.files)?;
    let maps = proc::maps::read(pid)?;
    let vmas = vma::collect(pid, &maps, &mut sh.files, opts.allow_uprobes)?;
    let t_mem = Instant::now();
    let pages_id = sh.next_pages_id;
    let (mut mem_stats, guards) =
        pages::dump_private(pid, &vmas, dir, pages_id).with_context(|| format!("dumping memory of {pid}"))?;
    let (next, shpages) = pages::dump_shmem(pid, &vmas, dir, pages_id + 1, &mut sh.shmem_done)
        .with_context(|| format!("dumping shared memory of {pid}"))?;
    sh.next_pages_id = next;
    mem_stats.shpages_written = shpages;
    mem_stats.memdump_us = t_mem.elapsed().as_micros() as u64;
    debug!("memory of {pid}: {} pages, {shpages} shared, in {:?}", mem_stats.pages_written, t_mem.elapsed());
    sh.mem.pages_scanned += mem_stats.pages_scanned;
    sh.mem.pages_written += mem_stats.pages_written;
    sh.mem.shpages_written += mem_stats.shpages_written;
    sh.mem.memdump_us += mem_stats.memdump_us;
    sh.mem.memwrite_us += mem_stats.memwrite_us;
    let mut mm = mem::mm_entry(stat, brk, proc::auxv(pid)?, exe_id, &vmas, &guards, report.dumpable);
    mm.thp_disabled = Some(task::settings::thp_disabled(pid, report.thp_disabled)?);

    fault(Stage::Files)?;
    let fdinfo = fds::dump(pid, &mut sh.fds, &mut sh.files, stat, opts.shell_job)?;
    let fs = FsEntry {
        cwd_id: files::dir_entry(&mut sh.files, pid, "cwd")?,
        root_id: files::dir_entry(&mut sh.files, pid, "root")?,
        umask: status.umask,
    };

    fault(Stage::Core)?;
    let stop_signo = stop_signal(pid, &ctl.seized, threads)?;
    let tc = TaskCoreEntry {
        task_state: if stop_signo.is_some() { TASK_STOPPED } else { TASK_ALIVE },
        exit_code: 0,
        personality: task::personality(pid)?,
        flags: stat.flags,
        blk_sigset: ctl.seized.state().sigmask,
        comm: stat.comm.clone(),
        timers: Some(timers),
        rlimits: Some(task::rlimits(pid)?),
        cg_set: None,
        signals_s: Some(task::pending(pid, true)?),
        old_seccomp_mode: None,
        old_seccomp_filter: None,
        loginuid: task::settings::loginuid(pid)?,
        oom_score_adj: Some(task::oom_score_adj(pid)?),
        sigactions,
        child_subreaper: Some(subreaper),
        blk_sigset_extended: None,
        stop_signo: stop_signo.map(|s| s as u32),
        membarrier_registration_mask: (membarrier != 0).then_some(membarrier),
    };
    let mtype = crate::images::pb::core_entry::March::X8664 as i32;
    let core = CoreEntry {
        mtype,
        thread_info: Some(leader.info),
        tc: Some(tc),
        ids: None,
        thread_core: Some(leader.core),
        ..Default::default()
    };
    let threads = others
        .into_iter()
        .map(|t| (t.tid, CoreEntry { mtype, thread_info: Some(t.info), thread_core: Some(t.core), ..Default::default() }))
        .collect();
    Ok(Collected { pid, core, threads, ids: ns::task_ids_nth(nth), mm, fs, fdinfo })
}

/// The signal that stopped task `pid` (None: it was running), as its
/// threads were found: stopped all together (a group stop) or none.
fn stop_signal(pid: i32, leader: &Seized, threads: &[Seized]) -> Result<Option<nix::sys::signal::Signal>> {
    let sig = leader.stop_signo();
    if let Some(t) = threads.iter().find(|t| t.was_stopped() != sig.is_some()) {
        let (stopped, running) = if sig.is_some() { (pid, t.pid().as_raw()) } else { (t.pid().as_raw(), pid) };
        bail!(
            "task {pid}: thread {stopped} is stopped but thread {running} is not: individually stopped threads can't be dumped"
        );
    }
    if let Some(s) = sig {
        info!("task {pid} is stopped (by {s}): it is restored stopped");
    }
    Ok(sig)
}

/// A zombie's core, as CRIU writes it: the task core only, with its state,
/// exit code (the wait status /proc/PID/stat shows) and name.
fn zombie_core(stat: &proc::stat::Stat) -> CoreEntry {
    CoreEntry {
        mtype: crate::images::pb::core_entry::March::X8664 as i32,
        tc: Some(TaskCoreEntry {
            task_state: TASK_DEAD,
            exit_code: stat.exit_code as u32,
            comm: stat.comm.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn write_one<M: prost::Message>(dir: &ImageDir, name: &str, kind: crate::images::Kind<M>, m: &M) -> Result<()> {
    let mut w = ImageWriter::create(dir, name, kind)?;
    w.write(m)?;
    w.finish()?;
    Ok(())
}

fn write_images(dir: &ImageDir, tasks: &[Task], collected: &[Collected], sh: &Shared) -> Result<()> {
    fault(Stage::Write)?;
    inventory::write(dir, &inventory::new(ns::root_ids(), inventory::run_id()))?;
    let mut w = ImageWriter::create(dir, "pstree.img", kinds::pstree())?;
    for t in tasks {
        let entry: PstreeEntry = match collected.iter().find(|c| c.pid == t.pid) {
            Some(c) => {
                let tids: Vec<i32> = std::iter::once(t.pid).chain(c.threads.iter().map(|(t, _)| *t)).collect();
                tree::entry(t.pid, t.ppid, t.stat.pgid, t.stat.sid, &tids)
            }
            None => tree::entry(t.pid, t.ppid, t.stat.pgid, t.stat.sid, &[t.pid]),
        };
        w.write(&entry)?;
    }
    w.finish()?;
    for t in tasks.iter().filter(|t| t.zombie()) {
        write_one(dir, &kinds::core().file_name(t.pid as u64), kinds::core(), &zombie_core(&t.stat))?;
    }
    for c in collected {
        let pid = c.pid as u64;
        write_one(dir, &kinds::core().file_name(pid), kinds::core(), &c.core)?;
        for (tid, core) in &c.threads {
            write_one(dir, &kinds::core().file_name(*tid as u64), kinds::core(), core)?;
        }
        write_one(dir, &kinds::ids().file_name(pid), kinds::ids(), &c.ids)?;
        write_one(dir, &kinds::mm().file_name(pid), kinds::mm(), &c.mm)?;
        write_one(dir, &kinds::fs().file_name(pid), kinds::fs(), &c.fs)?;
        let mut w = ImageWriter::create(dir, &kinds::fdinfo().file_name(u64::from(c.ids.files_id)), kinds::fdinfo())?;
        for e in &c.fdinfo {
            w.write(e)?;
        }
        w.finish()?;
    }
    sh.files.write(dir)?;
    fds::write_images(&sh.fds, dir)?;
    write_one(dir, "seccomp.img", kinds::seccomp(), &SeccompEntry::default())?;
    Ok(())
}

fn write_stats(dir: &ImageDir, freezing_us: u64, frozen_us: u64, c: &pages::MemStats, display: bool) -> Result<()> {
    let d = DumpStatsEntry {
            freezing_time: freezing_us as u32,
            frozen_time: frozen_us as u32,
            memdump_time: c.memdump_us as u32,
            memwrite_time: c.memwrite_us as u32,
            pages_scanned: c.pages_scanned,
            pages_skipped_parent: 0,
            pages_written: c.pages_written,
            irmap_resolve: Some(0),
            // Pages left for a lazy-pages daemon (none: every page is written).
            pages_lazy: 0,
            page_pipes: Some(0),
            page_pipe_bufs: Some(0),
            shpages_scanned: Some(c.shpages_written),
            shpages_skipped_parent: Some(0),
            shpages_written: Some(c.shpages_written),
    };
    if display {
        crate::log::msg(&display_stats(&d));
    }
    let stats = StatsEntry { dump: Some(d), restore: None };
    write_one(dir, &kinds::stats().file_name_str("dump"), kinds::stats(), &stats)
}

/// `--display-stats`, as CRIU prints it.
fn display_stats(d: &DumpStatsEntry) -> String {
    let n = |v: u64| format!("{v} ({v:#x})");
    format!(
        "Displaying dump stats:\nFreezing time: {} us\nFrozen time: {} us\nMemory dump time: {} us\n\
         Memory write time: {} us\nMemory pages scanned: {}\nMemory pages skipped from parent dump: {}\n\
         Memory pages written: {}\nLazy memory pages: {}",
        d.freezing_time,
        d.frozen_time,
        d.memdump_time,
        d.memwrite_time,
        n(d.pages_scanned),
        n(d.pages_skipped_parent),
        n(d.pages_written),
        n(d.pages_lazy)
    )
}

/// A live task, seized.
fn seized_task(pid: i32, ppid: i32, (leader, threads): (Seized, Vec<Seized>)) -> Result<Task> {
    // Stopped now: its stat holds still.
    let stat = proc::stat::read(pid).with_context(|| format!("reading the stat of task {pid}"))?;
    Ok(Task { pid, ppid, ctl: Some(Ctl { seized: leader, scratch: None }), threads, stat })
}

fn zombie_task(pid: i32, ppid: i32, stat: proc::stat::Stat) -> Result<Task> {
    if stat.num_threads > 1 {
        bail!("task {pid} is a zombie thread-group leader with live threads: dumping it is not supported yet");
    }
    debug!("task {pid} (a child of {ppid}) is a zombie, exit code {:#x}", stat.exit_code);
    Ok(Task { pid, ppid, ctl: None, threads: Vec::new(), stat })
}

/// Take child `pid` of frozen task `parent` into the tree: a zombie as it
/// is, a live task seized (every thread). None: it is gone (reaped by the
/// kernel meanwhile).
fn take_child(pid: i32, parent: i32) -> Result<Option<Task>> {
    let Ok(st) = proc::stat::read(pid) else { return Ok(None) };
    if st.ppid != parent {
        bail!("task {pid} is listed as a child of {parent} but its parent is {}: not supported", st.ppid);
    }
    match st.state {
        'X' => return Ok(None),
        'Z' => return zombie_task(pid, parent, st).map(Some),
        _ => {}
    }
    check_child(pid, parent)?;
    match Seized::seize_process(Pid::from_raw(pid), || Ok(())) {
        Ok(s) => seized_task(pid, parent, s).map(Some),
        Err(crate::compel::Error::Gone { .. }) => match proc::stat::read(pid) {
            // It exited before we could seize it: a zombie now.
            Ok(st) if st.state == 'Z' => zombie_task(pid, parent, st).map(Some),
            Ok(st) => bail!("task {pid} (a child of {parent}) vanished from under ptrace (state {})", st.state),
            Err(_) => Ok(None),
        },
        Err(e) => Err(anyhow::Error::from(e).context(format!("can't seize task {pid} (a child of {parent})"))),
    }
}

/// Seize what the frozen tasks' children lists hold and we do not, again
/// and again until a pass finds nothing new: only a running task forks,
/// and a frozen one only gains children as a subreaper of orphans.
fn grow(tasks: &mut Vec<Task>) -> Result<()> {
    const ROUNDS: usize = 64;
    for _ in 0..ROUNDS {
        let mut added = false;
        let mut i = 0;
        while i < tasks.len() {
            if !tasks[i].zombie() {
                let parent = tasks[i].pid;
                for c in tree::children(parent)? {
                    if tasks.iter().any(|t| t.pid == c) {
                        continue;
                    }
                    if let Some(t) = take_child(c, parent)? {
                        debug!("task {c}: a child of {parent}{}", if t.zombie() { " (zombie)" } else { "" });
                        tasks.push(t);
                        added = true;
                    }
                }
            }
            i += 1;
        }
        if !added {
            return Ok(());
        }
    }
    bail!("the process tree keeps changing after {ROUNDS} passes of seizing")
}

/// Freeze the tree under ptrace: the root first, then each child of a
/// frozen task (which can no longer fork), depth first.
fn freeze_by_ptrace(root: i32) -> Result<Vec<Task>> {
    let s = Seized::seize_process(Pid::from_raw(root), || Ok(())).map_err(anyhow::Error::from).with_context(|| format!("can't seize task {root}"))?;
    let mut tasks = vec![seized_task(root, 0, s)?];
    // On error, `tasks` is dropped: every Seized is released.
    grow(&mut tasks)?;
    Ok(tasks)
}

/// Freeze the tree through the cgroup freezer: frozen, the tree holds
/// still and is listed; every thread of every live task is seized while
/// frozen, then the cgroup thaws and each takes its ptrace stop before
/// running user code again.
fn freeze_by_cgroup(root: i32, path: &str, timeout: std::time::Duration) -> Result<Vec<Task>> {
    let fz = crate::cgroup::freezer::Freezer::new(path)?;
    if !fz.tasks()?.contains(&root) {
        bail!("task {root} is not in the freezer cgroup {path}");
    }
    fz.freeze(timeout)?;
    let found = (|| -> Result<Vec<(i32, i32, Option<proc::stat::Stat>)>> {
        let members = fz.tasks()?;
        let mut v: Vec<(i32, i32, Option<proc::stat::Stat>)> = vec![(root, 0, None)];
        let mut i = 0;
        while i < v.len() {
            let (pid, _, zombie) = (v[i].0, v[i].1, v[i].2.is_some());
            i += 1;
            if zombie {
                continue;
            }
            for c in tree::children(pid)? {
                if v.iter().any(|x| x.0 == c) {
                    continue;
                }
                let Ok(st) = proc::stat::read(c) else { continue };
                match st.state {
                    'X' => continue,
                    'Z' => v.push((c, pid, Some(st))),
                    _ => {
                        if !members.contains(&c) {
                            bail!("task {c} (a child of {pid}) is not in the freezer cgroup {path}");
                        }
                        check_child(c, pid)?;
                        v.push((c, pid, None));
                    }
                }
            }
        }
        Ok(v)
    })();
    let found = match found {
        Ok(v) => v,
        Err(e) => {
            let _ = fz.thaw();
            return Err(e);
        }
    };
    let live: Vec<Pid> = found.iter().filter(|x| x.2.is_none()).map(|x| Pid::from_raw(x.0)).collect();
    let seized = Seized::seize_processes(&live, || {
        fz.thaw().map_err(|e| crate::compel::Error::Protocol { pid: root, what: format!("{e:#}") })
    });
    let seized = match seized {
        Ok(s) => s,
        Err(e) => {
            let _ = fz.thaw();
            return Err(anyhow::Error::from(e).context(format!("can't seize the tree of task {root}")));
        }
    };
    let mut seized = seized.into_iter();
    let mut tasks = Vec::with_capacity(found.len());
    for (pid, ppid, zombie) in found {
        match zombie {
            Some(st) => tasks.push(zombie_task(pid, ppid, st)?),
            None => tasks.push(seized_task(pid, ppid, seized.next().context("a seized task is missing")?)?),
        }
    }
    grow(&mut tasks)?;
    Ok(tasks)
}

/// Stop the tree under ptrace, within `--timeout`, through the cgroup
/// freezer with `--freeze-cgroup`. Parents come before their children.
fn freeze(pid: i32, opts: &Opts) -> Result<Vec<Task>> {
    let timeout = std::time::Duration::from_secs(u64::from(opts.timeout));
    crate::sys::alarm::arm(opts.timeout).context("arming --timeout")?;
    let r = match &opts.freeze_cgroup {
        None => freeze_by_ptrace(pid),
        Some(path) => freeze_by_cgroup(pid, path, timeout),
    };
    let timed_out = crate::sys::alarm::fired();
    crate::sys::alarm::disarm();
    let mut tasks = match r {
        Ok(t) => t,
        Err(_) if timed_out => bail!("can't seize task {pid} within {} s (--timeout)", opts.timeout),
        Err(e) => return Err(e),
    };
    // CRIU's pstree order: depth first, children in the kernel's order.
    let order = tree::preorder(&tasks.iter().map(|t| (t.pid, t.ppid)).collect::<Vec<_>>());
    let mut slots: Vec<Option<Task>> = tasks.drain(..).map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// Run `criu dump`.
pub fn run(opts: &Opts) -> Result<i32> {
    let pid = opts.tree_id.context("dump needs -t PID")?;
    let dir = ImageDir::open(opts.imgs_dir.as_deref().unwrap_or(std::path::Path::new(".")))?;
    info!("Dumping processes (pid: {pid})");
    crate::ops::cpuinfo::dump_if_asked(opts, &dir)?;
    crate::scripts::run(crate::scripts::Action::PreDump, opts, Some(&dir), Some(pid))?;
    fault(Stage::Collect)?;
    precheck(pid)?;

    let t_freeze = Instant::now();
    fault(Stage::Freeze)?;
    let mut tasks = freeze(pid, opts)?;
    let frozen_at = Instant::now();
    let freezing_us = frozen_at.duration_since(t_freeze).as_micros() as u64;
    let zombies = tasks.iter().filter(|t| t.zombie()).count();
    info!("seized the tree of {pid}: {} task(s), {zombies} zombie(s)", tasks.len());
    for t in &tasks {
        if !t.threads.is_empty() {
            info!("task {}: seized {} threads", t.pid, t.threads.len() + 1);
        }
    }
    let what = if tasks.len() == 1 {
        format!("dump of task {pid} failed; the task was left running")
    } else {
        format!("dump of the tree of task {pid} failed; every task of it was left running")
    };
    let failed = |tasks: Vec<Task>, e: anyhow::Error| -> anyhow::Error {
        release_all(tasks);
        e.context(what.clone())
    };
    let live: Vec<i32> = tasks.iter().filter(|t| !t.zombie()).map(|t| t.pid).collect();
    let mut timens = match ns::timens::DumpTimens::of_tree(&live) {
        Ok(t) => t,
        Err(e) => return Err(failed(tasks, e)),
    };

    if opts.cgroups_checked() {
        for t in tasks.iter().filter(|t| !t.zombie()) {
            if let Err(e) = crate::cgroup::membership::check_same_as_criu(t.pid) {
                return Err(failed(tasks, e));
            }
        }
    }

    // What only each task can tell, through the parasite.
    let mut reports = Vec::with_capacity(tasks.len());
    if let Err(e) = fault(Stage::Remote) {
        return Err(failed(tasks, e));
    }
    for i in 0..tasks.len() {
        let Some(ctl) = tasks[i].ctl.take() else { continue };
        let tpid = tasks[i].pid;
        let (report, ctl) = ask_parasite(ctl);
        match ctl {
            Ok(c) => tasks[i].ctl = Some(c),
            Err(e) => {
                // Curing failed: the engine released that task already.
                tasks[i].threads.drain(..).for_each(|t| drop(t.release()));
                let mut rest: Vec<Task> = std::mem::take(&mut tasks);
                rest.remove(i);
                return Err(failed(rest, e));
            }
        }
        match report {
            Ok(r) => reports.push((tpid, r)),
            Err(e) => return Err(failed(tasks, e)),
        }
    }

    let mut sh = Shared { files: FileTable::new(), fds: fds::Fds::default(), next_pages_id: 1, shmem_done: Vec::new(), mem: Default::default() };
    sh.files.ghost_limit = opts.ghost_limit;
    let result = (|| -> Result<Vec<Collected>> {
        crate::scripts::run(crate::scripts::Action::QueryExtFiles, opts, Some(&dir), Some(pid))?;
        let mut collected = Vec::new();
        let mut nth = 0;
        for t in tasks.iter_mut() {
            let Some(ctl) = t.ctl.as_mut() else { continue };
            let report = reports.iter().position(|(p, _)| *p == t.pid).map(|i| reports.swap_remove(i).1).context("parasite report")?;
            let mut c = collect(ctl, &mut t.threads, report, t.pid, nth, &t.stat, &dir, opts, &mut sh)?;
            c.ids.time_ns_id = Some(timens.ns_id());
            collected.push(c);
            nth += 1;
        }
        let mut tables: Vec<(i32, &[FdinfoEntry])> = collected.iter().map(|c| (c.pid, c.fdinfo.as_slice())).collect();
        tables.extend(tasks.iter().filter(|t| t.ctl.is_none()).map(|t| (t.pid, &[][..])));
        files::check_proc_paths(&sh.files, &tables)?;
        // Timers' remaining times and the clocks, read together (a restore
        // in a new time namespace goes on from those clocks).
        for c in collected.iter_mut() {
            let Some(ctl) = tasks.iter_mut().find(|t| t.pid == c.pid).and_then(|t| t.ctl.as_mut()) else { continue };
            if let Some(tm) = c.core.tc.as_mut().and_then(|tc| tc.timers.as_mut()).filter(|tm| !tm.posix.is_empty()) {
                tm.posix = task::posix_timers::dump(c.pid, ctl)?;
                ctl.drop_scratch()?;
            }
        }
        let who = if tasks.len() == 1 { format!("task {pid}") } else { format!("the tree of task {pid}") };
        fds::dumped_all(&mut sh.fds, &mut sh.files, &who)?;
        timens.read_clocks()?;
        write_images(&dir, &tasks, &collected, &sh)?;
        timens.write(&dir)?;
        crate::scripts::run(crate::scripts::Action::PostDump, opts, Some(&dir), Some(pid))?;
        Ok(collected)
    })();
    if let Err(e) = result {
        // Leave every task exactly as it was.
        return Err(failed(tasks, e));
    }
    finish(tasks, opts.final_state)?;
    let frozen_us = frozen_at.elapsed().as_micros() as u64;
    write_stats(&dir, freezing_us, frozen_us, &sh.mem, opts.display_stats)?;
    info!("Dumping finished successfully");
    Ok(0)
}

/// After a successful dump: kill the tree (while still frozen: it never
/// runs again), leave it running, or leave it stopped.
fn finish(tasks: Vec<Task>, state: FinalState) -> Result<()> {
    use nix::sys::signal::{kill, Signal};
    let live: Vec<Task> = tasks.into_iter().filter(|t| !t.zombie()).collect();
    match state {
        FinalState::Dead => {
            for t in &live {
                kill(Pid::from_raw(t.pid), Signal::SIGKILL).with_context(|| format!("killing task {}", t.pid))?;
            }
            // Gone before the dump returns: a restore may reuse their ids
            // at once (a thread that gets little CPU dies slowly).
            for t in live {
                let pid = t.pid;
                for th in t.threads {
                    if let Err(e) = th.wait_killed() {
                        tracing::warn!("waiting for a killed thread of {pid}: {e}");
                    }
                }
                if let Some(Err(e)) = t.ctl.map(|c| c.seized.wait_killed()) {
                    tracing::warn!("waiting for killed task {pid}: {e}");
                }
            }
        }
        FinalState::Alive | FinalState::Stopped => {
            let stop = state == FinalState::Stopped;
            for t in &live {
                if stop {
                    kill(Pid::from_raw(t.pid), Signal::SIGSTOP).with_context(|| format!("stopping task {}", t.pid))?;
                }
            }
            let what = if stop { "leaving" } else { "resuming" };
            let mut first_err = None;
            for t in live {
                let pid = t.pid;
                for th in t.threads {
                    if let Err(e) = th.release() {
                        first_err.get_or_insert(anyhow::Error::from(e).context(format!("{what} a thread of task {pid}")));
                    }
                }
                if let Some(Err(e)) = t.ctl.map(|c| c.seized.release()) {
                    first_err.get_or_insert(anyhow::Error::from(e).context(format!("{what} task {pid}")));
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }
    }
    Ok(())
}
