//! compel (the parasite engine) against real processes: seize, remote
//! syscalls, infect, parasite commands, cure, and the safety net when the
//! controlling process dies mid-infection. Needs root (ptrace); the test
//! process is a child subreaper and reaps everything it starts. Targets are
//! `tests/helpers/compel_target.rs`, compiled here with rustc.

#![cfg(target_arch = "x86_64")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criu::compel::proto::PingArgs;
use criu::compel::{DumpMisc, DumpSigacts, ParasiteCmd, Ping, Seized};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const SA_RESTART: u64 = 0x1000_0000;
const SA_RESTORER: u64 = 0x0400_0000;

fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER"));
}

/// A running target; killed and reaped on drop.
struct Target {
    child: Child,
    lines: Receiver<String>,
    handler: u64,
}

impl Target {
    fn spawn(args: &[&str]) -> Target {
        init();
        let mut child = Command::new(common::helper("compel_target")).args(args).stdout(Stdio::piped()).spawn().expect("spawn target");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let ready = lines.recv_timeout(Duration::from_secs(10)).expect("target ready line");
        let field = |k: &str| {
            let v = ready.split_whitespace().find_map(|w| w.strip_prefix(k)).expect(k);
            u64::from_str_radix(v.trim_start_matches("0x"), if v.starts_with("0x") { 16 } else { 10 }).unwrap()
        };
        Target { handler: field("handler="), child, lines }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Output lines within `d`.
    fn collect(&self, d: Duration) -> Vec<String> {
        let end = Instant::now() + d;
        let mut v = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => v.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(_) => break,
            }
        }
        v
    }

    fn state(&self) -> char {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        s.rsplit(')').next().and_then(|r| r.trim().chars().next()).unwrap_or('?')
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn maps(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/maps", self.pid())).unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ticks(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.starts_with("tick")).count()
}

fn assert_healthy(lines: &[String]) {
    assert!(!lines.iter().any(|l| l.starts_with("ERR") || l.starts_with("pause")), "target output: {lines:?}");
}

#[test]
fn remote_syscalls() {
    let t = Target::spawn(&["sleep", "100", "strict"]);
    let mut s = Seized::seize(t.pid()).unwrap();
    assert!(!s.was_stopped());
    assert_eq!(s.syscall(libc::SYS_getpid, [0; 6]).unwrap(), t.pid().as_raw() as i64);
    assert_eq!(s.syscall(libc::SYS_gettid, [0; 6]).unwrap(), t.pid().as_raw() as i64);
    // Errors come back as -errno.
    assert_eq!(s.syscall(libc::SYS_close, [99_999, 0, 0, 0, 0, 0]).unwrap(), -(libc::EBADF as i64));
    // Infect, cure keeping the task seized, and go again.
    let mut inf = s.infect().unwrap();
    inf.call::<Ping>(&PingArgs { cookie: 1 }).unwrap();
    let mut s = inf.cure_keep_seized().unwrap();
    assert_eq!(s.syscall(libc::SYS_getpid, [0; 6]).unwrap(), t.pid().as_raw() as i64);
    let mut inf = s.infect().unwrap();
    inf.call::<Ping>(&PingArgs { cookie: 2 }).unwrap();
    let s = inf.cure_keep_seized().unwrap();
    s.release().unwrap();
    let lines = t.collect(Duration::from_millis(500));
    assert_healthy(&lines);
    assert!(ticks(&lines) >= 2, "{lines:?}");
}

#[test]
fn infect_commands_and_cure() {
    let mut t = Target::spawn(&["sleep", "100", "strict"]);
    let pid = t.pid();
    let maps = t.maps();
    let t0 = Instant::now();
    let mut inf = Seized::seize(pid).unwrap().infect().unwrap();
    let t_infect = t0.elapsed();
    let map = inf.remote_map().unwrap();
    assert!(t.maps().contains(&format!("{:x}-{:x} rwxp", map.base, map.base + map.len)));

    let pong = inf.call::<Ping>(&PingArgs { cookie: 0xfeed_beef }).unwrap();
    assert_eq!((pong.cookie, pong.pid, pong.tid), (0xfeed_beef, pid.as_raw(), pid.as_raw()));

    let acts = inf.call::<DumpSigacts>(&()).unwrap().acts;
    let usr1 = acts[libc::SIGUSR1 as usize - 1];
    assert_eq!(usr1.handler, t.handler);
    assert_eq!(usr1.flags & !SA_RESTORER, SA_RESTART);
    assert_eq!(usr1.mask, (1 << (libc::SIGUSR2 - 1)) | (1 << (libc::SIGTERM - 1)));
    assert_eq!(acts[libc::SIGUSR2 as usize - 1].handler, 1, "SIGUSR2 ignored");
    assert_eq!(acts[libc::SIGHUP as usize - 1].handler, 0, "SIGHUP default");

    let misc = inf.call::<DumpMisc>(&()).unwrap();
    assert_eq!(misc.umask, 0o027);
    assert_eq!((misc.pid, misc.ppid), (pid.as_raw(), std::process::id() as i32));
    // Rust's runtime gives the main thread an alternate signal stack.
    assert!(misc.sas.flags == 0 && misc.sas.size > 0 && misc.sas.sp != 0, "{:?}", misc.sas);
    assert_eq!(misc.itimers[0].value.sec + misc.itimers[0].value.usec, 0);
    assert_eq!(misc.dumpable, 1);

    // A command the parasite does not know is an error reply (ENOSYS),
    // and the parasite carries on.
    struct Unknown;
    impl ParasiteCmd for Unknown {
        const ID: u32 = 0x7777;
        type Args = ();
        type Reply = ();
    }
    match inf.call::<Unknown>(&()) {
        Err(criu::compel::Error::Command { errno, .. }) => assert_eq!(errno, nix::errno::Errno::ENOSYS),
        other => panic!("{other:?}"),
    }
    inf.call::<Ping>(&PingArgs { cookie: 1 }).unwrap();

    let t1 = Instant::now();
    inf.cure().unwrap();
    let t_cure = t1.elapsed();
    eprintln!("compel: infect {t_infect:?}, cure {t_cure:?}");
    assert_eq!(t.maps(), maps, "maps after cure");
    let lines = t.collect(Duration::from_millis(600));
    assert_healthy(&lines);
    assert!(ticks(&lines) >= 3, "{lines:?}");
    assert!(t.alive());
}

#[test]
fn cure_restores_registers_fpu_and_maps() {
    let mut t = Target::spawn(&["pause"]);
    let pid = t.pid();
    std::thread::sleep(Duration::from_millis(50));
    let maps = t.maps();
    let s = Seized::seize(pid).unwrap();
    let before = s.state().clone();
    assert_eq!(before.regs.syscall_nr(), libc::SYS_pause);
    let mut inf = s.infect().unwrap();
    inf.call::<Ping>(&PingArgs { cookie: 7 }).unwrap();
    inf.call::<DumpSigacts>(&()).unwrap();
    inf.cure().unwrap();
    assert_eq!(t.maps(), maps);
    std::thread::sleep(Duration::from_millis(50));
    let s = Seized::seize(pid).unwrap();
    assert_eq!(s.state().regs, before.regs, "registers after cure");
    assert!(s.state().fpu == before.fpu, "FPU state after cure");
    assert_eq!(s.state().sigmask, before.sigmask);
    s.release().unwrap();
    assert_healthy(&t.collect(Duration::from_millis(200)));
    assert!(t.alive());
    assert_eq!(t.state(), 'S');
}

#[test]
fn sleeps_are_not_cut_short() {
    let mut t = Target::spawn(&["sleep", "300", "strict"]);
    let mut lines = Vec::new();
    for i in 0..6 {
        lines.extend(t.collect(Duration::from_millis(70 + 37 * i)));
        let mut inf = Seized::seize(t.pid()).unwrap().infect().unwrap();
        inf.call::<DumpMisc>(&()).unwrap();
        inf.cure().unwrap();
        let mut s = Seized::seize(t.pid()).unwrap();
        s.syscall(libc::SYS_getppid, [0; 6]).unwrap();
        drop(s);
    }
    lines.extend(t.collect(Duration::from_millis(1000)));
    assert_healthy(&lines);
    assert!(ticks(&lines) >= 4, "{lines:?}");
    assert!(t.alive());
}

#[test]
fn stopped_task_stays_stopped() {
    let t = Target::spawn(&["sleep", "50", "strict"]);
    kill(t.pid(), Signal::SIGSTOP).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while t.state() != 'T' && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(t.state(), 'T');
    let _ = t.collect(Duration::from_millis(100));
    let s = Seized::seize(t.pid()).unwrap();
    assert!(s.was_stopped());
    let mut inf = s.infect().unwrap();
    inf.call::<Ping>(&PingArgs { cookie: 3 }).unwrap();
    inf.cure().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(t.state(), 'T', "still stopped after release");
    assert!(t.collect(Duration::from_millis(200)).is_empty(), "no ticks while stopped");
    kill(t.pid(), Signal::SIGCONT).unwrap();
    let lines = t.collect(Duration::from_millis(500));
    assert_healthy(&lines);
    assert!(ticks(&lines) >= 2, "{lines:?}");
}

#[test]
fn seccomp_filters_are_suspended() {
    // The target dies on getppid(); ours must bypass its filter.
    let mut t = Target::spawn(&["seccomp"]);
    let mut s = Seized::seize(t.pid()).unwrap();
    assert_eq!(s.syscall(libc::SYS_getppid, [0; 6]).unwrap(), std::process::id() as i64);
    let mut inf = s.infect().unwrap();
    assert_eq!(inf.call::<DumpMisc>(&()).unwrap().ppid, std::process::id() as i32);
    inf.cure().unwrap();
    let lines = t.collect(Duration::from_millis(700)); // 200 ms ticks
    assert_healthy(&lines);
    assert!(ticks(&lines) >= 2, "{lines:?}");
    assert!(t.alive());
}

/// Run in a child process by `controller_killed_mid_infection`: infect the
/// task named by the environment, then die by SIGKILL with the parasite in.
#[test]
fn infector_helper() {
    let Ok(pid) = std::env::var("COMPEL_INFECTOR_PID") else { return };
    let pid = Pid::from_raw(pid.parse().unwrap());
    let mut inf = Seized::seize(pid).unwrap().infect().unwrap();
    inf.call::<Ping>(&PingArgs { cookie: 9 }).unwrap();
    println!("INFECTED {:x}", inf.remote_map().unwrap().base);
    kill(Pid::this(), Signal::SIGKILL).unwrap();
}

fn infect_and_die(pid: Pid) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "infector_helper", "--nocapture", "--test-threads=1"])
        .env("COMPEL_INFECTOR_PID", pid.as_raw().to_string())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let base = text.lines().find_map(|l| l.split("INFECTED ").nth(1)).expect("infector output");
    u64::from_str_radix(base.trim(), 16).unwrap()
}

