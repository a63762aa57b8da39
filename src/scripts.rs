//! Action scripts (`--action-script FILE`) and RPC notifications: the hooks
//! CRIU runs at fixed points of a dump or restore (criu/action-scripts.c).
//!
//! Every stage name lives in [`Action`]. At each stage, [`run`] first sends
//! the RPC notification when an RPC client asked for them
//! ([`set_notifier`]), then runs every script named on the command line or
//! in a config file, last named first (CRIU keeps them in a list it pushes
//! at the head). Each script runs with no arguments, stdin on /dev/null,
//! stdout and stderr on criu's log, no other fd, in its own process group,
//! with `CRTOOLS_SCRIPT_ACTION`, `CRTOOLS_IMAGE_DIR`
//! (`/proc/<criu pid>/fd/<images dir fd>`) and, once the root task's pid is
//! known, `CRTOOLS_INIT_PID`. A script that exits non-zero fails the stage
//! (all scripts still run, as CRIU); one that outlives `--timeout` seconds
//! (0: no limit) is killed with its process group and fails the stage.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::images::ImageDir;
use crate::opts::Opts;

/// The stages, as CRIU names them (`CRTOOLS_SCRIPT_ACTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    PreStream,
    PreDump,
    PostDump,
    PreRestore,
    PostRestore,
    NetworkLock,
    NetworkUnlock,
    SetupNamespaces,
    PostSetupNamespaces,
    PreResume,
    PostResume,
    /// RPC only: carries the pty master by SCM_RIGHTS.
    OrphanPtsMaster,
    StatusReady,
    /// RPC only: the client may answer with more `external` keys.
    QueryExtFiles,
}

impl Action {
    /// Every action, in CRIU's enum order.
    pub const ALL: [Action; 14] = [
        Action::PreStream,
        Action::PreDump,
        Action::PostDump,
        Action::PreRestore,
        Action::PostRestore,
        Action::NetworkLock,
        Action::NetworkUnlock,
        Action::SetupNamespaces,
        Action::PostSetupNamespaces,
        Action::PreResume,
        Action::PostResume,
        Action::OrphanPtsMaster,
        Action::StatusReady,
        Action::QueryExtFiles,
    ];

    /// The name scripts see in `CRTOOLS_SCRIPT_ACTION` (and RPC clients in
    /// `criu_notify.script`).
    pub fn name(self) -> &'static str {
        match self {
            Action::PreStream => "pre-stream",
            Action::PreDump => "pre-dump",
            Action::PostDump => "post-dump",
            Action::PreRestore => "pre-restore",
            Action::PostRestore => "post-restore",
            Action::NetworkLock => "network-lock",
            Action::NetworkUnlock => "network-unlock",
            Action::SetupNamespaces => "setup-namespaces",
            Action::PostSetupNamespaces => "post-setup-namespaces",
            Action::PreResume => "pre-resume",
            Action::PostResume => "post-resume",
            Action::OrphanPtsMaster => "orphan-pts-master",
            Action::StatusReady => "status-ready",
            Action::QueryExtFiles => "query-ext-files",
        }
    }

    /// Only RPC clients hear about it; shell scripts are not run.
    pub fn rpc_only(self) -> bool {
        matches!(self, Action::OrphanPtsMaster | Action::QueryExtFiles)
    }

    /// The RPC notification carries the root task's pid (CRIU fills it for
    /// these two only).
    pub fn notify_carries_pid(self) -> bool {
        matches!(self, Action::SetupNamespaces | Action::PostRestore)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where notifications go when an RPC client set `notify_scripts`.
pub trait Notifier: Send {
    /// Tell the client about `action` and wait for its verdict; an error
    /// fails the stage like a failing script.
    fn notify(&mut self, action: Action, pid: Option<i32>) -> Result<()>;
}

static NOTIFIER: Mutex<Option<Box<dyn Notifier>>> = Mutex::new(None);

/// Install (or with `None` remove) the RPC notifier for this process.
pub fn set_notifier(n: Option<Box<dyn Notifier>>) {
    *NOTIFIER.lock().unwrap_or_else(|e| e.into_inner()) = n;
}

/// Run the hooks of `action`: the RPC notification, then the scripts.
/// `dir` is the images directory (for `CRTOOLS_IMAGE_DIR`), `init_pid` the
/// root task's real pid once known.
pub fn run(action: Action, opts: &Opts, dir: Option<&ImageDir>, init_pid: Option<i32>) -> Result<()> {
    tracing::debug!("Running {action} scripts");
    if let Some(n) = NOTIFIER.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let pid = if action.notify_carries_pid() { init_pid } else { None };
        n.notify(action, pid).with_context(|| format!("the RPC client failed the {action} notification"))?;
    }
    if action.rpc_only() || opts.scripts.is_empty() {
        return Ok(());
    }
    let env = Env::new(action, dir, init_pid);
    let timeout = (opts.timeout > 0).then(|| Duration::from_secs(u64::from(opts.timeout)));
    let failures: Vec<String> = opts
        .scripts
        .iter()
        .rev()
        .filter_map(|s| run_one(s, &env, timeout).err().map(|e| format!("{e:#}")))
        .collect();
    match failures.as_slice() {
        [] => Ok(()),
        [one] => bail!("{one}"),
        many => bail!("{} action scripts failed at {action}: {}", many.len(), many.join("; ")),
    }
}

