//! `criu dump`: CRIU's stages for a process tree — check what we can dump,
//! freeze it (`task::freeze`), ask each task through the parasite, collect
//! everything per task (threads, memory, files, fs, core), write the images
//! (pstree.img with every task, a core-TID.img per thread, per task its
//! ids/mm/fs/fdinfo; files shared between tasks recorded once), then kill
//! the tree, leave it running (-R) or stopped (-s). Any failure before the
//! final stage releases every thread of every task exactly as it was.
//!
//! Fault injection for tests: `CRIU_FAULT=N` fails stage N (see [`Stage`]).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tracing::{debug, info};

use crate::files::{fds, FileTable};
use crate::images::kind::kinds;
use crate::images::pb::{FdinfoEntry, SeccompEntry};
use crate::images::{inventory, ImageDir};
use crate::net::lock::{Method, NetLock};
use crate::net::ns::DumpNetns;
use crate::opts::Opts;
use crate::task::freeze::{self, Task};
use crate::task::images::TaskImages;
use crate::task::remote::{self, ParasiteReport};
use crate::task;
use crate::{files, mem, ns, proc};

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
    /// After the network lock is taken (the failure must release it).
    Locked = 8,
}

/// `CRIU_FAULT=N`: fail the dump on purpose at stage N (tests of the
/// failure paths: the tree must be left running).
fn inject_fault(stage: Stage) -> Result<()> {
    if std::env::var("CRIU_FAULT").ok().and_then(|v| v.parse::<i32>().ok()) == Some(stage as i32) {
        bail!("fault injected at stage {stage:?} (CRIU_FAULT={})", stage as i32);
    }
    Ok(())
}

/// What the tasks of a tree share in the images: files.img, pipe data,
/// socket queues, terminals, memory (shared objects, page file numbers).
struct Shared {
    files: FileTable,
    fds: fds::Fds,
    mem: mem::mm::Dumper,
    /// Each task's threads' seccomp filters, until seccomp.img is made.
    seccomp: Vec<task::seccomp::TaskChains>,
}

/// Ask each live task's parasite. On failure `tasks` holds what is still
/// ours to release (a task whose cure failed was released already).
fn ask_parasites(tasks: &mut Vec<Task>) -> Result<Vec<(i32, ParasiteReport)>> {
    inject_fault(Stage::Remote)?;
    let mut reports = Vec::with_capacity(tasks.len());
    for i in 0..tasks.len() {
        let Some(ctl) = tasks[i].ctl.take() else { continue };
        let (report, ctl) = remote::ask_parasite(ctl);
        match ctl {
            Ok(c) => tasks[i].ctl = Some(c),
            Err(e) => {
                tasks.remove(i).threads.into_iter().for_each(|t| drop(t.release()));
                return Err(e);
            }
        }
        reports.push((tasks[i].pid, report?));
    }
    Ok(reports)
}

