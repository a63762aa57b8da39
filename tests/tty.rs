//! --shell-job: a task on a terminal is dumped with its terminal recorded
//! (tty-info.img, CRIU's records), and restored onto the terminal criu runs
//! on; without --shell-job both refuse, naming the fd.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn pty() -> (OwnedFd, OwnedFd) {
    let p = nix::pty::openpty(None, None).unwrap();
    // Ours only: the programs we start get the slave as stdio, nothing more.
    criu::sys::fd::cloexec_from(3).unwrap();
    (p.master, p.slave)
}

fn stdio(fd: &OwnedFd) -> Stdio {
    Stdio::from(fd.try_clone().unwrap())
}

#[test]
fn shell_job_on_a_pty() {
    let Some(py) = python() else { return };
    subreaper();
    criu::sys::fd::cloexec_from(3).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    let script = format!(
        "import sys\nopen('{}','w').close()\nline=sys.stdin.readline()\nopen('{}','w').write(line)\nimport time\ntime.sleep(100000)",
        ready.display(),
        out.display()
    );
    let (m1, s1) = pty();
    let mut child = Command::new("setsid")
        .args([py, "-c", &script])
        .stdin(stdio(&s1))
        .stdout(stdio(&s1))
        .stderr(stdio(&s1))
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let pid = child.id() as i32;
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();

    let o = criu(&["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap(), "-R"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("fd 0 of task") && text(&o.stderr).contains("--shell-job"), "{}", text(&o.stderr));

    let o = criu(&["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap(), "-j"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _ = child.wait();
    let info = crit(&imgs.join("tty-info.img"));
    assert_eq!(info["entries"][0]["type"], "PTY");
    assert!(info["entries"][0]["termios"].is_object());
    let files = crit(&imgs.join("files.img"));
    let ttys: Vec<_> = files["entries"].as_array().unwrap().iter().filter(|e| e["type"] == "TTY").collect();
    assert_eq!(ttys.len(), 1, "fds 0-2 share one terminal description");
    let deb = Command::new("/usr/bin/crit").args(["decode", "-i"]).arg(imgs.join("tty-info.img")).output().unwrap();
    assert!(deb.status.success(), "Debian's crit: {}", text(&deb.stderr));

    // Restored onto criu's own terminal: another pty.
    let (mut m2, s2) = {
        let (m, s) = pty();
        (std::fs::File::from(m), s)
    };
    let o = common::criu_cmd()
        .args(["restore", "-d", "-j", "-D", imgs.to_str().unwrap()])
        .stdin(stdio(&s2))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let fd0 = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    let s2_path = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&s2))).unwrap();
    assert_eq!(fd0, s2_path, "the restored task is on criu's terminal");
    m2.write_all(b"hello\n").unwrap();
    for _ in 0..200 {
        if std::fs::read_to_string(&out).unwrap_or_default() == "hello\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap_or_default(), "hello\n");
    // Drain the echo so the pty does not fill.
    let mut buf = [0u8; 64];
    let _ = nix::fcntl::fcntl(m2.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
    let _ = m2.read(&mut buf);
    kill_and_reap(pid);
    drop(m1);

    // Without -j the restore refuses the terminal.
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
}