/// [`run`] for a stage after the restore created task `pid`: if the stage
/// fails, the task is killed (and reaped when it is our child) first.
pub fn run_or_kill(action: Action, opts: &Opts, dir: &ImageDir, pid: i32) -> Result<()> {
    run(action, opts, Some(dir), Some(pid)).map_err(|e| {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        e.context(format!("restore aborted at {action}; task {pid} was killed"))
    })
}

/// [`run`] for the stages whose failure CRIU only reports (pre-resume and
/// post-resume: the tasks are restored by then and stay).
pub fn run_logged(action: Action, opts: &Opts, dir: &ImageDir, pid: i32) {
    if let Err(e) = run(action, opts, Some(dir), Some(pid)) {
        tracing::error!("{action} hook failed (the restored task {pid} is left running): {e:#}");
    }
}

/// The setup-namespaces and post-setup-namespaces stages, run where CRIU
/// runs them for a restored tree: CRIU 4.2 was measured sending them for a
/// plain task only when it is restored as the caller's sibling
/// (`rst_sibling`, what runc does); the pid is the new root task's.
pub fn setup_namespaces(opts: &Opts, dir: &ImageDir, pid: i32) -> Result<()> {
    if !opts.restore_sibling {
        return Ok(());
    }
    run_or_kill(Action::SetupNamespaces, opts, dir, pid)?;
    run_or_kill(Action::PostSetupNamespaces, opts, dir, pid)
}

/// The environment and output of one stage's scripts.
struct Env {
    action: Action,
    image_dir: Option<String>,
    init_pid: Option<i32>,
}

impl Env {
    fn new(action: Action, dir: Option<&ImageDir>, init_pid: Option<i32>) -> Env {
        let image_dir = dir.map(|d| format!("/proc/{}/fd/{}", std::process::id(), d.as_fd().as_raw_fd()));
        Env { action, image_dir, init_pid }
    }
}

/// Where the script's stdout and stderr go: the log file when there is
/// one, else our stderr (where the log goes then).
fn log_output() -> Result<OwnedFd> {
    if let Some(fd) = crate::log::lift_fd(3).context("finding the log file")? {
        let me = crate::sys::pidfd::open(nix::unistd::getpid()).context("pidfd_open(self)")?;
        return crate::sys::pidfd::getfd(me.as_fd(), fd).with_context(|| format!("duplicating the log fd {fd}"));
    }
    std::io::stderr().as_fd().try_clone_to_owned().context("duplicating stderr")
}

fn spawn(path: &str, env: &Env) -> Result<Child> {
    let out = log_output()?;
    let err = out.try_clone().context("duplicating the log fd")?;
    // Whatever we inherited or opened without close-on-exec stays out of
    // the script (close_range(3, ~0, CLOSE_RANGE_CLOEXEC)).
    crate::sys::fd::cloexec_from(3).context("close_range")?;
    let mut cmd = Command::new(path);
    cmd.stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err)).process_group(0);
    cmd.env("CRTOOLS_SCRIPT_ACTION", env.action.name());
    match &env.image_dir {
        Some(d) => cmd.env("CRTOOLS_IMAGE_DIR", d),
        None => cmd.env_remove("CRTOOLS_IMAGE_DIR"),
    };
    match env.init_pid {
        Some(p) => cmd.env("CRTOOLS_INIT_PID", p.to_string()),
        None => cmd.env_remove("CRTOOLS_INIT_PID"),
    };
    cmd.spawn().with_context(|| format!("action script {path} at {}: can't run it", env.action))
}

/// Run one script to completion (or its timeout).
fn run_one(path: &str, env: &Env, timeout: Option<Duration>) -> Result<()> {
    tracing::debug!("\t[{path}]");
    let mut child = spawn(path, env)?;
    let status = wait(&mut child, timeout).with_context(|| format!("waiting for action script {path}"))?;
    let action = env.action;
    let Some(status) = status else {
        let secs = timeout.map(|t| t.as_secs()).unwrap_or(0);
        bail!("action script {path} at {action} did not finish within {secs} s (--timeout {secs}); it was killed");
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => bail!("action script {path} failed at {action}: exited with code {code}"),
        (None, Some(sig)) => bail!("action script {path} failed at {action}: killed by signal {sig}"),
        _ => bail!("action script {path} failed at {action}: {status}"),
    }
}

/// Wait for `child`; `None` when the timeout hit (the child's process group
/// is killed and the child reaped).
fn wait(child: &mut Child, timeout: Option<Duration>) -> std::io::Result<Option<ExitStatus>> {
    let Some(limit) = timeout else { return child.wait().map(Some) };
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if start.elapsed() >= limit {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_criu_s_and_unique() {
        let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for want in ["pre-dump", "post-dump", "pre-restore", "post-restore", "network-lock", "network-unlock"] {
            assert!(names.contains(&want), "{want}");
        }
        for want in ["setup-namespaces", "post-setup-namespaces", "pre-resume", "post-resume"] {
            assert!(names.contains(&want), "{want}");
        }
        for want in ["orphan-pts-master", "status-ready", "query-ext-files", "pre-stream"] {
            assert!(names.contains(&want), "{want}");
        }
    }
}
