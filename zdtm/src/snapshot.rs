//! What /proc shows of a task, key by key, and how two such snapshots
//! differ: the runner takes one before the dump and one after the restore.
//!
//! The net is wide on purpose: every line of /proc/PID/status and of each
//! thread's status, the scheduling attributes of each thread, the
//! stopped/running state, a dozen small /proc files, the mappings and each
//! VMA's VmFlags (snap_maps), every fd's fdinfo and what fcntl/getsockopt
//! say of it (snap_fds), and the COW sharing of anonymous pages between the
//! tasks of the tree (snap_pagemap). What a restore legitimately changes is
//! listed, each with its reason, next to the code that leaves it out
//! (STATUS_EXCEPTIONS here, VOLATILE_VMFLAGS, VOLATILE_FDINFO); anything
//! else that differs is a lost (or made-up) piece of state.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;

use super::snap_fds::fds_state;
use super::snap_maps::maps_state;
use super::snap_pagemap::sharing_state;

/// What /proc shows of a task, key by key.
pub type Snapshot = BTreeMap<String, String>;

/// /proc/PID/status lines a restore legitimately changes; every other line
/// is compared (lines a newer kernel adds included).
pub const STATUS_EXCEPTIONS: &[(&str, &str)] = &[
    ("State", "compared as `state` (stopped/traced/running): R, S or D depends on the moment"),
    ("FDSize", "the size of the fd table, which the restorer's service fds grow; the fds themselves are compared"),
    ("VmPeak", "the address space's peak, raised by the restorer's own mappings"),
    ("VmHWM", "peak residency: which pages are in RAM, not what they hold"),
    ("VmRSS", "residency: which pages are in RAM, not what they hold"),
    ("RssAnon", "residency: which pages are in RAM, not what they hold"),
    ("RssFile", "residency: which pages are in RAM, not what they hold"),
    ("RssShmem", "residency: which pages are in RAM, not what they hold"),
    ("HugetlbPages", "hugetlb residency: the huge pages this task has faulted in, not what they hold"),
    ("VmPTE", "page-table size follows residency"),
    ("VmSwap", "what the kernel chose to swap out"),
    ("voluntary_ctxt_switches", "a scheduler counter"),
    ("nonvoluntary_ctxt_switches", "a scheduler counter"),
    ("Ngid", "the NUMA-balancing group: the kernel's choice"),
    ("SigQ", "the queued count is per user (other tests share it): only its limit is compared, as `status SigQ limit`"),
];

/// /proc/PID/stat fields (1-based, as proc(5)) that a restore keeps (the
/// others are counters, times, addresses of the moment, or duplicates of
/// status lines).
const STAT_FIELDS: &[(usize, &str)] = &[
    (4, "ppid"),
    (5, "pgrp"),
    (6, "session"),
    (7, "tty_nr"),
    (18, "priority"),
    (19, "nice"),
    (20, "num_threads"),
    (26, "startcode"),
    (27, "endcode"),
    (28, "startstack"),
    (38, "exit_signal"),
    (40, "rt_priority"),
    (41, "policy"),
    (45, "start_data"),
    (46, "end_data"),
    (47, "start_brk"),
    (48, "arg_start"),
    (49, "arg_end"),
    (50, "env_start"),
    (51, "env_end"),
];

/// Per-thread stat fields: the scheduling ones.
const THREAD_STAT_FIELDS: &[(usize, &str)] = &[(18, "priority"), (19, "nice"), (40, "rt_priority"), (41, "policy")];

/// Small /proc/PID files compared whole.
const FILES: &[&str] = &[
    "comm",
    "limits",
    "personality",
    "oom_score_adj",
    "loginuid",
    "sessionid",
    "cgroup",
    "cpuset",
    "timers",
    "timerslack_ns",
    "coredump_filter",
    "setgroups",
    "uid_map",
    "gid_map",
];

