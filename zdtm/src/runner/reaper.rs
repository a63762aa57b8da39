//! Process handling: the runner is a child subreaper and one reaper
//! thread collects every child's exit status (`waitpid(-1)`); children
//! are started, waited for, signalled and run to completion through it.

use std::collections::HashMap;
use std::io;
use std::process::Command;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub(super) struct Reaper {
    pub(super) exits: Mutex<HashMap<i32, i32>>,
    cv: Condvar,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

pub(super) fn reaper() -> &'static Reaper {
    REAPER.get_or_init(|| {
        // SAFETY: plain prctl on ourselves.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            panic!("PR_SET_CHILD_SUBREAPER: {}", io::Error::last_os_error());
        }
        std::thread::Builder::new()
            .name("zdtm-reaper".into())
            .spawn(|| {
                loop {
                    let mut st = 0;
                    // SAFETY: waitpid with a valid out-pointer.
                    let pid = unsafe { libc::waitpid(-1, &mut st, libc::__WALL) };
                    if pid > 0 {
                        let r = REAPER.get().expect("reaper");
                        r.exits.lock().unwrap().insert(pid, st);
                        r.cv.notify_all();
                    } else if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                        std::thread::sleep(Duration::from_millis(10)); // ECHILD: nothing to wait for yet
                    }
                }
            })
            .expect("spawn the reaper thread");
        Reaper {
            exits: Mutex::new(HashMap::new()),
            cv: Condvar::new(),
        }
    })
}

/// Start a child; its exit is collected by the reaper.
pub(super) fn spawn(cmd: &mut Command) -> io::Result<i32> {
    let r = reaper();
    let mut exits = r.exits.lock().unwrap();
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    exits.remove(&pid); // a stale status of an earlier process with this pid
    drop(child); // never waited on by std: the reaper does it
    Ok(pid)
}

/// Wait for `pid` to exit (it must be our child or reparented to us).
pub(super) fn wait_exit(pid: i32, timeout: Duration) -> Option<i32> {
    let r = reaper();
    let deadline = Instant::now() + timeout;
    let mut exits = r.exits.lock().unwrap();
    loop {
        if let Some(st) = exits.remove(&pid) {
            return Some(st);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        exits = r.cv.wait_timeout(exits, deadline - now).unwrap().0;
    }
}

pub(super) fn exited(pid: i32) -> Option<i32> {
    reaper().exits.lock().unwrap().get(&pid).copied()
}

pub fn describe_status(st: i32) -> String {
    if libc::WIFEXITED(st) {
        format!("exit code {}", libc::WEXITSTATUS(st))
    } else if libc::WIFSIGNALED(st) {
        let s = libc::WTERMSIG(st);
        // SAFETY: strsignal returns a static string for any number.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(s)) }
            .to_string_lossy()
            .into_owned();
        format!("killed by signal {s} ({name})")
    } else {
        format!("wait status {st:#x}")
    }
}

pub(super) fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill takes only integer arguments and touches no memory of ours.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Run a command to completion (through the reaper) with a timeout.
/// Returns the wait status, or None on timeout (the command is killed).
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> io::Result<Option<i32>> {
    let pid = spawn(cmd)?;
    match wait_exit(pid, timeout) {
        Some(st) => Ok(Some(st)),
        None => {
            kill(pid, libc::SIGKILL);
            wait_exit(pid, Duration::from_secs(10));
            Ok(None)
        }
    }
}
