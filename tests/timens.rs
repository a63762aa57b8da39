//! The time namespace, as CRIU 4.2 handles it: a restore puts the tree in
//! a new time namespace whose CLOCK_MONOTONIC/BOOTTIME go on from the dump
//! (the time the tree spent dumped does not show), the vDSO agreeing with
//! the raw syscall; a tree in such a namespace dumps and restores again,
//! with ours and with the real CRIU 4.2 in either role; a tree whose tasks
//! are in different time namespaces is refused by task and runs on.
//!
//! Skipped, with the reason printed, without time namespaces in the kernel
//! (and the CRIU 4.2 legs without its binary beside the checkout).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// How long each test keeps a tree dumped: a restored clock that jumped
/// would show at least this much.
const DOWNTIME: Duration = Duration::from_millis(1500);

fn no_timens() -> bool {
    if Path::new("/proc/self/ns/time").exists() {
        return false;
    }
    println!("skipped: the kernel has no time namespaces (/proc/self/ns/time)");
    true
}

/// The real CRIU 4.2, or None with the reason printed.
fn criu42_or_skip() -> Option<PathBuf> {
    let p = criu42();
    if p.is_none() {
        println!("skipped: no CRIU 4.2 binary at ../shared/tools/criu-4.2/criu");
    }
    p
}

/// A python program that, on SIGUSR1, writes its clocks to `out`:
/// CLOCK_MONOTONIC through the vDSO, then through the raw syscall, then
/// CLOCK_BOOTTIME through the vDSO (nanoseconds).
fn clock_program(py: &str, tmp: &Path) -> (Target, PathBuf) {
    let ready = tmp.join("ready");
    let out = tmp.join("out");
    let script = format!(
        r#"import ctypes,os,signal,time
libc=ctypes.CDLL(None, use_errno=True)
class ts(ctypes.Structure): _fields_=[('s',ctypes.c_long),('n',ctypes.c_long)]
def raw(clk):
    t=ts()
    assert libc.syscall(228, clk, ctypes.byref(t))==0
    return t.s*1000000000+t.n
def h(*a):
    v=time.monotonic_ns(); s=raw(1); b=time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    open('{out}.tmp','w').write('%d %d %d' % (v, s, b))
    os.rename('{out}.tmp','{out}')
signal.signal(signal.SIGUSR1,h)
open('{ready}','w').close()
while True: time.sleep(0.05)
"#,
        out = out.display(),
        ready = ready.display()
    );
    (Target::spawn(py, &["-c", &script], Some(&ready)), out)
}

/// The task's clocks, read between `ours` and `ours + took` of our clock.
/// (A signal that comes as a restored task is about to re-enter the sleep
/// it was dumped in waits for that sleep to end: the short sleeps keep
/// such an answer from being late by much.)
struct Reading {
    ours: Instant,
    took: Duration,
    mono: i128,
    boot: i128,
}

fn read_clocks(pid: i32, out: &Path, when: &str) -> Reading {
    let _ = std::fs::remove_file(out);
    let ours = Instant::now();
    let text = ask(pid, out);
    let took = ours.elapsed();
    let v: Vec<i128> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let [vdso, sys, boot] = v[..] else { panic!("{when}: task {pid} reported {text:?}") };
    // The raw syscall came second: never behind the vDSO, and close.
    assert!(
        sys >= vdso && sys - vdso < 200_000_000,
        "{when}: CLOCK_MONOTONIC through the vDSO ({vdso}) and the syscall ({sys}) disagree"
    );
    Reading { ours, took, mono: vdso, boot }
}

/// What a reading's signal round trip may add to the comparison.
const SLACK: Duration = Duration::from_millis(100);

/// `later` follows `earlier` with `gap` of the tree's life spent dumped:
/// the tree's clocks advanced by our clock's advance less at least `gap`
/// (and did not go back).
fn continuous(earlier: &Reading, later: &Reading, gap: Duration, when: &str) {
    let gap = gap - SLACK;
    let ours = (later.ours + later.took).duration_since(earlier.ours).as_nanos() as i128;
    for (name, a, b) in [("CLOCK_MONOTONIC", earlier.mono, later.mono), ("CLOCK_BOOTTIME", earlier.boot, later.boot)] {
        let theirs = b - a;
        assert!(theirs >= 0, "{when}: {name} went back by {} ns", -theirs);
        assert!(
            theirs <= ours - gap.as_nanos() as i128,
            "{when}: {name} advanced {theirs} ns while {ours} ns passed, {} ns of them dumped: \
             the clock jumped over the time the tree was dumped (the task answered in {:?}, then {:?})",
            gap.as_nanos(),
            earlier.took,
            later.took
        );
    }
}

fn ns_time(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/time")).unwrap().to_string_lossy().into_owned()
}

