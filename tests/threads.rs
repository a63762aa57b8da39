//! Multi-threaded tasks, dumped and restored as CRIU does: one core-TID.img
//! per thread (`tc` only in the leader's), every thread seized (even while
//! threads keep being created), each thread's registers, FPU state, mask,
//! sigaltstack, comm, rseq, robust list and clear_tid address recorded;
//! restored with the same tids, each thread resuming from its own frame and
//! going on working. A failed dump leaves every thread running as before;
//! a restore failing in a thread names the thread and leaves nothing.
//!
//! Targets are `tests/helpers/threads_target.rs` (compiled here with rustc)
//! and CRIU 4.2's python-threads fixture. Tests run one at a time.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{crit, criu, serial, state_tracer, text, tmpdir, FreezerGroup, Restored, Target};

use serde_json::Value;

const WORKERS: usize = 4;

/// `threads_target work DIR 4`, ready.
fn workers(dir: &Path) -> Target {
    let bin = common::helper("threads_target").to_str().unwrap().to_string();
    Target::spawn(&bin, &["work", dir.to_str().unwrap(), &WORKERS.to_string()], Some(&dir.join("ready")))
}

fn tids(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// What /proc shows of each thread: (comm, SigBlk, state letter, tracer,
/// nice, policy, groups and effective capabilities).
fn threads_state(pid: i32) -> BTreeMap<i32, (String, String, char, i32, String)> {
    tids(pid)
        .into_iter()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/comm")).ok()?.trim().to_string();
            let st = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/status")).ok()?;
            let field = |k: &str| st.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("").to_string();
            // Caught on the CPU or writing its file counts as running on.
            let state = match field("State:").chars().next()? {
                'R' | 'D' => 'S',
                c => c,
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/stat")).ok()?;
            let f: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
            // Fields 19 (nice) and 41 (policy); field N is f[N - 3].
            let sched = format!("nice {} policy {}; groups {}; caps {}", f[19 - 3], f[41 - 3], field("Groups:"), field("CapEff:"));
            Some((t, (comm, field("SigBlk:"), state, field("TracerPid:").parse().ok()?, sched)))
        })
        .collect()
}

