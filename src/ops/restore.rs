//! `criu restore`: CRIU's stages for a process tree — read and check the
//! images (`restorer::tree`: files unchanged, every pid and thread id
//! free, sessions and process groups recreatable), then recreate the tree:
//! criu forks the root with its pid (clone3 set_tid), and every restoring
//! task forks its own children with theirs (`restorer::task`), after
//! making itself a session leader (setsid) or a process group leader if it
//! was one, so children inherit what they must. The root opens every file
//! of the tree first, so a description tasks shared is shared again: each
//! task installs the ones its fd table names and closes the rest.
//!
//! Tasks and criu meet at stages (`restorer::stages`), over one pair of
//! pipes per task (the task reports on one, criu answers on the other):
//! 1. forked — every task exists, leaders are in place (`F`); each live
//!    task premapped and filled its memory before forking its children,
//!    who take the areas they share with it copy-on-write (`mem::inherit`);
//! 2. criu's go (`P`): each task joins its process group, zombies report
//!    (`Z`) and exit with their status (a signal raised at themselves for
//!    a signal death) without being reaped: their parent waits for them
//!    with WNOWAIT, SIGCHLD at its default so no signal is left over;
//!    with helper tasks (CRIU's, for a session or group whose leader
//!    exited), live tasks report they joined (`J`), criu lets the helpers
//!    exit (`X`), each parent reaps its helpers, the helpers' children
//!    are the root's, and once every live task said so (`H`) criu says go
//!    on (`P`);
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

use std::time::Instant;

use anyhow::{bail, Context, Result};
use nix::sys::wait::{waitpid, WaitStatus};
use tracing::info;

use crate::images::ImageDir;
use crate::opts::Opts;
use crate::restorer::{self, stages::{self, Chan, Running}, tree::Tree};
use crate::sys::clone::{fork_with_pid, Forked};

/// Read and check the images, and plan what a restore needs to decide
/// before any task exists (vDSO, sessions and groups).
fn load(dir: &ImageDir, opts: &Opts) -> Result<Tree> {
    let mut tree = Tree::load(dir)?;
    // A confined RPC caller restores only what it could make itself.
    crate::ops::auth::restore::check_tree(&tree)?;
    let pid = tree.root().pid;
    if tree.nodes.len() == 1 {
        info!("Restoring task {pid}");
    } else {
        let zombies = tree.nodes.iter().filter(|n| n.zombie()).count();
        info!("Restoring the tree of task {pid}: {} task(s), {zombies} zombie(s)", tree.nodes.len());
    }
    // Unlinked files come back under a name every task opens them by,
    // and are unlinked again once all of them hold what they need.
    tree.files.prepare(dir)?;
    tree.files.state.get_mut::<crate::sockets::inet::TcpClose>().0 = opts.tcp_close;
    crate::sockets::unix::allow_external(&mut tree.files.state, opts.ext_unix_sk);
    tree.check_files(&opts.inherit_fds)?;
    tree.check_pids_free()?;
    tree.plan_vdso(dir)?;
    for n in &tree.nodes {
        if let Some(t) = n.alive().filter(|t| !t.threads.is_empty()) {
            info!("task {} has {} threads", n.pid, t.threads.len() + 1);
        }
    }
    tree.plan_ids(opts.shell_job)?;
    crate::task::shared::check_restorable(&tree)?;
    Ok(tree)
}

