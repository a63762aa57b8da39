//! `criu dump`: CRIU's stages for one task — check what we can dump, freeze
//! it (every thread: seized until /proc/PID/task stops growing), collect
//! everything (from /proc and ptrace outside; from the task itself through
//! the parasite, which runs in the leader, and through remote syscalls in
//! each thread for what is per thread), write the images (one core-TID.img
//! per thread), then kill the task, leave it running (-R) or stopped (-s).
//! Any failure before the final stage releases every thread exactly as it
//! was.
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
    CoreEntry, DumpStatsEntry, FsEntry, SeccompEntry, StatsEntry, TaskCoreEntry,
};
use crate::images::{inventory, ImageDir, ImageWriter};
use crate::mem::{self, pages, vma};
use crate::opts::{FinalState, Opts};
use crate::task::{self, remote};
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

/// What CRIU's dump checks before touching the task.
fn precheck(pid: i32) -> Result<proc::stat::Stat> {
    let stat = proc::stat::read(pid).with_context(|| format!("can't dump task {pid}: no such process"))?;
    if stat.state == 'Z' {
        bail!("task {pid} is a zombie");
    }
    let children = proc::read(pid, &format!("task/{pid}/children")).unwrap_or_default();
    if !children.trim().is_empty() {
        bail!("task {pid} has children ({}): dumping process trees is not supported yet", children.trim());
    }
    let foreign = task::foreign_namespaces(pid)?;
    if !foreign.is_empty() {
        bail!("task {pid} is in its own {} namespace(s): dumping namespaces is not supported yet", foreign.join(", "));
    }
    Ok(stat)
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

/// Everything the dump collected, ready to be written.
struct Collected {
    /// The leader's core (with `tc`).
    core: CoreEntry,
    /// The other threads' (tid, core), by tid.
    threads: Vec<(i32, CoreEntry)>,
    mm: crate::images::pb::MmEntry,
    fs: FsEntry,
    files: FileTable,
    fds: fds::Fds,
    mem: pages::MemStats,
}

fn collect(
    seized: &mut Ctl,
    threads: &mut [Seized],
    parasite: remote::ParasiteReport,
    pid: i32,
    stat: &proc::stat::Stat,
    dir: &ImageDir,
    opts: &Opts,
) -> Result<Collected> {
    crate::scripts::run(crate::scripts::Action::QueryExtFiles, opts, Some(dir), Some(pid))?;
    let status = proc::status::read(pid)?;
    if status.seccomp == 2 {
        bail!("task {pid} has seccomp filters: dumping them is not supported yet");
    }
    let report = parasite;
    let sigactions = report.sigactions;
    let timers = report.itimers;
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
    let leader = task::thread::dump(pid, pid, seized.seized.state(), asked, true)?;
    let mut others = Vec::with_capacity(threads.len());
    if !threads.is_empty() {
        let page = remote::Remote::scratch(seized)?;
        for t in threads.iter_mut() {
            let tid = t.pid().as_raw();
            let asked = task::thread::ask(pid, tid, &mut remote::ThreadRemote { seized: t, scratch: page })?;
            others.push(task::thread::dump(pid, tid, t.state(), asked, false)?);
        }
        seized.drop_scratch()?;
    }
    debug!("task {pid}: {} thread(s) dumped", others.len() + 1);

    fault(Stage::Memory)?;
    let mut files = FileTable::new();
    let exe_id = vma::exe_file_id(pid, &mut files)?;
    let maps = proc::maps::read(pid)?;
    let vmas = vma::collect(pid, &maps, &mut files, opts.allow_uprobes)?;
    let t_mem = Instant::now();
    let mem_stats = pages::dump_private(pid, &vmas, dir, 1).with_context(|| format!("dumping memory of {pid}"))?;
    let (_, shpages) = pages::dump_shmem(pid, &vmas, dir, 2).with_context(|| format!("dumping shared memory of {pid}"))?;
    let mut mem_stats = mem_stats;
    mem_stats.shpages_written = shpages;
    mem_stats.memdump_us = t_mem.elapsed().as_micros() as u64;
    debug!("memory of {pid}: {} pages, {shpages} shared, in {:?}", mem_stats.pages_written, t_mem.elapsed());
    let mut mm = mem::mm_entry(stat, brk, proc::auxv(pid)?, exe_id, &vmas, report.dumpable);
    mm.thp_disabled = Some(report.thp_disabled);

    fault(Stage::Files)?;
    let fds = fds::dump(pid, &mut files, stat, opts.shell_job)?;
    let fs = FsEntry {
        cwd_id: files::dir_entry(&mut files, pid, "cwd")?,
        root_id: files::dir_entry(&mut files, pid, "root")?,
        umask: status.umask,
    };

    fault(Stage::Core)?;
    let stopped = seized.seized.was_stopped() || threads.iter().any(Seized::was_stopped);
    let tc = TaskCoreEntry {
        task_state: 1,
        exit_code: 0,
        personality: task::personality(pid)?,
        flags: stat.flags,
        blk_sigset: seized.seized.state().sigmask,
        comm: stat.comm.clone(),
        timers: Some(timers),
        rlimits: Some(task::rlimits(pid)?),
        cg_set: Some(1),
        signals_s: Some(task::pending(pid, true)?),
        old_seccomp_mode: None,
        old_seccomp_filter: None,
        loginuid: Some(task::loginuid(pid)?),
        oom_score_adj: Some(task::oom_score_adj(pid)?),
        sigactions,
        child_subreaper: Some(subreaper),
        blk_sigset_extended: None,
        stop_signo: stopped.then_some(libc::SIGSTOP as u32),
        membarrier_registration_mask: None,
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
    Ok(Collected { core, threads, mm, fs, files, fds, mem: mem_stats })
}

fn write_one<M: prost::Message>(dir: &ImageDir, name: &str, kind: &'static crate::images::ImageKind, m: &M) -> Result<()> {
    let mut w = ImageWriter::create(dir, name, kind)?;
    w.write(m)?;
    w.finish()?;
    Ok(())
}

fn write_images(dir: &ImageDir, pid: i32, stat: &proc::stat::Stat, c: &Collected) -> Result<()> {
    fault(Stage::Write)?;
    let ids = ns::task_ids();
    inventory::write(dir, &inventory::new(ns::root_ids(), inventory::run_id()))?;
    let tids: Vec<i32> = std::iter::once(pid).chain(c.threads.iter().map(|(t, _)| *t)).collect();
    write_one(dir, "pstree.img", kinds::pstree(), &task::pstree_entry(stat, &tids))?;
    write_one(dir, &kinds::core().file_name(pid as u64), kinds::core(), &c.core)?;
    for (tid, core) in &c.threads {
        write_one(dir, &kinds::core().file_name(*tid as u64), kinds::core(), core)?;
    }
    write_one(dir, &kinds::ids().file_name(pid as u64), kinds::ids(), &ids)?;
    write_one(dir, &kinds::mm().file_name(pid as u64), kinds::mm(), &c.mm)?;
    write_one(dir, &kinds::fs().file_name(pid as u64), kinds::fs(), &c.fs)?;
    c.files.write(dir)?;
    let mut w = ImageWriter::create(dir, &kinds::fdinfo().file_name(u64::from(ids.files_id)), kinds::fdinfo())?;
    for e in &c.fds.fdinfo {
        w.write(e)?;
    }
    w.finish()?;
    if c.fds.has_pipes {
        let mut w = ImageWriter::create(dir, "pipes-data.img", kinds::pipes_data())?;
        for (e, data) in &c.fds.pipe_data {
            w.write(e)?;
            w.payload(data)?;
        }
        w.finish()?;
    }
    if !c.fds.unix.is_empty() {
        let mut w = ImageWriter::create(dir, "sk-queues.img", crate::images::kind::by_name("SK_QUEUES").context("SK_QUEUES kind")?)?;
        for (e, data) in &c.fds.sk_queues {
            w.write(e)?;
            w.payload(data)?;
        }
        w.finish()?;
    }
    if !c.fds.ttys.infos.is_empty() {
        let mut w = ImageWriter::create(dir, "tty-info.img", crate::images::kind::by_name("TTY_INFO").context("TTY_INFO kind")?)?;
        for e in &c.fds.ttys.infos {
            w.write(e)?;
        }
        w.finish()?;
    }
    write_one(dir, "seccomp.img", kinds::seccomp(), &SeccompEntry::default())?;
    write_one(dir, &kinds::timens().file_name(0), kinds::timens(), &ns::timens_entry()?)?;
    Ok(())
}

fn write_stats(dir: &ImageDir, freezing_us: u64, frozen_us: u64, c: &pages::MemStats, display: bool) -> Result<()> {
    let d = DumpStatsEntry {
            freezing_time: freezing_us as u32,
            frozen_time: frozen_us as u32,
            memdump_time: c.memdump_us as u32,
            memwrite_time: 0,
            pages_scanned: c.pages_scanned,
            pages_skipped_parent: 0,
            pages_written: c.pages_written,
            irmap_resolve: Some(0),
            pages_lazy: c.pages_lazy,
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

/// Stop the task under ptrace, within `--timeout`, through the cgroup
/// freezer with `--freeze-cgroup` (frozen, seized, thawed: it takes the
/// ptrace stop before running user code again).
fn freeze(pid: i32, opts: &Opts) -> Result<(Seized, Vec<Seized>)> {
    let timeout = std::time::Duration::from_secs(u64::from(opts.timeout));
    crate::sys::alarm::arm(opts.timeout).context("arming --timeout")?;
    let seized = match &opts.freeze_cgroup {
        None => Seized::seize_process(Pid::from_raw(pid), || Ok(())).map_err(anyhow::Error::from),
        Some(path) => (|| {
            let fz = crate::cgroup::freezer::Freezer::new(path)?;
            if !fz.tasks()?.contains(&pid) {
                bail!("task {pid} is not in the freezer cgroup {path}");
            }
            fz.freeze(timeout)?;
            let r = Seized::seize_process(Pid::from_raw(pid), || {
                fz.thaw().map_err(|e| crate::compel::Error::Protocol { pid, what: format!("{e:#}") })
            });
            if r.is_err() {
                let _ = fz.thaw();
            }
            Ok(r?)
        })(),
    };
    let timed_out = crate::sys::alarm::fired();
    crate::sys::alarm::disarm();
    match seized {
        Ok(s) => Ok(s),
        Err(_) if timed_out => bail!("can't seize task {pid} within {} s (--timeout)", opts.timeout),
        Err(e) => Err(e.context(format!("can't seize task {pid}"))),
    }
}

/// Put every thread back as it was (a failed dump), logging what could not be.
fn release_all(leader: Seized, threads: Vec<Seized>) {
    let pid = leader.pid();
    for t in threads {
        let tid = t.pid();
        if let Err(e) = t.release() {
            tracing::error!("releasing thread {tid} of {pid} after a failed dump: {e:#}");
        }
    }
    if let Err(e) = leader.release() {
        tracing::error!("releasing task {pid} after a failed dump: {e:#}");
    }
}

/// Run `criu dump`.
pub fn run(opts: &Opts) -> Result<i32> {
    let pid = opts.tree_id.context("dump needs -t PID")?;
    let dir = ImageDir::open(opts.imgs_dir.as_deref().unwrap_or(std::path::Path::new(".")))?;
    info!("Dumping processes (pid: {pid})");
    crate::scripts::run(crate::scripts::Action::PreDump, opts, Some(&dir), Some(pid))?;
    fault(Stage::Collect)?;
    let stat = precheck(pid)?;

    let t_freeze = Instant::now();
    fault(Stage::Freeze)?;
    let (seized, mut threads) = freeze(pid, opts)?;
    let frozen_at = Instant::now();
    if !threads.is_empty() {
        info!("task {pid}: seized {} threads", threads.len() + 1);
    }
    let freezing_us = frozen_at.duration_since(t_freeze).as_micros() as u64;

    let ctl = Ctl { seized, scratch: None };
    let (report, ctl) = if let Err(e) = fault(Stage::Remote) {
        (Err(e), Ok(ctl))
    } else {
        ask_parasite(ctl)
    };
    // If curing failed, the task was released by the engine: nothing to undo.
    let mut ctl = ctl?;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            release_all(ctl.seized, threads);
            return Err(e.context(format!("dump of task {pid} failed; the task was left running")));
        }
    };
    let result = collect(&mut ctl, &mut threads, report, pid, &stat, &dir, opts).and_then(|c| {
        write_images(&dir, pid, &stat, &c)?;
        crate::scripts::run(crate::scripts::Action::PostDump, opts, Some(&dir), Some(pid))?;
        Ok(c)
    });
    let c = match result {
        Ok(c) => c,
        Err(e) => {
            // Leave the task exactly as it was.
            let _ = ctl.drop_scratch();
            release_all(ctl.seized, threads);
            return Err(e.context(format!("dump of task {pid} failed; the task was left running")));
        }
    };
    let seized = ctl.seized;
    match opts.final_state {
        FinalState::Dead => {
            // Killed while still frozen: it never runs again.
            nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
                .with_context(|| format!("killing task {pid}"))?;
            for t in threads {
                let _ = t.release();
            }
            let _ = seized.release();
        }
        FinalState::Alive => {
            for t in threads {
                t.release().with_context(|| format!("resuming a thread of task {pid}"))?;
            }
            seized.release().with_context(|| format!("resuming task {pid}"))?
        }
        FinalState::Stopped => {
            nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP)
                .with_context(|| format!("stopping task {pid}"))?;
            for t in threads {
                t.release().with_context(|| format!("leaving a thread of task {pid} stopped"))?;
            }
            seized.release().with_context(|| format!("leaving task {pid} stopped"))?
        }
    }
    let frozen_us = frozen_at.elapsed().as_micros() as u64;
    write_stats(&dir, freezing_us, frozen_us, &c.mem, opts.display_stats)?;
    info!("Dumping finished successfully");
    Ok(0)
}