/// The fd numbers open in `pid`.
fn fds(pid: Pid) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect();
    v.sort();
    v
}

#[test]
fn controller_killed_mid_infection() {
    // A task in pause(): the parasite's own rt_sigreturn must bring back the
    // exact registers and FPU state, and pause() must restart.
    let mut t = Target::spawn(&["pause"]);
    std::thread::sleep(Duration::from_millis(50));
    let s = Seized::seize(t.pid()).unwrap();
    let before = s.state().clone();
    s.release().unwrap();
    let maps = t.maps();
    let fds_before = fds(t.pid());
    let base = infect_and_die(t.pid());
    std::thread::sleep(Duration::from_millis(100));
    assert!(t.alive());
    let s = Seized::seize(t.pid()).unwrap();
    assert_eq!(s.state().regs, before.regs, "registers after the parasite's sigreturn");
    assert!(s.state().fpu == before.fpu, "FPU state after the parasite's sigreturn");
    assert_eq!(s.state().sigmask, before.sigmask);
    s.release().unwrap();
    // Nothing is left behind: the parasite's way back (the rescue chain)
    // closed its socket and unmapped its area.
    let after = t.maps();
    let extra: Vec<&str> = after.lines().filter(|l| !maps.contains(*l)).collect();
    assert!(extra.is_empty(), "left behind (the parasite was at {base:#x}): {extra:?}");
    assert_eq!(fds(t.pid()), fds_before, "fds after the parasite's way back");
    assert_healthy(&t.collect(Duration::from_millis(200)));

    // A sleeping task keeps running (its interrupted sleep sees EINTR once,
    // which it handles by sleeping the rest).
    let mut t = Target::spawn(&["sleep", "100", "lenient"]);
    let _ = t.collect(Duration::from_millis(150));
    infect_and_die(t.pid());
    let lines = t.collect(Duration::from_millis(600));
    assert_healthy(&lines);
    assert!(ticks(&lines) >= 3, "{lines:?}");
    assert!(lines.iter().filter(|l| *l == "eintr").count() <= 1, "{lines:?}");
    assert!(t.alive());
}
