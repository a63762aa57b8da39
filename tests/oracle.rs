//! The real CRIU 4.2 as the oracle for our images, both ways: four
//! programs (sleep; a bash loop forking `sleep`; python with an ITIMER_REAL
//! and a pipe holding data; python with 3 threads, a pipe, a unix socketpair
//! with queued data and an eventfd) are dumped by us and restored by CRIU 4.2
//! (`restore -d`), and dumped by CRIU 4.2 and restored by us. Each restored
//! program must visibly carry on: the sleep stays asleep, counters keep
//! rising, the python programs report their pipe, socket and eventfd
//! contents themselves, and the same signals have handlers. Skipped (with the reason printed) when the CRIU 4.2
//! binary is not at `../shared/tools/criu-4.2/criu`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// The real CRIU 4.2, if this machine has it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tool {
    Ours,
    Criu,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ours => "ours",
            Tool::Criu => "CRIU 4.2",
        }
    }

    fn run(self, oracle: &Path, args: &[&str]) -> Output {
        match self {
            Tool::Ours => criu(args),
            Tool::Criu => Command::new(oracle).args(args).output().unwrap(),
        }
    }
}

/// The programs, each started in its own session with fds 0-2 on /dev/null.
#[derive(Clone, Copy, Debug)]
enum Program {
    Sleep,
    BashLoop,
    PyTimer,
    PyThreads,
}

const PROGRAMS: [Program; 4] = [Program::Sleep, Program::BashLoop, Program::PyTimer, Program::PyThreads];

/// Python: an ITIMER_REAL every 0.2 s whose handler counts into `count`; a
/// pipe holding `pipe-data`; a SIGTRAP handler (which a trap taken with
/// SIGTRAP blocked would reset). On SIGUSR1 it reports what the pipe holds
/// (put back after) and its tick count.
const PY_TIMER: &str = r#"import os, signal, sys
d = sys.argv[1]
r, w = os.pipe(); os.write(w, b'pipe-data')
n = 0
def put(name, s):
    open(d + '/.' + name, 'w').write(s); os.rename(d + '/.' + name, d + '/' + name)
def tick(*a):
    global n
    n += 1
    put('count', str(n))
def report(*a):
    os.set_blocking(r, False)
    data = os.read(r, 100); os.write(w, data)
    put('out', data.decode() + '|' + str(n))
signal.signal(signal.SIGALRM, tick)
signal.signal(signal.SIGUSR1, report)
signal.signal(signal.SIGTRAP, lambda *a: None)
signal.setitimer(signal.ITIMER_REAL, 0.2, 0.2)
put('ready', '')
while True: signal.pause()
"#;

/// Python: 3 threads each counting into `count-N` every 0.2 s; a pipe, a
/// unix socketpair with `sock-data` queued, an eventfd holding 5. On
/// SIGUSR1 it reports the pipe data, the queued socket data (peeked) and the
/// eventfd count (put back after).
const PY_THREADS: &str = r#"import os, signal, socket, sys, threading, time
d = sys.argv[1]
r, w = os.pipe(); a, b = socket.socketpair(); efd = os.eventfd(5)
os.write(w, b'pipe-data'); a.send(b'sock-data')
def put(name, s):
    open(d + '/.' + name, 'w').write(s); os.rename(d + '/.' + name, d + '/' + name)
def worker(k):
    i = 0
    while True:
        i += 1
        put('count-%d' % k, str(i))
        time.sleep(0.2)