/// Collect live task `t`, the `nth` of the tree, with its parasite's report;
/// `fdt`: the fd table it shares with its parent, dumped with the parent.
fn collect(
    t: &mut Task,
    nth: u32,
    report: ParasiteReport,
    fdt: Option<Vec<FdinfoEntry>>,
    dir: &ImageDir,
    opts: &Opts,
    sh: &mut Shared,
) -> Result<TaskImages> {
    let (pid, stat, threads) = (t.pid, &t.stat, &mut t.threads);
    let ctl = t.ctl.as_mut().context("a live task")?;
    let status = proc::status::read(pid)?;
    let (leader, others) = task::thread::dump_all(pid, ctl, threads, &report)?;
    let chains = std::iter::once(&leader).chain(&others).map(|t| (t.tid, t.filters.clone())).collect();
    sh.seccomp.push((pid, chains));
    let mut timers = report.itimers.clone();
    // POSIX timers: their state asked of the task (before its scratch page
    // goes, so the page is never part of the memory dump).
    timers.posix = task::posix_timers::dump(pid, ctl)?;
    // AIO rings: no request may be in flight (their pages go with the memory).
    mem::aio::settle(pid, ctl)?;
    ctl.drop_scratch()?;
    let membarrier = task::settings::membarrier_mask(pid, ctl)?;
    debug!("task {pid}: {} thread(s) dumped", others.len() + 1);

    inject_fault(Stage::Memory)?;
    let mm = sh.mem.dump(pid, stat, &report, &mut sh.files, dir, opts.allow_uprobes)?;

    inject_fault(Stage::Files)?;
    let fdinfo = match fdt {
        Some(table) => table,
        None => fds::dump(pid, &mut sh.fds, &mut sh.files, stat, opts.shell_job)?,
    };
    let mut mm = mm;
    crate::sockets::packet::ring::link_maps(pid, &mut mm, &fdinfo, &sh.fds.state)?;
    let fs = task::fs::dump(&mut sh.files, pid, status.umask)?;

    inject_fault(Stage::Core)?;
    let stop = task::core::stopped_by(pid, &ctl.seized, threads)?;
    let from_task = task::core::FromTask { timers, sigactions: report.sigactions, child_subreaper: report.child_subreaper, membarrier };
    let tc = task::core::entry(task::core::Dumped::read(pid, stat, ctl.seized.state().sigmask, stop, from_task)?);
    let (core, threads) = task::core::cores(tc, leader, others);
    Ok(TaskImages { pid, core, threads, ids: ns::task_ids_nth(nth), mm, fs, fdinfo })
}

/// Every image: inventory, pstree, each task's, the files' and seccomp.img.
fn write_images(dir: &ImageDir, tasks: &[Task], collected: &[TaskImages], sh: &Shared, seccomp: &SeccompEntry, run_id: &str, lock: Method) -> Result<()> {
    inject_fault(Stage::Write)?;
    let mut inv = inventory::new(ns::root_ids(), run_id.to_string());
    inv.network_lock_method = Some(lock.inventory());
    inventory::write(dir, &inv)?;
    task::images::write_pstree(dir, tasks, collected)?;
    for t in tasks.iter().filter(|t| t.zombie()) {
        task::images::write_zombie(dir, t)?;
    }
    for (k, c) in collected.iter().enumerate() {
        // A table shared (CLONE_FILES) is written once: fdinfo-FILES_ID.img.
        c.write(dir, !collected[..k].iter().any(|o| o.ids.files_id == c.ids.files_id))?;
    }
    sh.files.write(dir)?;
    fds::write_images(&sh.fds, dir)?;
    task::images::write_one(dir, "seccomp.img", kinds::seccomp(), seccomp)
}

/// Release the network lock the dump took, if any (failures are logged:
/// the tasks go on either way).
fn unlock(sh: &mut Shared) {
    info!("Unlock network");
    let lock = sh.fds.state.get_mut::<NetLock>();
    if lock.taken()
        && let Err(e) = lock.unlock()
    {
        tracing::error!("{e:#}");
    }
}