/// Each thread's wchan and syscall line (for failure messages).
fn where_threads_are(pid: i32) -> String {
    tids(pid)
        .into_iter()
        .map(|t| {
            let rd = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/task/{t}/{f}")).unwrap_or_default();
            format!("{t}: {} {} | {}", rd("stat").split(") ").nth(1).unwrap_or("").split(' ').next().unwrap_or(""), rd("wchan"), rd("syscall").trim())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn counter(dir: &Path, i: usize) -> u64 {
    std::fs::read_to_string(dir.join(format!("count-{i}"))).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Every worker's counter moves on within 2 s, and no worker saw its
/// registers change.
fn all_counting(dir: &Path) {
    let before: Vec<u64> = (0..WORKERS).map(|i| counter(dir, i)).collect();
    let t0 = Instant::now();
    loop {
        let now: Vec<u64> = (0..WORKERS).map(|i| counter(dir, i)).collect();
        if now.iter().zip(&before).all(|(n, b)| n > b) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "counters stuck: {before:?} then {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..WORKERS {
        let err = dir.join(format!("err-{i}"));
        assert!(!err.exists(), "worker {i}: {}", std::fs::read_to_string(&err).unwrap_or_default());
    }
}

fn worker_tids(dir: &Path) -> Vec<i32> {
    (0..WORKERS).map(|i| std::fs::read_to_string(dir.join(format!("tid-{i}"))).unwrap().trim().parse().unwrap()).collect()
}

/// The thread records of a dump, by tid: thread_core (without the pending
/// queue), clear_tid address and fs_base.
fn thread_records(imgs: &Path, tids: &[i32]) -> BTreeMap<i32, Value> {
    tids.iter()
        .map(|t| {
            let e = crit(&imgs.join(format!("core-{t}.img")))["entries"][0].clone();
            let mut tc = e["thread_core"].clone();
            tc.as_object_mut().unwrap().remove("signals_p");
            let ti = &e["thread_info"];
            (*t, serde_json::json!({"tc": tc, "tid_addr": ti["clear_tid_addr"], "fs_base": ti["gpregs"]["fs_base"]}))
        })
        .collect()
}

fn dump(pid: i32, imgs: &Path, extra: &[&str]) {
    std::fs::create_dir_all(imgs).unwrap();
    let pid = pid.to_string();
    let mut args = vec!["dump", "-t", &pid, "-D", imgs.to_str().unwrap(), "-v4", "-o", "dump.log"];
    args.extend_from_slice(extra);
    let o = criu(&args);
    assert!(o.status.success(), "dump: {}\n{}", text(&o.stderr), std::fs::read_to_string(imgs.join("dump.log")).unwrap_or_default());
}

#[test]
fn dump_writes_a_core_per_thread() {
    let _g = serial();
    let tmp = tmpdir();
    let t = workers(tmp.path());
    let pid = t.pid();
    let before = threads_state(pid);
    assert_eq!(before.len(), WORKERS + 1, "{before:?}");
    let imgs = tmp.path().join("imgs");
    dump(pid, &imgs, &["-R"]);

    // Left running exactly as it was: same threads, names, masks, untraced.
    assert_eq!(threads_state(pid), before);
    all_counting(tmp.path());

    // pstree lists every thread, leader first; a core per thread, `tc`
    // only in the leader's; each thread's own mask, name, sigaltstack.
    let pstree = crit(&imgs.join("pstree.img"));
    let listed: Vec<i64> = pstree["entries"][0]["threads"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let mut want: Vec<i64> = before.keys().map(|t| i64::from(*t)).collect();
    want.sort_unstable_by_key(|t| (*t != i64::from(pid), *t));
    assert_eq!(listed, want);
    let wt = worker_tids(tmp.path());
    for (i, tid) in wt.iter().enumerate() {
        let core = crit(&imgs.join(format!("core-{tid}.img")))["entries"][0].clone();
        assert!(core.get("tc").is_none(), "thread {tid} has a task core");
        let tc = &core["thread_core"];
        let mut mask = 1u64 << (34 + 6 + i - 1) | 1 << (12 - 1);
        if i % 2 == 1 {
            mask |= 1 << (10 - 1);
        }
        assert_eq!(tc["blk_sigset"].as_u64(), Some(mask), "thread {tid}: {tc}");
        assert_eq!(tc["comm"], format!("worker-{i}"));
        let sas: u64 = std::fs::read_to_string(tmp.path().join(format!("sas-{i}"))).unwrap().trim().parse().unwrap();
        if i == 0 {
            assert_eq!(sas, 65536, "worker 0 set its own 64 KiB sigaltstack");
        }
        assert_eq!(tc["sas"]["ss_size"].as_u64(), Some(sas), "{tc}");
        assert!(tc["rseq_entry"]["rseq_abi_pointer"].as_u64().unwrap_or(0) != 0, "thread {tid} rseq: {tc}");
        assert_eq!(tc["futex_rla_len"].as_u64(), Some(24));
        assert!(core["thread_info"]["clear_tid_addr"].as_str().is_some_and(|a| a != "0x0"), "{core}");
        // xmm15 holds the thread's marker (the low 64 bits, in 32-bit words).
        let xmm = core["thread_info"]["fpregs"]["xmm_space"].as_array().unwrap();
        let lo = xmm[60].as_u64().unwrap() | xmm[61].as_u64().unwrap() << 32;
        assert_eq!(lo, 0x5eed_0000_0000_0000 | (i as u64) << 32 | *tid as u64, "thread {tid} xmm15");
    }
    let leader = crit(&imgs.join(format!("core-{pid}.img")))["entries"][0].clone();
    assert_eq!(leader["tc"]["blk_sigset"], format!("{:#x}", 1 << (12 - 1)));
    assert!(leader["thread_core"].get("blk_sigset").is_none(), "{}", leader["thread_core"]);
}

#[test]
fn threads_come_back_with_their_tids_and_state() {
    let _g = serial();
    let tmp = tmpdir();
    let mut t = workers(tmp.path());
    let pid = t.pid();
    let wt = worker_tids(tmp.path());
    // Scheduling per thread: worker 1 niced, worker 2 SCHED_BATCH.
    // SAFETY: plain syscalls on our own child's threads.
    unsafe {
        assert_eq!(libc::setpriority(libc::PRIO_PROCESS, wt[1] as libc::id_t, 7), 0);
        let p = libc::sched_param { sched_priority: 0 };
        assert_eq!(libc::sched_setscheduler(wt[2], libc::SCHED_BATCH, &p), 0);
    }
    let before = threads_state(pid);
    assert!(before[&wt[1]].4.starts_with("nice 7 ") && before[&wt[2]].4.contains("policy 3;"), "{before:?}");
    // Worker 3's own credentials.
    assert!(before[&wt[3]].4.contains("groups 4242;") && before[&wt[3]].4 != before[&wt[0]].4.replace("groups ;", "groups 4242;"), "{before:?}");
    let imgs = tmp.path().join("imgs");
    dump(pid, &imgs, &[]);
    t.reap();
    assert!(tids(pid).is_empty(), "the dumped task is still there");
    let stopped_at: Vec<u64> = (0..WORKERS).map(|i| counter(tmp.path(), i)).collect();

    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log"]);
    let _r = Restored(pid);
    let log = std::fs::read_to_string(imgs.join("restore.log")).unwrap_or_default();
    assert!(o.status.success(), "restore: {}\n{log}", text(&o.stderr));
    // Same threads (tids, names, masks), running, not traced.
    assert_eq!(threads_state(pid), before, "{log}");
    all_counting(tmp.path());
    // Each counter went on from where it stopped (thread-local storage).
    for (i, s) in stopped_at.iter().enumerate() {
        let now = counter(tmp.path(), i);
        assert!(now > *s && now < s + 200, "worker {i}: {s} at the dump, {now} now");
    }
    // The restorer's region is gone.
    let region = log.lines().find_map(|l| l.split("restorer at ").nth(1)).and_then(|r| r.split(':').next()).unwrap().to_string();
    let base = u64::from_str_radix(region.split('+').next().unwrap().trim_start_matches("0x"), 16).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(!maps.lines().any(|l| l.starts_with(&format!("{base:x}-"))), "restorer region {region} left:\n{maps}");

    // What only the threads know (rseq, robust list, sigaltstack, clear_tid
    // address, TLS base, creds, sched) reads back the same in a new dump.
    let again = tmp.path().join("again");
    dump(pid, &again, &["-R"]);
    let all: Vec<i32> = std::iter::once(pid).chain(wt).collect();
    assert_eq!(thread_records(&again, &all), thread_records(&imgs, &all));
    all_counting(tmp.path());
}

#[test]
fn failed_dumps_leave_every_thread_running() {
    let _g = serial();
    let tmp = tmpdir();
    let t = workers(tmp.path());
    let pid = t.pid();
    let before = threads_state(pid);
    for stage in 1..=7 {
        let imgs = tmp.path().join(format!("imgs-{stage}"));
        std::fs::create_dir_all(&imgs).unwrap();
        let o = common::criu_cmd()
            .args(["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap()])
            .env("CRIU_FAULT", stage.to_string())
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert!(!o.status.success() && err.contains("fault injected"), "stage {stage}: {err}");
        // Stages 1 and 2 fail before the task is touched.
        assert!(err.contains("the task was left running") || stage <= 2, "stage {stage}: {err}");
        assert_eq!(threads_state(pid), before, "after a failure at stage {stage}");
        all_counting(tmp.path());
    }
}

#[test]
fn a_stopped_task_stays_stopped() {
    let _g = serial();
    let tmp = tmpdir();
    let t = workers(tmp.path());
    let pid = t.pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP).unwrap();
    let t0 = Instant::now();
    while threads_state(pid).values().any(|s| s.2 != 'T') {
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", threads_state(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = threads_state(pid);
    dump(pid, &tmp.path().join("imgs"), &["-R"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(threads_state(pid), before);
    let core = crit(&tmp.path().join(format!("imgs/core-{pid}.img")))["entries"][0].clone();
    assert_eq!(core["tc"]["stop_signo"].as_u64(), Some(19), "{}", core["tc"]);
    // CRIU's TASK_STOPPED is 3, which crit's pretty names call "Zombie".
    assert_eq!(core["tc"]["task_state"], "Zombie", "TASK_STOPPED (3): {}", core["tc"]);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGCONT).unwrap();
    all_counting(tmp.path());
}

#[test]
fn no_thread_escapes_a_thread_bomb() {
    let _g = serial();
    let tmp = tmpdir();
    let bin = common::helper("threads_target").to_str().unwrap().to_string();
    let mut t = Target::spawn(&bin, &["bomb", tmp.path().to_str().unwrap()], Some(&tmp.path().join("ready")));
    let pid = t.pid();
    let spawned = || std::fs::read_to_string(tmp.path().join("spawned")).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
    for round in 0..5 {
        let imgs = tmp.path().join(format!("imgs-{round}"));
        dump(pid, &imgs, &["-R"]);
        // Every thread listed has its core; none is left traced or stopped.
        let pstree = crit(&imgs.join("pstree.img"));
        let listed = pstree["entries"][0]["threads"].as_array().unwrap().clone();
        assert!(listed.len() >= 2, "{listed:?}");
        for tid in &listed {
            assert!(imgs.join(format!("core-{tid}.img")).exists(), "no core for thread {tid}");
        }
        for (tid, s) in threads_state(pid) {
            assert!(s.2 != 'T' && s.3 == 0, "thread {tid} left {s:?}");
        }
    }
    let a = spawned();
    let t0 = Instant::now();
    while spawned() <= a {
        assert!(t0.elapsed() < Duration::from_secs(3), "the bomb stopped spawning: {a}\n{}", where_threads_are(pid));
        std::thread::sleep(Duration::from_millis(20));
    }

    // And a dump of it restores: it goes on spawning.
    let imgs = tmp.path().join("imgs-final");
    dump(pid, &imgs, &[]);
    t.reap();
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log"]);
    let _r = Restored(pid);
    assert!(o.status.success(), "restore: {}\n{}", text(&o.stderr), std::fs::read_to_string(imgs.join("restore.log")).unwrap_or_default());
    let a = spawned();
    let t0 = Instant::now();
    while spawned() <= a {
        assert!(t0.elapsed() < Duration::from_secs(3), "the restored bomb does not spawn ({a})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn restore_failing_in_a_thread_names_it_and_leaves_nothing() {
    let _g = serial();
    let tmp = tmpdir();
    let mut t = workers(tmp.path());
    let pid = t.pid();
    let wt = worker_tids(tmp.path());
    let before = threads_state(pid);
    let imgs = tmp.path().join("imgs");
    dump(pid, &imgs, &[]);
    t.reap();
    // Fail at set_tid_address (step 15) in the third thread record.
    let step = 15u64;
    for (n, what) in [(3u64, format!("in thread {}", wt[2])), (0, "set_tid_address".to_string())] {
        let o = common::criu_cmd()
            .args(["restore", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log"])
            .env("CRIU_RESTORER_FAULT", ((n << 48) | step).to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("set_tid_address") && err.contains(&what), "{err}");
        if n == 0 {
            assert!(!err.contains("in thread"), "{err}");
        }
        let t0 = Instant::now();
        while !tids(pid).is_empty() {
            assert!(t0.elapsed() < Duration::from_secs(5), "task {pid} left: {:?}", threads_state(pid));
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(-1), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // The images are fine; and without a cleaner (no ptrace: the region
    // stays mapped) each thread still comes back with its own mask, from
    // its own frame.
    let o = common::criu_cmd()
        .args(["restore", "-d", "-D", imgs.to_str().unwrap()])
        .env("CRIU_RESTORER_FAULT", "41")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _r = Restored(pid);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Without the cleaner nothing holds the threads until their masks are
    // back: criu may return while a thread is still in its sigreturn.
    let t0 = Instant::now();
    while threads_state(pid) != before && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(threads_state(pid), before);
    all_counting(tmp.path());
}

const PY_PID: i32 = 30201;

/// CRIU 4.2's python-threads fixture: 4 threads, a pipe, a unix
/// socketpair with queued data and an eventfd.
#[test]
fn python_threads_fixture_restores() {
    let _g = serial();
    common::subreaper();
    let Some(tmp) = common::fixture_copy("python-threads") else { return };
    for t in PY_PID..PY_PID + 4 {
        assert!(!Path::new(&format!("/proc/{t}")).exists(), "fixture tid {t} is taken");
    }
    let files: Vec<PathBuf> = (0..3).map(|n| PathBuf::from(format!("/tmp/criu-fixture-py-{n}"))).collect();
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    let o = criu(&["restore", "-d", "-D", tmp.path().to_str().unwrap(), "-v4", "-o", "restore.log"]);
    let _r = Restored(PY_PID);
    let err = text(&o.stderr);
    if !o.status.success() {
        // Not a thread problem: the error names the file it can't restore.
        assert!(!err.contains("thread"), "{err}");
        assert!(err.contains("socket") || err.contains("eventfd"), "{err}");
        return;
    }
    assert_eq!(tids(PY_PID), (PY_PID..PY_PID + 4).collect::<Vec<_>>());
    // Each thread keeps rewriting its file with the current time.
    for f in &files {
        common::wait_nonempty(f);
    }
    // A thread rewrites its file by truncating it first (a read can see it empty).
    let stamp = |f: &Path| common::read_number::<f64>(f);
    let first: Vec<f64> = files.iter().map(|f| stamp(f)).collect();
    std::thread::sleep(Duration::from_millis(600));
    for (f, a) in files.iter().zip(&first) {
        let b = stamp(f);
        assert!(b > *a, "{} not rewritten: {a} then {b}", f.display());
    }
    for (tid, s) in threads_state(PY_PID) {
        assert!(s.2 == 'S' && s.3 == 0, "thread {tid}: {s:?}");
    }
    assert_eq!(state_tracer(PY_PID).map(|s| s.1), Some(0));
}

/// --freeze-cgroup: every thread is seized while the group is frozen (no
/// thread can escape or appear), then thawed; a group frozen behind our
/// back times out (--timeout) and every thread survives.
#[test]
fn freezer_seizes_every_thread() {
    let _g = serial();
    assert!(Path::new("/sys/fs/cgroup/freezer").is_dir(), "this machine kind has a cgroup v1 freezer");
    let tmp = tmpdir();
    let t = workers(tmp.path());
    let pid = t.pid();
    let fz = FreezerGroup::new(pid, "threads");
    let before = threads_state(pid);
    let imgs = tmp.path().join("imgs");
    dump(pid, &imgs, &["-R", "--freeze-cgroup", fz.dir.to_str().unwrap(), "--manage-cgroups=ignore"]);
    assert_eq!(std::fs::read_to_string(fz.dir.join("freezer.state")).unwrap().trim(), "THAWED");
    assert_eq!(threads_state(pid), before);
    let listed = crit(&imgs.join("pstree.img"))["entries"][0]["threads"].as_array().unwrap().len();
    assert_eq!(listed, WORKERS + 1);
    all_counting(tmp.path());

    fz.set("FROZEN");
    let t0 = Instant::now();
    let o = criu(&["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap(), "--timeout", "1"]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains("within 1 s (--timeout)"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    fz.set("THAWED");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(threads_state(pid), before, "after a timed-out dump");
    all_counting(tmp.path());
}
