//! `criu restore` end to end: CRIU 4.2's fixture images (sleep, the python
//! timer) come back alive with their memory layout, vDSO and behaviour;
//! our own dump of a live program restores and carries on (detached, or
//! with criu waiting for its exit status); a taken pid, corrupted pages and
//! failures injected at restorer steps end in an error naming the problem
//! with nothing left running; no restorer or premap mapping survives in a
//! restored task.
//!
//! Tests that use fixed pids run one at a time (SERIAL). The test process
//! is a child subreaper: restored tasks and the restorer's cleaner end up
//! as its children and are reaped here.

mod common;
use common::{alive, criu_cmd, kill_until_gone, log, maps, mm_image, reap_all, state};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criu::images::pb::MmEntry;
use criu::images::ImageDir;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const SLEEP_PID: i32 = 30001;
const TIMER_PID: i32 = 30151;
const TIMER_FILE: &str = "/tmp/criu-fixture-py-timer";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = common::serial();
    common::subreaper();
    // cargo's jobserver pipes must not leak into what we start.
    criu::sys::fd::cloexec_from(3).unwrap();
    g
}

/// Make fixture pid `pid` free: a leftover restored task (running `exe`)
/// is killed; anything else that happens to hold the pid (pids on a busy
/// machine wrap around) is waited for, never killed.
fn free_pid(pid: i32, exe: &str) {
    let t0 = Instant::now();
    while alive(pid) {
        if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == Path::new(exe)) {
            kill_until_gone(pid);
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "pid {pid} is held by another process");
        reap_all();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Nothing of a failed restore holds `pid`: no restoring criu child, no
/// half-restored task (another process may have taken the pid since).
fn restore_gone(pid: i32, exe: &str) -> bool {
    reap_all();
    let Ok(p) = std::fs::read_link(format!("/proc/{pid}/exe")) else { return true };
    p != Path::new(exe) && p != Path::new(env!("CARGO_BIN_EXE_criu")) && session_empty(pid)
}

const SLEEP_EXE: &str = "/usr/bin/sleep";

/// No process is left in session `sid` (the restored task's).
fn session_empty(sid: i32) -> bool {
    reap_all();
    std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).all(|p| {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { return true };
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        // state ppid pgrp session: a zombie counts as gone.
        f[0] == "Z" || f[3].parse::<i32>() != Ok(sid)
    })
}


/// A restore running in the background (criu waits for the task); ready
/// once criu wrote the pidfile.
struct Restored {
    pid: i32,
    criu: Option<Child>,
}

impl Restored {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Result<Restored, String> {
        let pidfile = dir.join("restored.pid");
        let _ = std::fs::remove_file(&pidfile);
        let mut c = criu_cmd();
        c.args(["restore", "-D"]).arg(dir).args(["-v4", "-o", "restore.log", "--pidfile"]).arg(&pidfile);
        c.envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let t0 = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&pidfile)
                && let Ok(pid) = s.trim().parse()
            {
                return Ok(Restored { pid, criu: Some(child) });
            }
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                return Err(format!("criu restore exited with {st}: {err}\n{}", log(dir, "restore.log")));
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("criu restore did not finish\n{}", log(dir, "restore.log")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        if let Some(mut c) = self.criu.take() {
            let _ = c.wait();
        }
        kill_until_gone(self.pid);
    }
}

/// (start, end, "rwxs"-style prot+shared) runs, adjacent runs of the same
/// kind joined (the kernel may merge what the image lists apart).
fn runs(mut v: Vec<(u64, u64, String)>) -> Vec<(u64, u64, String)> {
    v.sort();
    let mut out: Vec<(u64, u64, String)> = Vec::new();
    for (s, e, k) in v {
        match out.last_mut() {
            Some(l) if l.1 == s && l.2 == k => l.1 = e,
            _ => out.push((s, e, k)),
        }
    }
    out
}