/// Run `criu dump`.
pub fn run(opts: &Opts) -> Result<i32> {
    let pid = opts.tree_id.context("dump needs -t PID")?;
    let dir = ImageDir::open(opts.imgs_dir.as_deref().unwrap_or(std::path::Path::new(".")))?;
    info!("Dumping processes (pid: {pid})");
    crate::ops::cpuinfo::dump_if_asked(opts, &dir)?;
    let lock_method = crate::net::lock::Method::from_opt(opts.network_lock.as_deref())?;
    info!("Network lock method: {}", lock_method.name());
    crate::scripts::run(crate::scripts::Action::PreDump, opts, Some(&dir), Some(pid))?;
    inject_fault(Stage::Collect)?;
    freeze::precheck(pid)?;

    let t_freeze = Instant::now();
    inject_fault(Stage::Freeze)?;
    let mut tasks = freeze::freeze(pid, opts)?;
    let frozen_at = Instant::now();
    let freezing_us = frozen_at.duration_since(t_freeze).as_micros() as u64;
    let zombies = tasks.iter().filter(|t| t.zombie()).count();
    info!("seized the tree of {pid}: {} task(s), {zombies} zombie(s)", tasks.len());
    for t in tasks.iter().filter(|t| !t.threads.is_empty()) {
        info!("task {}: seized {} threads", t.pid, t.threads.len() + 1);
    }
    let what = if tasks.len() == 1 {
        format!("dump of task {pid} failed; the task was left running")
    } else {
        format!("dump of the tree of task {pid} failed; every task of it was left running")
    };
    let failed = |tasks: Vec<Task>, e: anyhow::Error| -> anyhow::Error {
        freeze::release_all(tasks);
        e.context(what.clone())
    };
    // A confined RPC caller dumps only tasks it could ptrace (held still now).
    let all: Vec<(i32, bool)> = tasks.iter().map(|t| (t.pid, t.zombie())).collect();
    if let Err(e) = crate::ops::auth::dump::check_tree(&all) {
        return Err(failed(tasks, e));
    }
    // As CRIU: a tree in criu's net namespace is locked connection by
    // connection as the sockets are dumped (no script); one with its own
    // namespace (entered by criu's thread until the end) is locked whole.
    info!("Lock network");
    let live: Vec<i32> = tasks.iter().filter(|t| !t.zombie()).map(|t| t.pid).collect();
    // The tree's namespace ids (CRIU's numbering), every task in the root's.
    let tree_ns = match ns::ids::check_tree(&live).and_then(|()| ns::ids::TreeNs::of_root(pid)) {
        Ok(t) => t,
        Err(e) => return Err(failed(tasks, e)),
    };
    ns::set_tree_ns(tree_ns);
    let mut timens = match ns::timens::DumpTimens::of_tree(&live) {
        Ok(t) => t,
        Err(e) => return Err(failed(tasks, e)),
    };
    if opts.cgroups_checked()
        && let Err(e) = live.iter().try_for_each(|&p| crate::cgroup::membership::check_same_as_criu(p))
    {
        return Err(failed(tasks, e));
    }
    let mut netns = match DumpNetns::of_tree(&live, opts.empty_ns_net, &opts.external) {
        Ok(n) => n,
        Err(e) => return Err(failed(tasks, e)),
    };
    timens.renumber(tree_ns.id(ns::ids::Kind::Time));
    if let Some(n) = netns.as_mut()
        && let Err(e) = n.lock(opts, &dir, lock_method)
    {
        n.unlock(opts, &dir);
        return Err(failed(tasks, e));
    }
    let net_ns_id = netns.as_ref().map_or(ns::NET_NS_ID, DumpNetns::ns_id);
    // What only each task can tell, through the parasite.
    let mut reports = match ask_parasites(&mut tasks) {
        Ok(r) => r,
        Err(e) => {
            netns.iter_mut().for_each(|n| n.unlock(opts, &dir));
            return Err(failed(tasks, e));
        }
    };

    let mut sh = Shared { files: FileTable::new(), fds: fds::Fds::default(), mem: mem::mm::Dumper::new(), seccomp: Vec::new() };
    sh.files.ghost_limit = opts.ghost_limit;
    sh.fds.file_locks = opts.handle_file_locks;
    sh.fds.tcp_close = opts.tcp_close;
    crate::sockets::tcp_repair::allow(&mut sh.fds.state, opts.tcp_established_ok, opts.tcp_skip_in_flight);
    // The network lock: each connection dumped with its state is locked
    // (by the socket dump, or below once all are found) until the
    // restore; the nftables table is named by this dump's run id.
    let run_id = inventory::run_id();
    let per_conn = if netns.is_some() { Method::Skip } else { lock_method };
    *sh.fds.state.get_mut::<NetLock>() = NetLock::new(per_conn, &run_id);
    crate::sockets::unix::allow_external(&mut sh.fds.state, opts.ext_unix_sk);
    sh.files.link_remap = opts.link_remap_ok;
    let result = (|| -> Result<()> {
        crate::scripts::run(crate::scripts::Action::QueryExtFiles, opts, Some(&dir), Some(pid))?;
        let mut collected: Vec<TaskImages> = Vec::new();
        // Tasks of one fd table (CLONE_FILES) share its id, and the table
        // is dumped once, with the first of them (the parent).
        let live_pp: Vec<(i32, i32)> = tasks.iter().filter(|t| !t.zombie()).map(|t| (t.pid, t.ppid)).collect();
        let files_ids = task::fdt::files_ids(&live_pp)?;
        for t in tasks.iter_mut() {
            if t.zombie() {
                continue;
            }
            let nth = collected.len();
            let report = reports.iter().position(|(p, _)| *p == t.pid).map(|i| reports.swap_remove(i).1).context("parasite report")?;
            let fdt = collected.iter().position(|c| c.pid == t.ppid).filter(|&p| files_ids[p] == files_ids[nth]).map(|p| collected[p].fdinfo.clone());
            let mut c = collect(t, nth as u32, report, fdt, &dir, opts, &mut sh)?;
            tree_ns.apply(&mut c.ids);
            c.ids.time_ns_id = Some(timens.ns_id());
            c.ids.net_ns_id = Some(net_ns_id);
            c.ids.files_id = files_ids[nth];
            collected.push(c);
        }
        let conns = crate::net::lock::connections(sh.files.entries(), opts.tcp_close);
        sh.fds.state.get_mut::<NetLock>().lock_all(&conns)?;
        inject_fault(Stage::Locked)?;
        // Tasks sharing their fs info (CLONE_FS) share its id.
        let ppid = |p: i32| tasks.iter().find(|t| t.pid == p).map_or(0, |t| t.ppid);
        let mut fs: Vec<_> = collected.iter_mut().map(|c| (c.pid, ppid(c.pid), &mut c.ids)).collect();
        task::shared::fs_ids(&mut fs)?;
        sh.mem.dump_memfds(&sh.files, &dir)?;
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
        // Seccomp filters: seccomp.img, and each filtered thread's core.
        let seccomp = task::seccomp::dump_image(&mut collected, std::mem::take(&mut sh.seccomp));
        write_images(&dir, &tasks, &collected, &sh, &seccomp, &run_id, lock_method)?;
        if let Some(n) = &netns {
            n.write(&dir, &sh.fds.state)?;
        }
        ns::kind::dump_own(&dir, pid, &tree_ns, &mut sh.mem.next_pages_id)?;
        timens.write(&dir)?;
        crate::scripts::run(crate::scripts::Action::PostDump, opts, Some(&dir), Some(pid))
    })();
    if let Err(e) = result {
        // Leave every task exactly as it was, its connections unlocked
        // and out of repair mode before it runs again.
        unlock(&mut sh);
        crate::sockets::tcp_repair::finish(&mut sh.fds.state, false);
        netns.iter_mut().for_each(|n| n.unlock(opts, &dir));
        ns::set_tree_ns(ns::ids::TreeNs::criu());
        return Err(failed(tasks, e));
    }
    // Tasks that run on need their connections (CRIU keeps the lock only
    // for tasks that die or stay stopped: the restore releases it).
    if opts.final_state == crate::opts::FinalState::Alive {
        unlock(&mut sh);
        netns.iter_mut().for_each(|n| n.unlock(opts, &dir));
    } else {
        netns.iter_mut().for_each(DumpNetns::keep_locked);
    }
    // Connections of a tree that does not run on stay in repair mode (as
    // CRIU: a dead tree's close silently); the others leave it before
    // their tasks run (in repair mode a read fails with EPERM).
    crate::sockets::tcp_repair::finish(&mut sh.fds.state, opts.final_state != crate::opts::FinalState::Alive);
    drop(netns);
    ns::set_tree_ns(ns::ids::TreeNs::criu());
    freeze::finish(tasks, opts.final_state)?;
    // The links --link-remap made stay for the restore, unless the tasks
    // run on (as CRIU: they hold their files; the links would be strays).
    if opts.final_state == crate::opts::FinalState::Dead {
        sh.files.link_remaps.keep();
    }
    let frozen_us = frozen_at.elapsed().as_micros() as u64;
    crate::stats::write_dump(&dir, freezing_us, frozen_us, &sh.mem.stats, opts.display_stats)?;
    info!("Dumping finished successfully");
    Ok(0)
}