/// /proc/PID/ksm_stat lines that are settings (the rest count merges).
const KSM_SETTINGS: &[&str] = &["ksm_merge_any", "ksm_mergeable"];

pub fn rd(path: &str) -> Result<String, String> {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("{path}: {e}"))
}

pub fn link(path: &str) -> Result<String, String> {
    fs::read_link(path)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("{path}: {e}"))
}

/// The fields of a /proc stat line after the command (field 3 first).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default()
}

/// The thread ids of `pid` but the leader's, from /proc/PID/task.
pub fn thread_ids(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|t| *t != pid).collect())
        .unwrap_or_default()
}

/// The task's state letter from /proc/PID/stat ('?' if it is gone).
pub fn task_state(pid: i32) -> char {
    rd(&format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_fields(&s).first().and_then(|f| f.chars().next()))
        .unwrap_or('?')
}

/// A state letter as a restore must keep it: stopped stays stopped,
/// running or sleeping are one.
fn state_word(c: char) -> &'static str {
    match c {
        'T' => "stopped",
        't' => "traced",
        'Z' => "zombie",
        'X' => "dead",
        '?' => "gone",
        _ => "running",
    }
}

/// Every status line but STATUS_EXCEPTIONS, under `{prefix}status NAME`.
fn status_state(path: &str, prefix: &str, s: &mut Snapshot) -> Result<(), String> {
    let status = rd(path)?;
    for line in status.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        if k == "SigQ" {
            let limit = v.split('/').nth(1).unwrap_or("").to_string();
            s.insert(format!("{prefix}status SigQ limit"), limit);
        } else if !STATUS_EXCEPTIONS.iter().any(|(e, _)| *e == k) {
            s.insert(format!("{prefix}status {k}"), v.to_string());
        }
    }
    Ok(())
}

/// sched_getattr(2) of a thread: policy (with its flags), nice, RT
/// priority, deadline parameters and utilization clamps.
fn sched_attr(tid: i32) -> String {
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
        util_min: u32,
        util_max: u32,
    }
    let mut a = SchedAttr::default();
    let size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: the kernel writes at most `size` bytes into `a`.
    let r = unsafe { libc::syscall(libc::SYS_sched_getattr, tid, &mut a as *mut SchedAttr, size, 0) };
    if r < 0 {
        return format!("sched_getattr: {}", std::io::Error::last_os_error());
    }
    format!(
        "policy {} flags {:#x} nice {} priority {} runtime {} deadline {} period {} util {}-{}",
        a.policy, a.flags, a.nice, a.priority, a.runtime, a.deadline, a.period, a.util_min, a.util_max
    )
}

/// Each thread but the leader (whose state the process keys hold): its
/// status lines, scheduling, state and name, under `thread TID ...`.
fn threads_state(pid: i32, tids: &[String], s: &mut Snapshot) {
    for t in tids {
        let Ok(tid) = t.parse::<i32>() else { continue };
        let base = format!("/proc/{pid}/task/{tid}");
        let pre = format!("thread {tid} ");
        s.insert(format!("{pre}sched"), sched_attr(tid));
        if tid == pid {
            continue;
        }
        if let Err(e) = status_state(&format!("{base}/status"), &pre, s) {
            s.insert(format!("{pre}status"), e);
        }
        let stat = rd(&format!("{base}/stat")).unwrap_or_default();
        let f = stat_fields(&stat);
        s.insert(format!("{pre}state"), state_word(f.first().and_then(|x| x.chars().next()).unwrap_or('?')).into());
        for (n, name) in THREAD_STAT_FIELDS {
            s.insert(format!("{pre}stat {name}"), f.get(n - 3).unwrap_or(&"?").to_string());
        }
        s.insert(format!("{pre}comm"), rd(&format!("{base}/comm")).unwrap_or_else(|e| e));
    }
}

