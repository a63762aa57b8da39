//! The stage protocol between criu and the restoring tasks: one pair of
//! pipes per task ([`Chan`]; the task reports on one, criu answers on the
//! other), the one-byte stage words ([`msg`]), the restorer's and
//! cleaner's report words ([`read_report`]), and criu's side of a restore
//! in progress ([`Running`]: stages 1 to 4, killing the tree on failure).
//! [`report`] and [`wait_for`] are the task's side.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use tracing::info;

use super::tree::Tree;
use crate::sys::fd::ForkPipe;

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
/// Every restoring task inherits all of them and, from its own copy, takes
/// its ends and closes what is not its own (criu's ends at once, others'
/// once its children are forked).
pub struct Chan {
    pub ready: ForkPipe,
    pub go: ForkPipe,
}

impl Chan {
    pub fn new() -> Result<Chan> {
        Ok(Chan { ready: ForkPipe::new().context("pipe2")?, go: ForkPipe::new().context("pipe2")? })
    }
}

/// criu's ends of every task's pipes, owned from here; the tasks' ends
/// are theirs (closed here).
pub fn criu_ends(chans: &[Chan]) -> (Vec<File>, Vec<Option<File>>) {
    for c in chans {
        c.ready.close_write();
        c.go.close_read();
    }
    let ready = chans.iter().map(|c| File::from(c.ready.take_read().expect("criu takes its ends once"))).collect();
    let go = chans.iter().map(|c| c.go.take_write().map(File::from)).collect();
    (ready, go)
}

/// Stage reports of a restoring task (before its restorer's report words).
pub mod msg {
    /// Forked, leads what it must, its children forked.
    pub const FORKED: u8 = b'F';
    /// A zombie in its group, about to exit.
    pub const ZOMBIE: u8 = b'Z';
    /// A live task joined its group (reported when the tree has helpers).
    pub const JOINED: u8 = b'J';
    /// A live task: its helpers are reaped, their children the root's
    /// (criu answers PROCEED once every task said so).
    pub const HELPERS_GONE: u8 = b'H';
    /// criu (to the helpers): every task joined its group; exit.
    pub const EXIT: u8 = b'X';
    /// An error text follows, up to EOF.
    pub const ERROR: u8 = b'E';
    /// criu: every task is forked; join your group and go on.
    pub const PROCEED: u8 = b'P';
    /// criu (to the cleaners): resume.
    pub const GO: u8 = b'g';
    /// criu (to the root of a tree with its own network namespace): the
    /// namespace is set up (scripts included); make the files.
    pub const NETNS_READY: u8 = b'N';
}

/// Read a one-byte stage report `want` of task `pid`.
fn expect_stage(r: &mut File, want: u8, pid: i32) -> Result<()> {
    let mut b = [0u8; 1];
    match r.read_exact(&mut b) {
        Ok(()) if b[0] == want => Ok(()),
        Ok(()) if b[0] == msg::ERROR => {
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            bail!("task {pid}: {}", String::from_utf8_lossy(&rest))
        }
        Ok(()) => bail!("task {pid} reported {:?} where {:?} was due", b[0] as char, want as char),
        Err(_) => bail!("the restoring process of task {pid} died"),
    }
}

/// criu's side of a restore in progress: the root (our child unless
/// --restore-sibling), the tasks known to be ours (they reported), and the
/// pipes. Dropping the go pipes makes every waiting task and cleaner give
/// up.
pub struct Running<'a> {
    pub tree: &'a Tree,
    pub root: Pid,
    pub our_child: bool,
    pub ready: Vec<File>,
    pub go: Vec<Option<File>>,
    pub known: Vec<i32>,
}