const VSYSCALL: u64 = 0xffff_ffff_ff60_0000;

fn image_runs(mm: &MmEntry) -> Vec<(u64, u64, String)> {
    runs(
        mm.vmas
            .iter()
            .filter(|v| v.start != VSYSCALL)
            .map(|v| {
                let p = v.prot;
                let kind = format!(
                    "{}{}{}{}",
                    if p & 1 != 0 { 'r' } else { '-' },
                    if p & 2 != 0 { 'w' } else { '-' },
                    if p & 4 != 0 { 'x' } else { '-' },
                    if v.flags & 1 != 0 { 's' } else { 'p' }
                );
                (v.start, v.end, kind)
            })
            .collect(),
    )
}

/// Whether the image's vDSO (from its pages) is ours byte for byte, with
/// its vvar the size and distance ours has.
fn vdso_is_ours(dir: &Path, pid: i32) -> bool {
    use criu::mem::vdso;
    let d = ImageDir::open(dir).unwrap();
    let img = vdso::image_vdso(&mm_image(dir, pid), &d, pid as u64).unwrap().expect("the image has a vDSO");
    let Some(rt) = vdso::Runtime::current().unwrap() else { return false };
    let vvar = |v: Option<(u64, u64)>, at: u64| v.map(|(s, l)| (l, at - s));
    img.missing.is_empty()
        && img.bytes == rt.bytes
        && vvar(img.vvar.map(|(s, e)| (s, e - s)), img.vdso.0) == vvar(rt.vvar, rt.vdso.0)
}

/// The task's memory is exactly the image's VMAs: nothing of the restorer
/// or the premap is left. vvar/vdso sit at the image's addresses when the
/// image's vDSO is this kernel's; else (a proxy) the image's vDSO range is
/// ordinary r-x memory and our [vvar]/[vdso] lie clear of every VMA of the
/// image.
fn check_layout(pid: i32, dir: &Path) {
    let mm = &mm_image(dir, pid);
    let m = maps(pid);
    let proxy = !vdso_is_ours(dir, pid);
    let special = |x: &(u64, u64, String, String)| matches!(x.3.as_str(), "[vvar]" | "[vvar_vclock]" | "[vdso]");
    let live = runs(m.iter().filter(|x| x.0 != VSYSCALL && !(proxy && special(x))).map(|x| (x.0, x.1, x.2.clone())).collect());
    assert_eq!(live, image_runs(mm), "maps of {pid} differ from the image:\n{m:#x?}");
    const VDSO: u32 = 1 << 3;
    const VVAR: u32 = 1 << 12;
    let img = |bit: u32| mm.vmas.iter().find(|v| v.status & bit != 0).map(|v| (v.start, v.end));
    let at = |name: &str| m.iter().find(|x| x.3 == name).map(|x| x.0);
    let (vdso_s, vdso_e) = img(VDSO).expect("image has a vdso");
    if !proxy {
        assert_eq!(at("[vdso]"), Some(vdso_s), "vdso not at the image's address");
        if let Some((vvar_s, _)) = img(VVAR) {
            assert_eq!(at("[vvar]"), Some(vvar_s), "vvar not at the image's address");
        }
        return;
    }
    assert!(at("[vdso]").is_some_and(|a| a != vdso_s), "no [vdso] of ours away from the image's:\n{m:#x?}");
    assert!(m.iter().any(|x| x.0 <= vdso_s && vdso_e <= x.1 && x.2 == "r-xp" && x.3.is_empty()), "the image's vDSO is no plain mapping:\n{m:#x?}");
    for k in m.iter().filter(|x| special(x)) {
        assert!(mm.vmas.iter().all(|v| k.1 <= v.start || v.end <= k.0), "{k:x?} overlaps a VMA of the image");
    }
}

