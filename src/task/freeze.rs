//! Freezing the tree for a dump (CRIU's seize.c): the root, then every
//! child found in /proc/PID/task/TID/children of each frozen task, every
//! thread of each seized until /proc/PID/task stops growing; the lists are
//! read again until nothing new appears. With `--freeze-cgroup` the cgroup
//! freezer holds the tree still while it is listed and seized. Zombies are
//! not seized: their pid, parentage, group, session, name and exit code
//! come from /proc/PID/stat. Then, once the images are written, the tree
//! is killed, left running (-R) or stopped (-s) ([`finish`]); a failed
//! dump releases every thread of every task exactly as it was
//! ([`release_all`]).

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;
use tracing::debug;

use crate::compel::Seized;
use crate::opts::{FinalState, Opts};
use crate::proc;
use crate::task::remote::Ctl;
use crate::task::tree;

/// What CRIU's dump checks before touching the root task.
pub fn precheck(pid: i32) -> Result<proc::stat::Stat> {
    let stat = proc::stat::read(pid).with_context(|| format!("can't dump task {pid}: no such process"))?;
    if stat.state == 'Z' {
        bail!("task {pid} is a zombie");
    }
    check_namespaces(pid)?;
    Ok(stat)
}

/// The root may have namespaces of its own of the kinds carried
/// (`ns::kind`'s table: net, ipc, uts, time); any other must be criu's.
fn check_namespaces(pid: i32) -> Result<()> {
    crate::ns::kind::check_root(pid)
}

/// What a child must pass before it is seized: in its parent's namespaces
/// (CRIU 4.2 refuses nested ones but for net and mnt; we refuse those too).
fn check_child(pid: i32, parent: i32) -> Result<()> {
    check_namespaces(pid)?;
    crate::ns::ids::check_same_as_root(parent, pid, pid)?;
    let net = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/net")).with_context(|| format!("can't read net namespace of {p}"));
    if net(pid)? != net(parent)? {
        bail!("task {pid} is in a network namespace other than its parent {parent}'s: nested network namespaces can't be dumped");
    }
    tree::check_not_shared(parent, pid)
}

/// One task of the frozen tree.
pub struct Task {
    pub pid: i32,
    /// Its parent in the tree (0 for the root).
    pub ppid: i32,
    /// A live task, seized (its other threads in `threads`); None for a zombie.
    pub ctl: Option<Ctl>,
    pub threads: Vec<Seized>,
    /// /proc/PID/stat, read once the task holds still.
    pub stat: proc::stat::Stat,
}

impl Task {
    pub fn zombie(&self) -> bool {
        self.ctl.is_none()
    }

    /// Put every thread back as it was (a failed dump), logging what could not be.
    pub fn release(self) {
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

/// Release every task (a failed dump).
pub fn release_all(tasks: Vec<Task>) {
    for t in tasks {
        t.release();
    }
}

/// A live task, seized.
fn seized_task(pid: i32, ppid: i32, (leader, threads): (Seized, Vec<Seized>)) -> Result<Task> {
    // Stopped now: its stat holds still.
    let stat = proc::stat::read(pid).with_context(|| format!("reading the stat of task {pid}"))?;
    Ok(Task { pid, ppid, ctl: Some(Ctl::new(leader)), threads, stat })
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
pub fn freeze(pid: i32, opts: &Opts) -> Result<Vec<Task>> {
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

/// After a successful dump: kill the tree (while still frozen: it never
/// runs again), leave it running, or leave it stopped.
pub fn finish(tasks: Vec<Task>, state: FinalState) -> Result<()> {
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