def report(*x):
    os.set_blocking(r, False)
    data = os.read(r, 100); os.write(w, data)
    sk = b.recv(100, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    ev = os.eventfd_read(efd); os.eventfd_write(efd, ev)
    put('out', '|'.join([data.decode(), sk.decode(), str(ev)]))
signal.signal(signal.SIGUSR1, report)
for k in range(3): threading.Thread(target=worker, args=(k,), daemon=True).start()
time.sleep(0.3)
put('ready', '')
while True: time.sleep(1)
"#;

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::Sleep => "sleep",
            Program::BashLoop => "bash loop",
            Program::PyTimer => "python itimer",
            Program::PyThreads => "python threads",
        }
    }

    fn spawn(self, py: &str, dir: &Path) -> Target {
        let d = dir.to_str().unwrap();
        match self {
            Program::Sleep => Target::sleeper(),
            Program::BashLoop => {
                let script = format!("i=0; while :; do i=$((i+1)); echo $i > {d}/count; sleep 0.2; done");
                let t = Target::spawn("/usr/bin/bash", &["-c", &script], Some(&dir.join("count")));
                // Caught while it waits for its child, as usual.
                std::thread::sleep(Duration::from_millis(300));
                t
            }
            Program::PyTimer => Target::spawn(py, &["-c", PY_TIMER, d], Some(&dir.join("ready"))),
            Program::PyThreads => Target::spawn(py, &["-c", PY_THREADS, d], Some(&dir.join("ready"))),
        }
    }

    /// Whether the restored program `pid` carries on; Err says how not.
    fn carries_on(self, pid: i32, dir: &Path) -> Result<(), String> {
        match self {
            Program::Sleep => {
                std::thread::sleep(Duration::from_secs(1));
                match state(pid) {
                    Some('S') => Ok(()),
                    s => Err(format!("state {s:?} a second after the restore")),
                }
            }
            Program::BashLoop => rises(&dir.join("count")),
            Program::PyTimer => {
                rises(&dir.join("count"))?;
                reported(pid, dir, |r| r.starts_with("pipe-data|"))
            }
            Program::PyThreads => {
                for k in 0..3 {
                    rises(&dir.join(format!("count-{k}")))?;
                }
                reported(pid, dir, |r| r == "pipe-data|sock-data|5")
            }
        }
    }
}