/// Take a snapshot of what /proc shows of `pid`.
pub fn snapshot(pid: i32) -> Result<Snapshot, String> {
    let p = format!("/proc/{pid}");
    let mut s = Snapshot::new();
    maps_state(pid, &mut s)?;
    fds_state(pid, &mut s)?;

    for l in ["cwd", "root", "exe"] {
        s.insert(l.into(), link(&format!("{p}/{l}")).unwrap_or_else(|e| e));
    }
    for f in FILES {
        s.insert((*f).into(), rd(&format!("{p}/{f}")).unwrap_or_else(|e| e));
    }
    // The autogroup's nice (its id is new with each setsid).
    let ag = rd(&format!("{p}/autogroup")).unwrap_or_default();
    s.insert("autogroup nice".into(), ag.split_once(" nice ").map(|(_, n)| n.trim().to_string()).unwrap_or_default());
    for l in rd(&format!("{p}/ksm_stat")).unwrap_or_default().lines() {
        if let Some((k, v)) = l.split_once(' ').filter(|(k, _)| KSM_SETTINGS.contains(k)) {
            s.insert(format!("ksm_stat {k}"), v.trim().into());
        }
    }
    // Who owns /proc/PID: the task's euid/egid, or root when it is not
    // dumpable (PR_SET_DUMPABLE).
    s.insert(
        "proc owner (dumpable)".into(),
        fs::metadata(&p).map(|m| format!("{}:{}", m.uid(), m.gid())).unwrap_or_else(|e| e.to_string()),
    );
    for f in ["cmdline", "environ"] {
        let b = fs::read(format!("{p}/{f}")).unwrap_or_default();
        s.insert(f.into(), format!("{:?}", String::from_utf8_lossy(&b)));
    }
    let auxv = fs::read(format!("{p}/auxv")).unwrap_or_default();
    s.insert(
        "auxv".into(),
        auxv.chunks(16)
            .map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>())
            .collect::<Vec<_>>()
            .join(" "),
    );
    if let Ok(dir) = fs::read_dir(format!("{p}/ns")) {
        // The time namespace too: a restore makes a new one (see timens.rs).
        let mut ns: Vec<String> = dir
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .collect();
        ns.sort();
        for n in ns {
            let l = link(&format!("{p}/ns/{n}")).unwrap_or_else(|e| e);
            // A tree with a network, uts or ipc namespace of its own comes
            // back in a new one: what counts is that it is still not the runner's.
            let carried = matches!(n.as_str(), "net" | "uts" | "ipc");
            let l = if carried && l != link(&format!("/proc/self/ns/{n}")).unwrap_or_default() { "own (not criu's)".to_string() } else { l };
            s.insert(format!("ns {n}"), l);
        }
    }
    let mut tids: Vec<String> = fs::read_dir(format!("{p}/task"))
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    tids.sort();
    s.insert("threads".into(), tids.join(" "));
    threads_state(pid, &tids, &mut s);
    let mut children: Vec<String> = rd(&format!("{p}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    children.sort();
    s.insert("children".into(), children.join(" "));

    status_state(&format!("{p}/status"), "", &mut s)?;
    let stat = rd(&format!("{p}/stat"))?;
    let f = stat_fields(&stat);
    s.insert("state".into(), state_word(f.first().and_then(|x| x.chars().next()).unwrap_or('?')).into());
    for (n, name) in STAT_FIELDS {
        s.insert(format!("stat {name}"), f.get(n - 3).unwrap_or(&"?").to_string());
    }
    Ok(s)
}

/// Every descendant of `pid` (children of each thread, recursively),
/// parents before their children.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out: Vec<i32> = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let mut tids: Vec<String> = fs::read_dir(format!("/proc/{p}/task"))
            .map(|d| d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
            .unwrap_or_default();
        tids.sort();
        for t in tids {
            for c in rd(&format!("/proc/{p}/task/{t}/children")).unwrap_or_default().split_whitespace() {
                let Ok(c) = c.parse::<i32>() else { continue };
                if c != pid && !out.contains(&c) {
                    out.push(c);
                    todo.push(c);
                }
            }
        }
    }
    out
}