/// Dump `pid` with `bin` into `tmp/name` (the task is killed); the images dir.
fn dump_with(bin: &Path, pid: i32, tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new(bin)
        .args(["dump", "-t", &pid.to_string(), "-D", dir.to_str().unwrap(), "-o", "dump.log", "-v4"])
        .env_remove("CRIU_FAULT")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.join("dump.log")).unwrap_or_default();
    assert!(o.status.success(), "{} dump of {pid}: {}\n{log}", bin.display(), text(&o.stderr));
    // Its pid must be free: it was our child or reparented to us.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    dir
}

/// Restore `dir` with `bin` (detached) after the tree spent DOWNTIME dumped.
fn restore_with(bin: &Path, dir: &Path, pid: i32) {
    std::thread::sleep(DOWNTIME);
    let o = Command::new(bin)
        .args(["restore", "-d", "-D", dir.to_str().unwrap(), "-o", "restore.log", "-v4"])
        .env_remove("CRIU_FAULT")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.join("restore.log")).unwrap_or_default();
    assert!(o.status.success(), "{} restore of {pid}: {}\n{log}", bin.display(), text(&o.stderr));
    assert!(log.contains("timens: monotonic"), "{} restore of {pid} set no time namespace offsets:\n{log}", bin.display());
    assert_ne!(ns_time(&pid.to_string()), ns_time("self"), "task {pid} was restored into our time namespace");
    let n = ns_time(&pid.to_string());
    let children = std::fs::read_link(format!("/proc/{pid}/ns/time_for_children")).unwrap();
    assert_eq!(children.to_string_lossy(), n, "task {pid}'s children's time namespace");
}

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_criu"))
}

fn crit_entry(path: &Path) -> serde_json::Value {
    crit(path)["entries"][0].clone()
}

#[test]
fn restore_continues_the_clocks_in_a_new_time_namespace() {
    let Some(py) = python() else { return };
    if no_timens() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (t, out) = clock_program(py, tmp.path());
    let pid = t.pid();
    let r0 = read_clocks(pid, &out, "before the dump");
    let d1 = dump_with(&ours(), pid, tmp.path(), "d1");
    // A tree of criu's time namespace: timens-0.img with criu's clocks.
    assert!(d1.join("timens-0.img").exists());
    assert_eq!(crit_entry(&d1.join(format!("ids-{pid}.img")))["time_ns_id"], 5);
    restore_with(&ours(), &d1, pid);
    let r1 = read_clocks(pid, &out, "after our restore");
    continuous(&r0, &r1, DOWNTIME, "our restore");

    // Now in a namespace of its own: it is taken in the image.
    let d2 = dump_with(&ours(), pid, tmp.path(), "d2");
    assert!(!d2.join("timens-0.img").exists());
    assert_eq!(crit_entry(&d2.join(format!("ids-{pid}.img")))["time_ns_id"], 9);
    let te = crit_entry(&d2.join("timens-9.img"));
    let saved = te["monotonic"]["tv_sec"].as_i64().unwrap() as i128 * 1_000_000_000 + te["monotonic"]["tv_nsec"].as_i64().unwrap() as i128;
    // The tree's own clock, not ours: a little past its last reading.
    assert!(saved >= r1.mono && saved - r1.mono < 5_000_000_000, "timens-9.img monotonic {saved}, the task read {}", r1.mono);
    restore_with(&ours(), &d2, pid);
    let r2 = read_clocks(pid, &out, "after our second restore");
    continuous(&r1, &r2, DOWNTIME, "our second restore");
    kill_and_reap(pid);
    drop(t);
}

#[test]
fn criu42_restored_tree_dumps_and_restores_with_ours_and_criu42() {
    let Some(py) = python() else { return };
    if no_timens() {
        return;
    }
    let Some(c42) = criu42_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (t, out) = clock_program(py, tmp.path());
    let pid = t.pid();
    let r0 = read_clocks(pid, &out, "before the dump");
    let d1 = dump_with(&c42, pid, tmp.path(), "d1");
    restore_with(&c42, &d1, pid);
    let r1 = read_clocks(pid, &out, "after CRIU 4.2's restore");
    continuous(&r0, &r1, DOWNTIME, "CRIU 4.2's restore");

    // Ours dumps what CRIU 4.2 restored (it used to refuse it) ...
    let d2 = dump_with(&ours(), pid, tmp.path(), "d2");
    let copy = tmp.path().join("d2-copy");
    copy_dir(&d2, &copy);
    // ... ours restores it ...
    restore_with(&ours(), &d2, pid);
    let r2 = read_clocks(pid, &out, "after our restore of our dump");
    continuous(&r1, &r2, DOWNTIME, "our restore of our dump");
    // ... and so does CRIU 4.2, from the same images: the clocks go on
    // from that dump again (after r1), the tree dumped through both waits.
    kill_and_reap(pid);
    let auxv = crit_entry(&copy.join(format!("mm-{pid}.img")))["mm_saved_auxv"].as_array().map_or(0, Vec::len);
    assert!(
        auxv <= 44,
        "our mm-{pid}.img holds {auxv} auxv words: CRIU 4.2 restores at most 44 ('Image corrupted'); \
         the dump must cut /proc/PID/auxv there as CRIU does"
    );
    restore_with(&c42, &copy, pid);
    let r3 = read_clocks(pid, &out, "after CRIU 4.2's restore of our dump");
    continuous(&r1, &r3, 2 * DOWNTIME, "CRIU 4.2's restore of our dump");
    kill_and_reap(pid);
    drop(t);
}

