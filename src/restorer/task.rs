//! What each restoring task does, from its fork with its pid to the jump
//! into the restorer blob (CRIU's restore_task_with_children and
//! restore_one_task): lead its session or group, (the root) open every
//! file of the tree and the shared memory, premap its memory, fork its
//! children with their pids, meet criu at the stages (`stages`), then
//! either die as a zombie with its exit status ([`zombie`]) or set up what
//! the restorer does not ([`prepare`]: name, settings, rlimits, fs, fds)
//! and hand over the plan. Tasks sharing an fd table (CLONE_FILES) touch
//! only their own fds in it: one installs the table (`restorer::fdt`).

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tracing::info;

use super::plan::Plan;
use super::stages::{msg, report, wait_for, Chan};
use super::tree::{Body, Node, TaskImages, Tree};
use crate::files::restore as fd_restore;
use crate::images::pb::{CoreEntry, FdinfoEntry};
use crate::images::ImageDir;
use crate::mem::premap;
use crate::opts::Opts;
use crate::sys::clone::{fork_with_pid, Forked};
use crate::task::fdt::Tables;
use crate::task::{self, thread};
use super::fdt::Meeting;

/// What the root makes for the whole tree before it forks: the files and
/// the anonymous shared memory tasks share. Each task takes its copy, and
/// with it where its parent premapped its memory (`cow`); a task sharing
/// its parent's fd table takes the same fds, not copies, and the meeting
/// of the tasks of that table (`table`).
#[derive(Default)]
struct Inherited {
    opened: fd_restore::Opened,
    shm: premap::SharedShmem,
    cow: Option<crate::mem::inherit::Premapped>,
    table: Option<Meeting>,
}

/// What every restoring task reads (a copy of criu's memory, by fork).
struct Ctx<'a> {
    tree: &'a Tree,
    dir: &'a ImageDir,
    opts: &'a Opts,
    chans: &'a [Chan],
    /// Which tasks are one fd table.
    tables: Tables,
}

/// Become the root of the tree (we were just forked with its pid).
pub fn root_main(tree: &Tree, dir: &ImageDir, opts: &Opts, chans: &[Chan]) -> ! {
    task_main(&Ctx { tree, dir, opts, chans, tables: Tables::of(tree) }, 0, Inherited::default())
}