impl Running<'_> {
    /// Kill the whole tree: the go pipes close first (a cleaner holding
    /// its task lets go and kills it; tasks waiting for a stage leave),
    /// then every task we know and the root get SIGKILL (those not yet
    /// reported die with their parent: PR_SET_PDEATHSIG), and the root is
    /// reaped.
    pub fn kill_all(&mut self) {
        self.go.iter_mut().for_each(|g| drop(g.take()));
        let _ = kill(self.root, Signal::SIGKILL);
        for &pid in &self.known {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if self.our_child {
            let _ = waitpid(self.root, None);
        }
    }

    /// Kill the tree for failure `e`.
    pub fn fail(&mut self, e: anyhow::Error) -> anyhow::Error {
        self.kill_all();
        anyhow!("restore of task {} failed: {e:#}", self.tree.root().pid)
    }

    fn send(&mut self, i: usize, b: u8) -> Result<()> {
        let pid = self.tree.nodes[i].pid;
        let sent = match self.go[i].as_mut() {
            Some(g) => g.write_all(&[b]).map_err(|e| anyhow!("telling task {pid} to go on: {e}")),
            None => Err(anyhow!("task {pid} can't be told to go on")),
        };
        // A task that stopped listening failed, or died with one that did:
        // the failure a task reported says why better than the pipe.
        sent.map_err(|e| self.reported_failure().unwrap_or(e))
    }

    /// The first failure some task has reported (within half a second).
    fn reported_failure(&mut self) -> Option<anyhow::Error> {
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
            expect_stage(&mut self.ready[i], 0, pid).err().filter(|m| m.to_string().starts_with(&format!("task {pid}: ")))
        })
    }

    /// Stages 1 and 2: every task forked, then groups joined and zombies
    /// gone.
    pub fn fork_stages(&mut self) -> Result<()> {
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
        if self.tree.has_helpers() {
            for i in 0..self.tree.nodes.len() {
                if self.tree.nodes[i].alive().is_some() {
                    let pid = self.tree.nodes[i].pid;
                    expect_stage(&mut self.ready[i], msg::JOINED, pid)?;
                }
            }
            for i in 0..self.tree.nodes.len() {
                if self.tree.nodes[i].helper() {
                    self.send(i, msg::EXIT)?;
                    self.go[i] = None;
                }
            }
            for i in 0..self.tree.nodes.len() {
                if self.tree.nodes[i].alive().is_some() {
                    let pid = self.tree.nodes[i].pid;
                    expect_stage(&mut self.ready[i], msg::HELPERS_GONE, pid)?;
                }
            }
            for i in 0..self.tree.nodes.len() {
                if self.tree.nodes[i].alive().is_some() {
                    self.send(i, msg::PROCEED)?;
                }
            }
            info!("every task joined its group; the helper tasks exited and were reaped");
        }
        Ok(())
    }

    /// Stage 3: each live task's report: held (restored, not running),
    /// or running (no cleaner could hold it). Returns (held, running).
    pub fn restored(&mut self) -> Result<(Vec<usize>, Vec<usize>)> {
        let (mut held, mut running) = (Vec::new(), Vec::new());
        for i in 0..self.tree.nodes.len() {
            let Some(t) = self.tree.nodes[i].alive() else { continue };
            match read_report(&mut self.ready[i], &t.pstree.threads) {
                Report::Held => held.push(i),
                Report::Ready => running.push(i),
                Report::Failed(m) => return Err(self.task_err(i, m)),
            }
        }
        Ok((held, running))
    }

    /// Tasks stopped at dump time that no cleaner held (they run
    /// already) get their stop signal now; a held task gets it from its
    /// cleaner just before it is let go (see `Plan::stop_signo`).
    pub fn stop_again(&self, tasks: &[usize]) -> Result<()> {
        for &i in tasks {
            let Some(t) = self.tree.nodes[i].alive() else { continue };
            let pid = t.pid();
            let Ok(Some(sig)) = crate::task::core::stop_signal(&t.core, pid) else { continue };
            info!("task {pid} was stopped by {sig}: stopping it again");
            kill(Pid::from_raw(pid), sig).map_err(|e| self.task_err(i, format!("kill({sig}) to stop it again: {e}")))?;
        }
        Ok(())
    }

    /// Stage 4: let the held tasks go, and see them running.
    /// Tasks to be stopped again go last, one by one, parents first: when
    /// one stops, its parent runs untraced with its own signal mask, so
    /// the SIGCHLD of the stop is what it would be to it (not queued while
    /// its cleaner held it with every signal blocked).
    pub fn release(&mut self, held: &[usize]) -> Result<()> {
        let stops = |i: &usize| self.tree.nodes[*i].alive().is_some_and(|t| matches!(crate::task::core::stop_signal(&t.core, t.pid()), Ok(Some(_))));
        let (last, first): (Vec<usize>, Vec<usize>) = held.iter().copied().partition(stops);
        self.release_batch(&first)?;
        for i in last {
            self.release_batch(&[i])?;
        }
        Ok(())
    }

    /// Let `held` go at once, and see each running.
    fn release_batch(&mut self, held: &[usize]) -> Result<()> {
        for &i in held {
            self.send(i, msg::GO)?;
        }
        for &i in held {
            let threads = &self.tree.nodes[i].alive().map(|t| t.pstree.threads.clone()).unwrap_or_default();
            match read_report(&mut self.ready[i], threads) {
                Report::Ready => {}
                Report::Held => return Err(self.task_err(i, "the cleaner reported twice".into())),
                Report::Failed(m) => return Err(self.task_err(i, m)),
            }
            self.go[i] = None;
        }
        Ok(())
    }

    /// A task's failure, named by its pid when the tree has more than one.
    fn task_err(&self, i: usize, m: String) -> anyhow::Error {
        if self.tree.nodes.len() == 1 { anyhow!(m) } else { anyhow!("task {}: {m}", self.tree.nodes[i].pid) }
    }
}

/// Read criu's next word on `go`: `want`, or an error (EOF: criu gave up).
pub fn wait_for(go: &OwnedFd, want: u8) -> Result<()> {
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

/// Report stage `b` to criu.
pub fn report(ready: &Option<OwnedFd>, b: u8) -> Result<()> {
    let fd = ready.as_ref().context("ready fd")?;
    let n = nix::unistd::write(fd, &[b]).context("reporting to criu")?;
    if n != 1 {
        bail!("reporting to criu: short write");
    }
    Ok(())
}