#[test]
fn our_restored_tree_dumps_and_restores_with_criu42() {
    let Some(py) = python() else { return };
    if no_timens() {
        return;
    }
    let Some(c42) = criu42_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (t, out) = clock_program(py, tmp.path());
    let pid = t.pid();
    let r0 = read_clocks(pid, &out, "before the dump");
    let d1 = dump_with(&ours(), pid, tmp.path(), "d1");
    restore_with(&ours(), &d1, pid);
    let r1 = read_clocks(pid, &out, "after our restore");
    continuous(&r0, &r1, DOWNTIME, "our restore");
    let d2 = dump_with(&c42, pid, tmp.path(), "d2");
    assert!(d2.join("timens-9.img").exists(), "CRIU 4.2 took the namespace we made in its image");
    restore_with(&c42, &d2, pid);
    let r2 = read_clocks(pid, &out, "after CRIU 4.2's restore");
    continuous(&r1, &r2, DOWNTIME, "CRIU 4.2's restore of a tree we restored");
    kill_and_reap(pid);
    drop(t);
}

/// The pids of `pid`'s descendants, in no particular order.
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let c = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        for c in c.split_whitespace().filter_map(|c| c.parse().ok()) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// A python tree: the root forks a child which unshares a time namespace
/// and forks a grandchild into it; with `back`, the child returns to its
/// own namespace for its future children (so only the grandchild is
/// elsewhere). Returns the root.
fn nested_tree(py: &str, tmp: &Path, back: bool) -> Target {
    let ready = tmp.join("ready");
    let script = format!(
        r#"import ctypes,os,time
libc=ctypes.CDLL(None, use_errno=True)
if os.fork()==0:
    own=os.open('/proc/self/ns/time', os.O_RDONLY)
    assert libc.unshare(0x80)==0, ctypes.get_errno()
    if os.fork()==0:
        while True: time.sleep(1)
    if {back}:
        assert libc.setns(own, 0x80)==0, ctypes.get_errno()
    open('{ready}','w').close()
    while True: time.sleep(1)
while True: time.sleep(1)
"#,
        back = if back { "True" } else { "False" },
        ready = ready.display()
    );
    Target::spawn(py, &["-c", &script], Some(&ready))
}

#[test]
fn a_thread_with_a_time_namespace_for_its_children_is_refused() {
    let Some(py) = python() else { return };
    if no_timens() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let script = format!(
        r#"import ctypes,threading,time
libc=ctypes.CDLL(None, use_errno=True)
def f():
    assert libc.unshare(0x80)==0, ctypes.get_errno()
    open('{ready}','w').write(str(libc.syscall(186)))
    while True: time.sleep(1)
threading.Thread(target=f, daemon=True).start()
while True: time.sleep(1)
"#,
        ready = ready.display()
    );
    let t = Target::spawn(py, &["-c", &script], Some(&ready));
    let pid = t.pid();
    wait_nonempty(&ready);
    let tid = std::fs::read_to_string(&ready).unwrap();
    let err = dump_refused(pid, &tmp.path().join("imgs"), &[]);
    let culprit = format!("thread {tid} of task {pid} made a time namespace for its children");
    assert!(err.contains(&culprit), "want {culprit:?} in: {err}");
    assert_eq!(state_tracer(pid), Some(('S', 0)), "task {pid} runs on, untraced: {err}");
    drop(t);
}

#[test]
fn tasks_in_different_time_namespaces_are_refused_and_run_on() {
    let Some(py) = python() else { return };
    if no_timens() {
        return;
    }
    for back in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let t = nested_tree(py, tmp.path(), back);
        let root = t.pid();
        let tree = descendants(root);
        assert_eq!(tree.len(), 2, "the tree of {root}: {tree:?}");
        let (child, grandchild) = (tree[0], tree[1]);
        assert_ne!(ns_time(&grandchild.to_string()), ns_time(&root.to_string()));
        let err = dump_refused(root, &tmp.path().join("imgs"), &[]);
        let culprit = if back {
            format!("task {grandchild} is in time namespace")
        } else {
            format!("task {child} made a time namespace for its children")
        };
        assert!(err.contains(&culprit), "want {culprit:?} in: {err}");
        assert!(err.contains("nested time namespaces can't be dumped"), "{err}");
        for p in [root, child, grandchild] {
            assert_eq!(state_tracer(p), Some(('S', 0)), "task {p} runs on, untraced, after the refused dump: {err}");
        }
        for p in [grandchild, child] {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
        }
        drop(t);
        // Orphans now, reparented to us (a subreaper).
        for p in [child, grandchild] {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(p), None);
        }
    }
}