#[test]
fn sleep_fixture_restores_in_place() {
    let _g = serial();
    free_pid(SLEEP_PID, SLEEP_EXE);
    let Some(dir) = common::fixture_copy("sleep") else { return };
    let r = Restored::start(dir.path(), &[]).unwrap();
    assert_eq!(r.pid, SLEEP_PID);
    assert_eq!(state(SLEEP_PID), Some('S'));
    assert_eq!(std::fs::read(format!("/proc/{SLEEP_PID}/cmdline")).unwrap(), b"/usr/bin/sleep\x00100000\x00");
    assert_eq!(std::fs::read_link(format!("/proc/{SLEEP_PID}/exe")).unwrap(), PathBuf::from("/usr/bin/sleep"));
    for fd in 0..3 {
        assert_eq!(std::fs::read_link(format!("/proc/{SLEEP_PID}/fd/{fd}")).unwrap(), PathBuf::from("/dev/null"));
    }
    assert_eq!(std::fs::read_dir(format!("/proc/{SLEEP_PID}/fd")).unwrap().count(), 3, "service fds left open");
    check_layout(SLEEP_PID, dir.path());
    let status = std::fs::read_to_string(format!("/proc/{SLEEP_PID}/status")).unwrap();
    assert!(status.contains("SigBlk:\t0000000000000000"), "{status}");
    // Still asleep a moment later (the interrupted sleep resumed).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(SLEEP_PID), Some('S'));
    let log = log(dir.path(), "restore.log");
    assert!(log.contains("cleaner on"), "{log}");
    drop(r);
    assert!(session_empty(SLEEP_PID));
}

