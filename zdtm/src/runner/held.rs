//! A test tree's task states around a dump: which descendants were
//! stopped or traced before it (`Held`), and the checks that after a dump
//! or restore every task runs (or stays stopped/traced) as it must.

use std::time::{Duration, Instant};

use super::reaper::{describe_status, exited, wait_exit};
use super::snapshot::{self, rd};
use super::{descendants, task_state};

pub(super) fn tracer(pid: i32) -> Option<i32> {
    let st = rd(&format!("/proc/{pid}/status")).ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A descendant found stopped (T), in a tracing stop (t) or traced by
/// someone (a tracer in the test's own tree) before the dump: a dump must
/// leave it so (and a restore bring a stopped one back stopped).
#[derive(Clone, Copy, Debug)]
pub(super) struct Held {
    pub(super) pid: i32,
    pub(super) state: char,
    pub(super) tracer: i32,
}

pub(super) fn held_of(tree: &[i32]) -> Vec<Held> {
    tree.iter()
        .map(|&pid| Held { pid, state: task_state(pid), tracer: tracer(pid).unwrap_or(0) })
        .filter(|h| matches!(h.state, 'T' | 't') || h.tracer != 0)
        .collect()
}

/// Each task of `held` that was stopped (state T) is stopped again, every
/// thread of it, within two seconds (a restored task stops once it runs:
/// criu may be gone before it does, and each thread stops on its own).
pub(super) fn check_stopped(held: &[Held]) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(2);
    for h in held.iter().filter(|h| h.state == 'T') {
        let d = h.pid;
        loop {
            let not_stopped = std::iter::once(d).chain(snapshot::thread_ids(d)).map(task_state).find(|c| *c != 'T');
            match not_stopped {
                None => break,
                Some('R' | 'S' | 'D') if Instant::now() < end => std::thread::sleep(Duration::from_millis(2)),
                Some(c) => return Err(format!("descendant {d} was stopped, and a thread of it is now in state {c:?}")),
            }
        }
    }
    Ok(())
}

/// Alive, running or sleeping, not traced: how a task must be after a dump
/// that left it running (or a failed one); its descendants too, but those
/// in `held`, which must be as they were.
pub(super) fn check_running(pid: i32, held: &[Held]) -> Result<(), String> {
    if let Some(st) = exited(pid) {
        return Err(format!("the task is gone: {}", describe_status(st)));
    }
    let root_stopped = held.iter().any(|h| h.pid == pid && h.state == 'T');
    match task_state(pid) {
        'R' | 'S' | 'D' if !root_stopped => {}
        'T' if root_stopped => {}
        'Z' | 'X' | '?' => {
            let st = wait_exit(pid, Duration::from_secs(5))
                .map(describe_status)
                .unwrap_or_else(|| "no exit status".into());
            return Err(format!("the task is gone: {st}"));
        }
        c if root_stopped => return Err(format!("the task was stopped, and is now in state {c:?}")),
        c => {
            return Err(format!(
                "the task is in state {c:?}, not running or sleeping"
            ));
        }
    }
    match tracer(pid) {
        Some(0) => {}
        Some(t) => return Err(format!("the task is still traced by {t}")),
        None => return Err("the task is gone".into()),
    }
    // Its descendants too: none stopped or traced (zombies stay zombies),
    // but those that were.
    for d in descendants(pid) {
        let (mut st, tr) = (task_state(d), tracer(d).unwrap_or(0));
        if let Some(h) = held.iter().find(|h| h.pid == d) {
            // A task let go in the middle of a group stop goes back into
            // it by itself, after a moment on the CPU.
            let end = Instant::now() + Duration::from_secs(2);
            while h.state == 'T' && matches!(st, 'R' | 'S' | 'D') && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(2));
                st = task_state(d);
            }
            let same = if matches!(h.state, 'T' | 't') { st == h.state } else { matches!(st, 'R' | 'S' | 'D') };
            if !same || tr != h.tracer {
                return Err(format!(
                    "its descendant {d} was in state {:?} traced by {}, and is now in state {st:?} traced by {tr}",
                    h.state, h.tracer
                ));
            }
            continue;
        }
        match st {
            'R' | 'S' | 'D' | 'Z' => {}
            c => return Err(format!("its descendant {d} is in state {c:?}, not running or sleeping")),
        }
        if tr != 0 {
            return Err(format!("its descendant {d} is still traced by {tr}"));
        }
    }
    Ok(())
}