/// Fork the root with its pid (in the tree's time namespace, which criu
/// leaves at once); it forks the rest. CRIU's namespace scripts run for a
/// root with namespaces of its own (or a sibling).
fn fork_root<'a>(tree: &'a Tree, dir: &ImageDir, opts: &Opts) -> Result<Running<'a>> {
    let pid = tree.root().pid;
    let chans: Vec<Chan> = tree.nodes.iter().map(|_| Chan::new()).collect::<Result<_>>()?;
    let flags = if opts.restore_sibling { libc::CLONE_PARENT as u64 } else { 0 };
    // The tree's own network namespace, set up before the root is in it.
    let netns = crate::net::ns::enter(dir, opts, &tree.live_ids())?;
    let timens = crate::ns::timens::enter(dir, opts.unprivileged, &tree.live_ids())?;
    // Its own uts and ipc namespaces, made by criu's thread (filled
    // between the setup-namespaces and post-setup-namespaces scripts).
    let other_ns = crate::ns::kind::enter(dir, &tree.live_ids())?;
    let forked = fork_with_pid(pid, flags);
    if let Ok(Forked::Child) = forked {
        restorer::task::root_main(tree, dir, opts, &chans)
    }
    let own_timens = timens.as_ref().is_some_and(|t| t.own());
    let (own_netns, empty_netns) = (netns.is_some(), netns.as_ref().is_some_and(|n| n.empty));
    let left = timens.map(crate::ns::timens::Entered::leave).transpose();
    let left = left.and(netns.map(crate::net::ns::Entered::leave).transpose());
    let own_other = other_ns.is_some();
    let mut unfilled = None;
    let left = left.and(other_ns.map(|o| o.leave().map(|u| unfilled = Some(u))).transpose());
    let (ready, go) = stages::criu_ends(&chans);
    let root = match forked {
        Err(nix::errno::Errno::EEXIST) => bail!("pid {pid} is taken: can't restore task {pid}"),
        Err(e) => bail!("clone3 with pid {pid}: {e}"),
        Ok(Forked::Parent(p)) => p,
        Ok(Forked::Child) => unreachable!("the child became the task"),
    };
    let mut rs = Running { tree, root, our_child: !opts.restore_sibling, ready, go, known: Vec::new() };
    if let Err(e) = left {
        rs.kill_all();
        return Err(e.context(format!("task {pid} was killed")));
    }
    if opts.restore_sibling || own_timens || own_netns || own_other {
        for action in [crate::scripts::Action::SetupNamespaces, crate::scripts::Action::PostSetupNamespaces] {
            // --empty-ns net: the namespace the script set up is locked
            // as the images would have it (CRIU does it here).
            let locked = || crate::net::ns::in_netns_of(pid, crate::net::ns::lock::lock).and_then(|r| r);
            let mut r = if action == crate::scripts::Action::PostSetupNamespaces && empty_netns { locked() } else { Ok(()) };
            if action == crate::scripts::Action::PostSetupNamespaces
                && let Some(u) = unfilled.take()
            {
                r = r.and_then(|()| u.fill(dir, pid));
            }
            if let Err(e) = r.and_then(|()| crate::scripts::run(action, opts, Some(dir), Some(pid))) {
                rs.kill_all();
                return Err(e.context(format!("restore aborted at {action}; task {pid} was killed")));
            }
        }
    }
    if own_netns {
        // The root makes its sockets once its namespace is ready.
        let sent = rs.go[0].as_mut().context("the root's go pipe").and_then(|f| {
            use std::io::Write;
            f.write_all(&[stages::msg::NETNS_READY]).context("telling the root its network namespace is ready")
        });
        if let Err(e) = sent {
            rs.kill_all();
            return Err(e.context(format!("task {pid} was killed")));
        }
    }
    Ok(rs)
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
    let inv = crate::images::inventory::read(&dir)?;
    let lock_method = crate::net::lock::Method::from_inventory(inv.network_lock_method)?;
    // A restore that fails lets go of what the dump locked all the same:
    // no rule of it outlives the restore.
    let res = restore_tree(&dir, opts, &inv, lock_method, t0);
    if res.is_err() {
        info!("Unlock network ({}) after the failed restore", lock_method.name());
        crate::net::lock::unlock_failed_restore(lock_method, inv.dump_criu_run_id.as_deref(), &dir);
    }
    res
}

/// Everything of `criu restore` after the inventory is read.
fn restore_tree(dir: &ImageDir, opts: &Opts, inv: &crate::images::pb::InventoryEntry, lock_method: crate::net::lock::Method, t0: Instant) -> Result<i32> {
    let tree = load(dir, opts)?;
    let pid = tree.root().pid;
    // After post-restore, before pre-resume (as CRIU): what the dump
    // locked is let go once every connection is back.
    let own_netns = crate::net::ns::image_id(dir, &tree.live_ids())?.is_some();
    let unlock = || {
        info!("Unlock network ({})", lock_method.name());
        let per_conn = || crate::net::lock::unlock_restored(lock_method, inv.dump_criu_run_id.as_deref(), pid, tree.files.values());
        if own_netns {
            crate::net::ns::unlock_restored(opts, dir, pid);
            if let Err(e) = crate::net::ns::in_netns_of(pid, per_conn) {
                tracing::error!("{e:#}");
            }
        } else {
            per_conn();
        }
    };
    let mut rs = fork_root(&tree, dir, opts)?;
    let root = rs.root;

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
            if action == crate::scripts::Action::PreResume {
                unlock();
            }
            if let Err(e) = crate::scripts::run(action, opts, Some(dir), Some(pid)) {
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
        if let Err(e) = crate::scripts::run(crate::scripts::Action::PostRestore, opts, Some(dir), Some(pid)) {
            rs.kill_all();
            return Err(e.context(format!("restore aborted at post-restore; {what}")));
        }
        unlock();
        crate::scripts::run_logged(crate::scripts::Action::PreResume, opts, dir, pid);
    }
    drop(rs);
    info!("Restore finished successfully ({} us)", t0.elapsed().as_micros());
    crate::scripts::run_logged(crate::scripts::Action::PostResume, opts, dir, pid);
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