#[test]
fn sleep_fixture_restores_detached() {
    let _g = serial();
    free_pid(SLEEP_PID, SLEEP_EXE);
    let Some(dir) = common::fixture_copy("sleep") else { return };
    let out = criu_cmd().args(["restore", "-D"]).arg(dir.path()).args(["-d", "-v4", "-o", "restore.log"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}\n{}", log(dir.path(), "restore.log"));
    // criu is gone; the task is ours now (subreaper) and complete.
    assert_eq!(state(SLEEP_PID), Some('S'));
    assert_eq!(std::fs::read(format!("/proc/{SLEEP_PID}/cmdline")).unwrap(), b"/usr/bin/sleep\x00100000\x00");
    check_layout(SLEEP_PID, dir.path());
    kill_until_gone(SLEEP_PID);
    assert!(session_empty(SLEEP_PID));
}

/// The fixture's tick count. Its handler rewrites the file (truncate, then
/// write), so an empty read is retried for up to a second; if the count
/// still cannot be read, the panic says what became of the task: how it
/// died (criu waits for it and exits with its status) or where it is stuck.
fn ticks(r: &mut Restored, dir: &Path) -> u64 {
    let t0 = Instant::now();
    loop {
        if let Some(n) = std::fs::read_to_string(TIMER_FILE).ok().and_then(|s| s.trim().parse().ok()) {
            return n;
        }
        if t0.elapsed() > Duration::from_secs(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let file = std::fs::read(TIMER_FILE).map(|b| format!("{:?}", String::from_utf8_lossy(&b)));
    let criu = r.criu.as_mut().and_then(|c| c.try_wait().ok().flatten());
    let pid = r.pid;
    let proc_ = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_else(|e| format!("({e})"));
    panic!(
        "no tick count in {TIMER_FILE} for 1 s ({file:?}); criu restore: {criu:?}; task {pid}: stat {} wchan {} syscall {}\n{}",
        proc_("stat").trim(),
        proc_("wchan"),
        proc_("syscall").trim(),
        {
            let log = log(dir, "restore.log");
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        }
    );
}

#[test]
fn python_timer_fixture_keeps_ticking() {
    let _g = serial();
    free_pid(TIMER_PID, &common::fixture_exe("python-timer", TIMER_PID));
    let _ = std::fs::remove_file(TIMER_FILE);
    let Some(dir) = common::fixture_copy("python-timer") else { return };
    let mut r = Restored::start(dir.path(), &[]).unwrap();
    assert_eq!(r.pid, TIMER_PID);
    std::thread::sleep(Duration::from_millis(500));
    let a = ticks(&mut r, dir.path());
    std::thread::sleep(Duration::from_millis(1000));
    let b = ticks(&mut r, dir.path());
    // 0.2 s period: about 5 ticks a second.
    assert!(a > 0 && b >= a + 3, "ticks {a} then {b}");
    check_layout(TIMER_PID, dir.path());
    // The pipe is back (fds 3 and 4) and still holds its data... as far as
    // python is concerned; SIGALRM is caught, SIGPIPE/SIGXFSZ ignored.
    let fd3 = std::fs::read_link(format!("/proc/{TIMER_PID}/fd/3")).unwrap();
    assert!(fd3.to_string_lossy().starts_with("pipe:"), "{fd3:?}");
    let status = std::fs::read_to_string(format!("/proc/{TIMER_PID}/status")).unwrap();
    assert!(status.contains("SigCgt:\t0000000000002002"), "{status}");
    assert!(status.contains("SigIgn:\t0000000001001000"), "{status}");
    drop(r);
    assert!(session_empty(TIMER_PID));
}

#[test]
fn taken_pid_is_refused() {
    let _g = serial();
    free_pid(SLEEP_PID, SLEEP_EXE);
    let Some(dir) = common::fixture_copy("sleep") else { return };
    let first = Restored::start(dir.path(), &[]).unwrap();
    let Some(dir2) = common::fixture_copy("sleep") else { return };
    let out = criu_cmd().args(["restore", "-D"]).arg(dir2.path()).args(["-v4", "-o", "restore.log"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("30001"), "{err}");
    // The first one is untouched.
    assert_eq!(std::fs::read_link(format!("/proc/{SLEEP_PID}/exe")).unwrap(), PathBuf::from("/usr/bin/sleep"));
    assert_eq!(state(SLEEP_PID), Some('S'));
    drop(first);
    assert!(restore_gone(SLEEP_PID, SLEEP_EXE));
    assert!(session_empty(SLEEP_PID));
}

/// A python program that counts into `file` every 20 ms and exits with 7
/// at `last`, started as the fixtures were (own session, fds on /dev/null).
fn start_counter(py: &str, file: &Path, last: u64, prelude: &str) -> Child {
    let code = format!(
        "import sys, time\n{prelude}\nn = 0\nwhile True:\n    n += 1\n    with open({:?}, 'w') as f: f.write(str(n))\n    if n >= {last}: sys.exit(7)\n    time.sleep(0.02)\n",
        file.to_str().unwrap()
    );
    let mut cmd = Command::new("/usr/bin/setsid");
    cmd.args([py, "-I", "-S", "-c", &code])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/");
    let child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    while count(file) < 3 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the counter does not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// The number in `file` (0 if none); the writer truncates before writing,
/// so an empty read is retried.
fn count(file: &Path) -> u64 {
    for _ in 0..50 {
        if let Some(n) = std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok()) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    0
}

/// Dump the counter (killing it) into `dir`; the count at dump time.
fn dump(mut child: Child, dir: &Path, file: &Path) -> u64 {
    let pid = child.id().to_string();
    let out = criu_cmd().args(["dump", "-t", &pid, "-D"]).arg(dir).args(["-v4", "-o", "dump.log"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), log(dir, "dump.log"));
    let _ = child.wait();
    count(file)
}

#[test]
fn own_dump_restores_and_counts_on() {
    let _g = serial();
    let Some(py) = common::python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("counter");
    let child = start_counter(py, &file, 1_000_000, "");
    let pid = child.id() as i32;
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let at_dump = dump(child, &imgs, &file);
    assert!(!alive(pid));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(count(&file), at_dump, "the dumped counter still runs");

    // Detached: criu returns once the task runs.
    let out = criu_cmd().args(["restore", "-D"]).arg(&imgs).args(["-d", "-v4", "-o", "restore.log"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), log(&imgs, "restore.log"));
    assert!(alive(pid));
    std::thread::sleep(Duration::from_millis(300));
    let c = count(&file);
    assert!(c > at_dump + 3, "counter {c} after restore, {at_dump} at dump");
    check_layout(pid, &imgs);
    kill_until_gone(pid);
    assert!(session_empty(pid));
}

#[test]
fn own_dump_restore_waits_for_exit_status() {
    let _g = serial();
    let Some(py) = common::python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("counter");
    let child = start_counter(py, &file, 40, "");
    let pid = child.id() as i32;
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let at_dump = dump(child, &imgs, &file);
    assert!(at_dump < 40, "the counter finished before the dump");
    let out = criu_cmd().args(["restore", "-D"]).arg(&imgs).args(["-v4", "-o", "restore.log"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}\n{}", String::from_utf8_lossy(&out.stderr), log(&imgs, "restore.log"));
    assert_eq!(count(&file), 40);
    kill_until_gone(pid);
}

#[test]
fn own_dump_restores_creds() {
    let _g = serial();
    let Some(py) = common::python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("counter");
    std::fs::write(&file, "0").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // Drop to nobody with a group list, losing every capability.
    let prelude = "import os\nos.setgroups([65534, 100])\nos.setresgid(65534, 65534, 65534)\nos.setresuid(65534, 65534, 65534)";
    let child = start_counter(py, &file, 1_000_000, prelude);
    let pid = child.id() as i32;
    let before = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let pick = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| ["Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:"].iter().any(|k| l.starts_with(k)))
            .map(str::to_string)
            .collect()
    };
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let at_dump = dump(child, &imgs, &file);

    // A failure while changing creds leaves nothing behind.
    let err = Restored::start(&imgs, &[("CRIU_RESTORER_FAULT", "29")]).err().expect("the injected fault fails the restore");
    assert!(err.contains("step 29"), "{err}");
    let python = std::fs::canonicalize(py).unwrap();
    assert!(restore_gone(pid, python.to_str().unwrap()));

    let r = Restored::start(&imgs, &[]).unwrap();
    let after = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(pick(&after), pick(&before));
    assert!(after.contains("Uid:\t65534\t65534\t65534\t65534"), "{after}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(count(&file) > at_dump + 3);
    drop(r);
}

#[test]
fn corrupted_pages_fail_cleanly() {
    let _g = serial();
    free_pid(SLEEP_PID, SLEEP_EXE);
    // pages-1.img cut short.
    let Some(dir) = common::fixture_copy("sleep") else { return };
    let pages = dir.path().join("pages-1.img");
    let len = std::fs::metadata(&pages).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&pages).unwrap().set_len(len / 2).unwrap();
    let out = criu_cmd().args(["restore", "-D"]).arg(dir.path()).args(["-v4", "-o", "restore.log"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("pages"), "{err}");
    assert!(restore_gone(SLEEP_PID, SLEEP_EXE) && session_empty(SLEEP_PID));

    // A pagemap entry reaching past the end of pages-1.img.
    let Some(dir) = common::fixture_copy("sleep") else { return };
    let d = ImageDir::open(dir.path()).unwrap();
    let mut pm = criu::images::pagemap::Pagemap::read(&d, SLEEP_PID as u64).unwrap();
    let last = pm.entries.last_mut().unwrap();
    last.nr_pages = Some(criu::images::pagemap::entry_nr_pages(last) + 16);
    std::fs::remove_file(dir.path().join("pagemap-30001.img")).unwrap();
    pm.write(&d, SLEEP_PID as u64).unwrap();
    let out = criu_cmd().args(["restore", "-D"]).arg(dir.path()).args(["-v4", "-o", "restore.log"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("pages"), "{err}");
    assert!(restore_gone(SLEEP_PID, SLEEP_EXE) && session_empty(SLEEP_PID));
}

#[test]
fn restorer_failures_leave_nothing_running() {
    let _g = serial();
    free_pid(SLEEP_PID, SLEEP_EXE);
    // Before and after criu's memory is gone, while the task's state is
    // set, and in the cleaner after the jump.
    for step in [3u64, 5, 6, 7, 8, 11, 13, 17, 18, 33, 40] {
        let Some(dir) = common::fixture_copy("sleep") else { return };
        let fault = step.to_string();
        let err = Restored::start(dir.path(), &[("CRIU_RESTORER_FAULT", &fault)]).err();
        let err = err.unwrap_or_else(|| panic!("fault at step {step} did not fail the restore"));
        assert!(err.contains(&format!("step {step} ")) && err.contains("ECANCELED"), "step {step}: {err}");
        let t0 = Instant::now();
        while !restore_gone(SLEEP_PID, SLEEP_EXE) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(restore_gone(SLEEP_PID, SLEEP_EXE), "step {step}: the task is still there");
        assert!(session_empty(SLEEP_PID), "step {step}: something left in the session");
    }
}

#[test]
fn without_a_cleaner_the_task_still_runs() {
    let _g = serial();
    free_pid(SLEEP_PID, SLEEP_EXE);
    let Some(dir) = common::fixture_copy("sleep") else { return };
    let r = Restored::start(dir.path(), &[("CRIU_RESTORER_FAULT", "41")]).unwrap();
    assert_eq!(state(SLEEP_PID), Some('S'));
    let log = log(dir.path(), "restore.log");
    assert!(log.contains("cleaner off") && log.contains("stays mapped"), "{log}");
    // The image's VMAs plus the restorer region (less the vDSO's parking
    // spot), nothing else (but our vDSO block, away from the image's VMAs
    // when it proxies for the image's).
    let mm = mm_image(dir.path(), SLEEP_PID);
    let image = image_runs(&mm);
    let m = maps(SLEEP_PID);
    let ours = |x: &(u64, u64, String, String)| matches!(x.3.as_str(), "[vvar]" | "[vvar_vclock]" | "[vdso]");
    let extra: Vec<_> =
        m.iter().filter(|x| x.0 != VSYSCALL && !ours(x) && !image.iter().any(|i| i.0 <= x.0 && x.1 <= i.1)).collect();
    assert!(!extra.is_empty() && extra.iter().all(|x| x.2 == "rwxp"), "{extra:#x?}");
    let span = extra.last().unwrap().1 - extra[0].0;
    assert!(span < 1 << 20, "{extra:#x?}");
    let status = std::fs::read_to_string(format!("/proc/{SLEEP_PID}/status")).unwrap();
    assert!(status.contains("SigBlk:\t0000000000000000"), "{status}");
    drop(r);
    assert!(session_empty(SLEEP_PID));
}

#[test]
fn own_dump_restores_pending_signals() {
    let _g = serial();
    let Some(py) = common::python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("counter");
    // SIGUSR1 pending for the process, SIGUSR2 for the thread, both blocked.
    let prelude = "import os, signal, threading\n\
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGUSR2])\n\
        os.kill(os.getpid(), signal.SIGUSR1)\n\
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)";
    let child = start_counter(py, &file, 1_000_000, prelude);
    let pid = child.id() as i32;
    let pick = |pid: i32| -> Vec<String> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines().filter(|l| ["SigPnd:", "ShdPnd:", "SigBlk:", "SigIgn:", "SigCgt:"].iter().any(|k| l.starts_with(k))).map(str::to_string).collect()
    };
    let before = pick(pid);
    assert!(before.contains(&"SigPnd:\t0000000000000800".to_string()), "{before:?}");
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    dump(child, &imgs, &file);
    let r = Restored::start(&imgs, &[]).unwrap();
    assert_eq!(pick(pid), before);
    drop(r);
}