/// The number in `path` goes up within 3 s.
fn rises(path: &Path) -> Result<(), String> {
    let read = || std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut first = None;
    while Instant::now() < deadline {
        match (first, read()) {
            (None, Some(v)) => first = Some(v),
            (Some(a), Some(b)) if b > a => return Ok(()),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{} did not rise (stays at {first:?})", path.display()))
}

/// The task's SIGUSR1 report passes `ok`.
fn reported(pid: i32, dir: &Path, ok: impl Fn(&str) -> bool) -> Result<(), String> {
    let out = dir.join("out");
    let _ = std::fs::remove_file(&out);
    let got = ask(pid, &out);
    if ok(&got) { Ok(()) } else { Err(format!("it reported {got:?}")) }
}

/// The signals `pid` has handlers for (SigCgt of /proc/PID/status).
fn caught(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("SigCgt:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// SigCgt of `pid` read over half a second: (caught every time, caught at
/// some time). A program may set a handler only for a while (bash catches
/// SIGINT while it waits for a child), so only what stays counts.
fn caught_over_time(pid: i32) -> Option<(u64, u64)> {
    let (mut all, mut any) = (u64::MAX, 0);
    for _ in 0..10 {
        let c = caught(pid)?;
        all &= c;
        any |= c;
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((all, any))
}

/// Whether the handlers that stayed before the dump are there after the
/// restore (those the program changes by itself left out).
fn same_handlers(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> bool {
    match (before, after) {
        (Some((ba, bo)), Some((aa, ao))) => {
            let changing = (ba ^ bo) | (aa ^ ao);
            ba & !changing == aa & !changing
        }
        _ => false,
    }
}

/// The members of process group `pgid`.
fn group(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let pgrp = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(2)).and_then(|w| w.parse().ok());
        if pgrp == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Reap the given tasks (ours, or handed to us as the subreaper) once dead.
fn reap(pids: &[i32]) {
    for &p in pids {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(p), None);
    }
}

/// Kills the restored tree (its process group) and reaps it, however the
/// check ends.
struct Restored(i32);

impl Drop for Restored {
    fn drop(&mut self) {
        let members = group(self.0);
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.0), nix::sys::signal::Signal::SIGKILL);
        reap(&members);
    }
}

/// The last lines of a log in `imgs`, for a failure message.
fn log_tail(imgs: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(imgs.join(name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Dump `p` with `dumper`, restore it with `restorer`, check it carries on.
fn one(oracle: &Path, py: &str, p: Program, dumper: Tool, restorer: Tool) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let i = imgs.to_str().unwrap();
    let mut t = p.spawn(py, tmp.path());
    let pid = t.pid();
    let handlers = caught_over_time(pid);
    // The tree as it is when dumped (bash forks a new sleep every 0.2 s).
    let tree = group(pid);

    let o = dumper.run(oracle, &["dump", "-t", &pid.to_string(), "-D", i, "-v4", "-o", "dump.log"]);
    t.reap();
    reap(&tree);
    if !o.status.success() {
        return Err(format!("dump by {} failed: {}\n{}", dumper.name(), text(&o.stderr), log_tail(&imgs, "dump.log")));
    }
    // Every task the dump took (a child forked just before it too) is
    // reaped, so its pid is free for the restore.
    let dumped: Vec<i32> = crit(&imgs.join("pstree.img"))["entries"]
        .as_array()
        .map(|e| e.iter().filter_map(|t| t["pid"].as_i64()).map(|p| p as i32).filter(|p| !tree.contains(p)).collect())
        .unwrap_or_default();
    reap(&dumped);
    // The counter files stay: the dump may have caught a program with one
    // open (bash between `>` and its write), and the restore reopens it.
    // The counters are then seen rising from their value at the dump.

    let o = restorer.run(oracle, &["restore", "-d", "-D", i, "-v4", "-o", "restore.log"]);
    let _restored = Restored(pid);
    if !o.status.success() {
        return Err(format!("restore by {} failed: {}\n{}", restorer.name(), text(&o.stderr), log_tail(&imgs, "restore.log")));
    }
    p.carries_on(pid, tmp.path()).map_err(|e| format!("{e}\n{}", log_tail(&imgs, "restore.log")))?;
    // Every signal handler is back (a dump or restore that traps with
    // SIGTRAP blocked would reset the task's SIGTRAP handler).
    let after = caught_over_time(pid);
    if same_handlers(handlers, after) {
        Ok(())
    } else {
        Err(format!("signal handlers (SigCgt, always/sometimes caught) {after:x?}, {handlers:x?} before the dump"))
    }
}

/// Every program, dumped by `dumper` and restored by `restorer`.
fn direction(dumper: Tool, restorer: Tool) {
    let Some(oracle) = criu42() else {
        println!("skipped: no CRIU 4.2 binary at ../shared/tools/criu-4.2/criu");
        return;
    };
    let Some(py) = python() else { return };
    let mut failed = Vec::new();
    for p in PROGRAMS {
        match one(&oracle, py, p, dumper, restorer) {
            Ok(()) => println!("{}: dumped by {}, restored by {}: carries on", p.name(), dumper.name(), restorer.name()),
            Err(e) => {
                println!("{}: dumped by {}, restored by {}: FAILED: {e}", p.name(), dumper.name(), restorer.name());
                failed.push(p.name());
            }
        }
    }
    println!(
        "dumped by {}, restored by {}: {} of {} programs carry on",
        dumper.name(),
        restorer.name(),
        PROGRAMS.len() - failed.len(),
        PROGRAMS.len()
    );
    assert!(failed.is_empty(), "not carrying on: {failed:?}");
}

#[test]
fn dumped_by_us_restored_by_criu() {
    direction(Tool::Ours, Tool::Criu);
}

#[test]
fn dumped_by_criu_restored_by_us() {
    direction(Tool::Criu, Tool::Ours);
}