/// Become task `idx` of the tree (we were just forked with its pid).
/// Never returns: the restorer jumps into the task, a zombie exits, and an
/// error is reported to criu before we exit.
fn task_main(ctx: &Ctx, idx: usize, inherited: Inherited) -> ! {
    let chan = &ctx.chans[idx];
    let mut ready = chan.ready.take_write();
    let go = chan.go.take_read();
    let err = match go.context("the task's go fd").and_then(|go| task_body(ctx, idx, inherited, &mut ready, go)) {
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

/// Everything a task does before its restorer (or, a zombie, its exit).
fn task_body(ctx: &Ctx, idx: usize, inh: Inherited, ready: &mut Option<OwnedFd>, go: OwnedFd) -> Result<Plan> {
    // An error leaves through exit_now, which closes what is ours: fds
    // dropped on the way could be another task's (a shared table).
    let mut inh = std::mem::ManuallyDrop::new(inh);
    let tree = ctx.tree;
    let node = &tree.nodes[idx];
    let pid = node.pid;
    // A helper's children outlive it (criu's go pipe still ends them
    // should criu die).
    let helper_parent = node.parent.filter(|&p| tree.nodes[p].helper());
    if helper_parent.is_none() {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("PR_SET_PDEATHSIG")?;
    }
    if let Some(p) = node.parent {
        // Our parent may have died before the line above: then we go too.
        if nix::unistd::getppid().as_raw() != tree.nodes[p].pid {
            bail!("the parent {} of task {pid} died", tree.nodes[p].pid);
        }
    } else {
        // criu's ends of every task's pipes are criu's alone.
        for c in ctx.chans {
            c.ready.close_read();
            c.go.close_write();
        }
    }
    if ctx.tables.member(idx) {
        // The log fd is the owner's (one table): ours is a copy.
        crate::log::own_fd().context("a log fd of its own")?;
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
            drop(std::mem::ManuallyDrop::into_inner(inh));
            zombie(ctx, idx, core, ready, go)
        }
        Body::Helper => helper(ctx, idx, std::mem::ManuallyDrop::into_inner(inh), ready, go),
        Body::Alive(t) => t,
    };
    // Orphans of a helper must come to us (a subreaper in the image)
    // while the tree is restored.
    // (Only until they came: then orphaned cleaners must not land on us;
    // the cleaner makes us one again after criu's go-ahead.)
    let early_subreaper = imgs.core.tc.as_ref().and_then(|tc| tc.child_subreaper).unwrap_or(false) && tree.has_helpers();
    if early_subreaper {
        nix::sys::prctl::set_child_subreaper(true).with_context(|| format!("PR_SET_CHILD_SUBREAPER for task {pid}"))?;
    }
    // Zombie children stay ours to reap (the restored code does), and
    // their exit leaves no SIGCHLD behind (the image has what was pending).
    crate::sys::sigreset::default(Signal::SIGCHLD).context("SIGCHLD to its default")?;
    crate::sys::sigreset::unblock(Signal::SIGCHLD).context("unblocking SIGCHLD")?;
    if idx == 0 {
        if crate::net::ns::root_waits() {
            wait_for(&go, msg::NETNS_READY)?;
        }
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
        inh.shm.memfds = crate::files::memfd::made(&tree.files)?;
    }
    // Memory before the children: they take what they share with it
    // (`mem::inherit`).
    let own = crate::proc::maps::read(std::process::id() as i32)?;
    let mut mem = premap::premap(&imgs.mm, &tree.regs_by_id(), ctx.dir, pid as u64, &own, &[], &inh.shm, &imgs.vdso, inh.cow.as_ref())?;
    mem.file_maps.extend(crate::mem::packet_ring::file_maps(&imgs.mm, &inh.opened)?);
    drop(own);
    inh.cow = Some(crate::mem::inherit::Premapped::new(pid as u64, &imgs.mm, &mem));
    let pids: Vec<i32> = tree.nodes.iter().map(|n| n.pid).collect();
    if let Some(m) = Meeting::new(&ctx.tables, idx, &pids, service_base(&imgs.fdinfo))? {
        info!("task {pid}: installs the fd table it shares with {} other task(s)", m.fds().len() / 4);
        inh.table = Some(m);
    }
    fork_children(ctx, idx, &mut inh)?;
    report(ready, msg::FORKED)?;
    wait_for(&go, msg::PROCEED)?;
    join_group(node)?;
    if tree.has_helpers() {
        helpers_gone(ctx, idx, helper_parent, early_subreaper, ready, &go)?;
    }
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
    prepare(ctx, idx, imgs, std::mem::ManuallyDrop::into_inner(inh), mem, ready, go)
}

/// Fork the children of task `idx` with their pids, each with its copy of
/// what we inherited; then close the pipe ends that are theirs.
fn fork_children(ctx: &Ctx, idx: usize, inh: &mut Inherited) -> Result<()> {
    let tree = ctx.tree;
    let pid = tree.nodes[idx].pid;
    for &c in &tree.nodes[idx].children {
        let cpid = tree.nodes[c].pid;
        // CLONE_FS: a child sharing our fs info (cwd, root, umask);
        // CLONE_FILES: our fd table.
        match fork_with_pid(cpid, crate::task::shared::clone_flags(tree, c)) {
            Err(nix::errno::Errno::EEXIST) => bail!("pid {cpid} is taken: can't restore task {cpid}"),
            Err(e) => bail!("clone3 with pid {cpid} (a child of {pid}): {e}"),
            Ok(Forked::Child) => {
                let mut theirs = std::mem::take(inh);
                if !ctx.tables.member(c) {
                    // Its copies of the meeting's fds go with its install.
                    theirs.table = None;
                }
                task_main(ctx, c, theirs)
            }
            Ok(Forked::Parent(_)) => {}
        }
    }
    // In a shared table, no end is closed before every task of it forked
    // its children (a child forked after a close would get a copy of the
    // table without that fd, and close whatever had its number since).
    if ctx.tables.group(idx).is_some() {
        let t = inh.table.as_ref().with_context(|| format!("task {pid} shares its fd table but has no meeting"))?;
        if ctx.tables.member(idx) {
            t.member_forked(idx)?;
        } else {
            t.owner_forked()?;
        }
    }
    // Our children hold their own pipe ends now (in a shared table, each
    // end is closed by one task: `Tables::closes_chan`).
    for (j, c) in ctx.chans.iter().enumerate() {
        if ctx.tables.closes_chan(idx, j) {
            c.ready.close_write();
            c.go.close_read();
        }
    }
    Ok(())
}

/// A helper (CRIU's TASK_HELPER): it leads its session or group already;
/// it forks the children born in it, and exits when criu says every task
/// joined its group (its parent reaps it; its children go to the root).
fn helper(ctx: &Ctx, idx: usize, mut inh: Inherited, ready: &mut Option<OwnedFd>, go: OwnedFd) -> ! {
    let node = &ctx.tree.nodes[idx];
    let r = (|| -> Result<()> {
        crate::sys::sigreset::default(Signal::SIGCHLD).context("SIGCHLD to its default")?;
        let _ = nix::sys::prctl::set_name(c"criu-helper");
        fork_children(ctx, idx, &mut inh)?;
        drop(inh);
        report(ready, msg::FORKED)?;
        wait_for(&go, msg::PROCEED)?;
        wait_for(&go, msg::EXIT)
    })();
    if let Err(e) = r {
        if let Some(fd) = ready.take() {
            let _ = File::from(fd).write_all(format!("{}helper task {}: {e:#}", msg::ERROR as char, node.pid).as_bytes());
        }
        crate::sys::restorer::exit_now(1);
    }
    crate::sys::restorer::exit_now(0)
}

/// With helpers in the tree, a live task reports it joined its group;
/// criu then lets the helpers exit. It reaps its own helpers, (a child of
/// one) waits to be the root's, (the root) stops being a subreaper once
/// every helper exited, and reports; no task goes on (no cleaner is
/// forked) before criu heard every task.
fn helpers_gone(ctx: &Ctx, idx: usize, helper_parent: Option<usize>, early_subreaper: bool, ready: &Option<OwnedFd>, go: &OwnedFd) -> Result<()> {
    let tree = ctx.tree;
    let node = &tree.nodes[idx];
    report(ready, msg::JOINED)?;
    for &c in node.children.iter().filter(|&&c| tree.nodes[c].helper()) {
        let cpid = Pid::from_raw(tree.nodes[c].pid);
        loop {
            match nix::sys::wait::waitpid(cpid, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => break,
                r => bail!("helper task {cpid} (a child of {}) failed: {r:?}", node.pid),
            }
        }
    }
    if let Some(h) = helper_parent {
        reparented(tree, idx, h)?;
    }
    if early_subreaper {
        // Every helper's children found their new parent when it exited:
        // from then on, no orphan (an orphaned cleaner) may come to us.
        for h in tree.nodes.iter().filter(|n| n.helper()) {
            wait_exited(h.pid, node.pid)?;
        }
        nix::sys::prctl::set_child_subreaper(false).with_context(|| format!("PR_SET_CHILD_SUBREAPER 0 for task {}", node.pid))?;
    }
    report(ready, msg::HELPERS_GONE)?;
    wait_for(go, msg::PROCEED)
}

/// Wait (for task `pid`) until helper `h` has exited (a zombie, or reaped).
fn wait_exited(h: i32, pid: i32) -> Result<()> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{h}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()));
        if matches!(state, None | Some('Z' | 'X')) {
            return Ok(());
        }
        if std::time::Instant::now() > end {
            bail!("task {pid}: helper task {h} did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A child of helper `h` waits for the helper to exit, and must then be
/// the root's child (the root is the subreaper it was at dump time).
fn reparented(tree: &Tree, idx: usize, h: usize) -> Result<()> {
    let (pid, hpid, root) = (tree.nodes[idx].pid, tree.nodes[h].pid, tree.root().pid);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while nix::unistd::getppid().as_raw() == hpid {
        if std::time::Instant::now() > end {
            bail!("task {pid}: its helper {hpid} did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let ppid = nix::unistd::getppid().as_raw();
    if ppid != root {
        bail!("task {pid}: once its helper {hpid} exited, its parent is {ppid}, not the root {root} (the root is no child subreaper)");
    }
    Ok(())
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
        crate::sys::fd::close_all_except(&keep);
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

/// The lowest fd number of a task's service fds: above every fd of its
/// table `fdinfo`, and not below 100.
fn service_base(fdinfo: &[FdinfoEntry]) -> i32 {
    let top = fdinfo.iter().map(|f| f.fd as i32).max().unwrap_or(2).max(2) + 1;
    top.max(100)
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
    // In a shared fd table the inherited fds are the owner's to close.
    let Inherited { mut opened, shm, cow, table } = inh;
    let member = ctx.tables.member(idx);
    let shm = if member {
        std::mem::forget(shm);
        std::mem::forget(std::mem::take(&mut opened));
        None
    } else {
        Some(shm)
    };
    let tc = core.tc.as_ref().context("core image has no task core")?;
    let thc = core.thread_core.as_ref().context("core image has no thread core")?;
    let ti = core.thread_info.as_ref().context("core image has no registers")?;

    // The task's name (per thread; ours is "criu" until now).
    let comm = thc.comm.as_deref().unwrap_or(tc.comm.as_str());
    nix::sys::prctl::set_name(&std::ffi::CString::new(comm).context("comm with a NUL byte")?).context("PR_SET_NAME")?;
    // OOM score, login uid, THP, membarrier: before the memory comes in.
    task::settings::restore(pid, tc, &imgs.mm)?;

    // Memory was premapped and filled before the children were forked;
    // the shared objects' fds go (before the fd table is set).
    drop(shm);
    drop(cow);

    let tp = task::core::plan(core, tc, pid)?;
    task::core::set_rlimits(&tp.rlimits, pid);

    // The executable for PR_SET_MM_MAP.
    let exe_file = match crate::files::memfd::open_file(&tree.files, imgs.mm.exe_file_id).context("the executable")? {
        Some(memfd) => memfd,
        None => {
            let exe = tree.reg(imgs.mm.exe_file_id)?;
            let f = File::open(&exe.name).with_context(|| format!("can't open the executable {}", exe.name))?;
            crate::files::reg::validate(exe, &f)?;
            f
        }
    };

    let fs = task::fs::plan(&imgs.fs, |id| tree.reg(id))?;
    task::fs::restore(&fs, pid)?;

    let shared = tc.signals_s.iter().flat_map(|q| q.signals.iter().map(|s| (true, s.siginfo.clone())));
    let pending = shared.chain(thc.signals_p.iter().flat_map(|q| q.signals.iter().map(|s| (false, s.siginfo.clone())))).collect();

    // Service fds go above the task's fds; then the task's fd table (the
    // files opened for the tree, those it names).
    let base = service_base(&imgs.fdinfo);
    let mut keep = Vec::new();
    let mut lift = |fd: &OwnedFd| -> Result<OwnedFd> {
        let n = crate::sys::fd::dup_cloexec_from(fd, base).context("F_DUPFD_CLOEXEC")?;
        keep.push(std::os::fd::AsRawFd::as_raw_fd(&n));
        Ok(n)
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
    if let Some(f) = mem.aio_null.as_mut() {
        *f = lift(f)?;
    }
    if let Some(l) = crate::log::lift_fd(base)? {
        keep.push(l);
    }
    if member {
        // The owner installs our shared table while we wait.
        table.with_context(|| format!("task {pid} shares its fd table but has no meeting"))?.member(idx, &keep, base)?;
    } else {
        opened.open_deferred(&imgs.fdinfo, &tree.files)?;
        let mut all = keep.clone();
        if let Some(t) = &table {
            // Every fd the other tasks of our table keep, and the meeting's.
            all.extend(t.gather()?);
            all.extend(t.fds());
        }
        opened.install(&imgs.fdinfo, &all)?;
        fd_restore::installed(&imgs.fdinfo, &tree.files, &tree.files_before(idx))?;
        if let Some(t) = &table {
            t.installed()?;
        }
    }
    // Locks and leases: their fds are at their numbers, and none of the
    // task's fds is closed from here on (a close drops its POSIX locks).
    crate::files::locks::restore(pid, &imgs.fdinfo, &tree.files)?;
    // POSIX timers: checked here, made by the restorer (their threads exist there).
    task::posix_timers::check_restore(&tp.posix_timers, pid, &imgs.threads.iter().map(|(tid, _)| *tid).collect::<Vec<_>>())?;

    let plan = Plan {
        pid,
        chroot: fs.chroot,
        mem,
        mm: crate::mem::mm::mm_map(&imgs.mm),
        exe_fd: Some(exe_fd),
        sigactions: tp.sigactions,
        itimers: tp.itimers,
        posix_timers: tp.posix_timers,
        fowns: crate::files::fown::restore_list(&imgs.fdinfo, &tree.files, thc.creds.as_ref(), pid)?,
        sigaltstack: thc.sas,
        clear_tid_addr: ti.clear_tid_addr,
        rseq: thread::rseq_of(pid, thc.rseq_entry)?,
        tls: task::thread_info::tls_words(&ti.tls, &[]),
        personality: tp.personality,
        creds: thc.creds.clone(),
        pdeath_sig: thc.pdeath_sig.unwrap_or(0),
        sched: thread::sched_of(thc),
        // Images of CRIU before 2.x kept the mode in the task core.
        seccomp: thread::leader_seccomp_of(pid, thc, tc, tree.seccomp.as_ref())?,
        threads: imgs.threads.iter().map(|(tid, c)| thread::plan(*tid, c, &ti.tls, tree.seccomp.as_ref())).collect::<Result<_>>()?,
        dumpable: imgs.mm.dumpable,
        robust_list: (thc.futex_rla, thc.futex_rla_len),
        pending,
        regs: task::thread_info::regs_from_image(&ti.gpregs),
        fpu: task::thread_info::fpu_from_image(&ti.fpregs),
        sigmask: tc.blk_sigset,
        ready_fd: ready_w.take().context("ready fd")?,
        go_fd: Some(go_fd),
        leave_stopped: ctx.opts.final_state == crate::opts::FinalState::Stopped,
        stop_signo: tp.stop.map_or(0, |s| s as i32),
        child_subreaper: tp.child_subreaper,
        own_fds: ctx.tables.group(idx).map(|_| keep.clone()),
    };
    info!("task {pid}: files, memory and state prepared; jumping to the restorer");
    Ok(plan)
}
