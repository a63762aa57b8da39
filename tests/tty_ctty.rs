//! /dev/tty with --shell-job: a task in a shell's session (not its
//! leader) holds /dev/tty, which stands for the shell's terminal. The dump
//! records it as CRIU does (a CTTY tty-info record), and the restore,
//! whose root joins criu's session, opens /dev/tty again as criu's
//! terminal: a line typed there reaches the task's read on it. Without
//! --shell-job the dump refuses, naming the fd.

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn stdio(fd: &OwnedFd) -> Stdio {
    Stdio::from(fd.try_clone().unwrap())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn dev_tty_of_a_shell_job() {
    let Some(py) = python() else { return };
    if Command::new("setsid").arg("--version").output().is_err() {
        eprintln!("skipped: no setsid(1) here");
        return;
    }
    subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let (ready, out) = (tmp.path().join("ready"), tmp.path().join("out"));
    let script = format!(
        "import os, time\nt = os.open('/dev/tty', os.O_RDWR)\nopen('{}', 'w').write(str(os.getpid()))\nline = b''\nwhile not line.endswith(b'\\n'):\n    line += os.read(t, 100)\nopen('{}', 'wb').write(line)\ntime.sleep(100000)\n",
        ready.display(),
        out.display()
    );
    // The shell: a session leader whose terminal is our first pty; the
    // task is its background job (stdin /dev/null, stdout on the pty).
    let p1 = nix::pty::openpty(None, None).unwrap();
    // Ours only: the programs we start get the slave as stdio, nothing more.
    criu::sys::fd::cloexec_from(3).unwrap();
    let mut shell = Command::new("setsid")
        .args(["-c", "sh", "-c", "\"$PY\" -c \"$SCRIPT\" & wait"])
        .env("PY", py)
        .env("SCRIPT", &script)
        .stdin(stdio(&p1.slave))
        .stdout(stdio(&p1.slave))
        .stderr(stdio(&p1.slave))
        .spawn()
        .unwrap();
    wait_for("the task", || std::fs::read_to_string(&ready).is_ok_and(|s| !s.is_empty()));
    std::thread::sleep(Duration::from_millis(100));
    let pid: i32 = std::fs::read_to_string(&ready).unwrap().parse().unwrap();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();

    let o = criu(&["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap(), "-R"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(&format!("of task {pid}")) && text(&o.stderr).contains("--shell-job"), "{}", text(&o.stderr));

    let o = criu(&["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap(), "-j"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let info = crit(&imgs.join("tty-info.img"));
    let ctty = info["entries"].as_array().unwrap().iter().find(|e| e["type"] == "CTTY").expect("a CTTY record").clone();
    assert_eq!(ctty["id"], 2012);
    assert_eq!(ctty["rdev"], 0x500);
    let _ = shell.kill();
    let _ = shell.wait();
    kill_and_reap(pid);

    // Restored under criu on another terminal (a session leader with it).
    let p2 = nix::pty::openpty(None, None).unwrap();
    criu::sys::fd::cloexec_from(3).unwrap();
    let mut m2 = std::fs::File::from(p2.master);
    let log = tmp.path().join("restore.out");
    let mut restore = Command::new("setsid")
        .args(["-c", env!("CARGO_BIN_EXE_criu"), "restore", "-j", "-D", imgs.to_str().unwrap()])
        .env_remove("CRIU_FAULT")
        .env_remove("CRIU_RESTORER_FAULT")
        .stdin(stdio(&p2.slave))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("restore.err")).unwrap())
        .spawn()
        .unwrap();
    let _restored = Restored(pid);
    wait_for("the restored task", || {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.flatten().filter_map(|e| std::fs::read_link(e.path()).ok()).collect::<Vec<_>>());
        fds.is_ok_and(|f| f.iter().any(|l| l.to_str() == Some("/dev/tty"))) || restore.try_wait().ok().flatten().is_some()
    });
    assert!(restore.try_wait().unwrap().is_none(), "restore: {}", std::fs::read_to_string(tmp.path().join("restore.err")).unwrap_or_default());
    m2.write_all(b"hello\n").unwrap();
    wait_for("the line read through /dev/tty", || std::fs::read_to_string(&out).is_ok_and(|s| s == "hello\n"));
    kill_and_reap(pid);
    let _ = restore.wait();
}