/// What a zombie keeps that a restore must give back (CRIU's image of one
/// holds no more): its name, parentage, group, session and exit status.
fn zombie_snapshot(pid: i32) -> Snapshot {
    let mut s = Snapshot::new();
    s.insert("zombie".into(), "yes".into());
    s.insert("comm".into(), rd(&format!("/proc/{pid}/comm")).unwrap_or_else(|e| e));
    let stat = rd(&format!("/proc/{pid}/stat")).unwrap_or_default();
    let f = stat_fields(&stat);
    for (n, name) in [(4, "ppid"), (5, "pgrp"), (6, "session"), (52, "exit_code")] {
        s.insert(format!("stat {name}"), f.get(n - 3).unwrap_or(&"?").to_string());
    }
    s
}

/// A snapshot of `pid` and of each of its descendants (their keys prefixed
/// with `[task PID]`), and the COW sharing between them: a test's whole
/// process tree.
pub fn snapshot_tree(pid: i32) -> Result<Snapshot, String> {
    let mut s = snapshot(pid)?;
    let mut live = vec![pid];
    for d in descendants(pid) {
        if task_state(d) == 'Z' {
            s.extend(zombie_snapshot(d).into_iter().map(|(k, v)| (format!("[task {d}] {k}"), v)));
            continue;
        }
        match snapshot(d) {
            Ok(sd) => {
                live.push(d);
                s.extend(sd.into_iter().map(|(k, v)| (format!("[task {d}] {k}"), v)));
            }
            Err(e) => {
                s.insert(format!("[task {d}]"), format!("unreadable: {e}"));
            }
        }
    }
    sharing_state(&live, &mut s);
    Ok(s)
}

/// Human-readable differences between two snapshots (empty: same). Each
/// difference is one line `KEY: ...`, or `KEY changed:` followed by `  - `
/// and `  + ` lines for multi-line values.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (a, b) = (before.get(k), after.get(k));
        if a == b {
            continue;
        }
        if k.starts_with("cow ") && k.contains('~') {
            if let Some(l) = super::snap_pagemap::lost(a, b) {
                out.push(format!("{k}: sharing lost:"));
                out.extend(l.lines().map(|l| format!("  - {l}")));
            }
            continue;
        }
        match (a, b) {
            (a, b) if a.is_some_and(|a| a.contains('\n')) || b.is_some_and(|b| b.contains('\n')) => {
                let lines = |v: Option<&String>| -> BTreeSet<String> {
                    v.map(|v| v.lines().map(String::from).collect()).unwrap_or_default()
                };
                let (al, bl) = (lines(a), lines(b));
                out.push(format!("{k} changed:"));
                out.extend(al.difference(&bl).map(|l| format!("  - {l}")));
                out.extend(bl.difference(&al).map(|l| format!("  + {l}")));
            }
            (Some(a), Some(b)) if k.contains("vmflags ") => {
                // Name the flags: "lost lo", "gained hg".
                let (aw, bw): (BTreeSet<&str>, BTreeSet<&str>) =
                    (a.split_whitespace().collect(), b.split_whitespace().collect());
                let lost: Vec<&str> = aw.difference(&bw).copied().collect();
                let gained: Vec<&str> = bw.difference(&aw).copied().collect();
                let mut what = Vec::new();
                if !lost.is_empty() {
                    what.push(format!("lost {}", lost.join(" ")));
                }
                if !gained.is_empty() {
                    what.push(format!("gained {}", gained.join(" ")));
                }
                out.push(format!("{k}: {} ({a} -> {b})", what.join(", ")));
            }
            (Some(a), Some(b)) => out.push(format!("{k}: {a} -> {b}")),
            (Some(a), None) => out.push(format!("{k}: {a} -> (gone)")),
            (None, Some(b)) => out.push(format!("{k}: (none) -> {b}")),
            (None, None) => {}
        }
    }
    out
}
