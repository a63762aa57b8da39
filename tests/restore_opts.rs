//! Restore options beyond the basic cycle: --inherit-fd (a file or a pipe
//! handed in by the caller replaces the one in the images) and --pidfile.

mod common;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn inherit_fd_replaces_a_changed_file_and_pidfile_is_written() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ready = tmp.path().join("ready");
    std::fs::write(&data, b"0123456789").unwrap();
    // The task keeps `data` open as fd 3 at offset 4 and appends what it
    // reads from it to `out` when it gets SIGUSR1.
    let out = tmp.path().join("out");
    let script = format!(
        "import os,signal,time\n\
         f=os.open('{}',os.O_RDONLY)\nassert f==3\nos.lseek(f,4,0)\n\
         def h(*a):\n  open('{}','wb').write(os.read(3,100))\n\
         signal.signal(signal.SIGUSR1,h)\n\
         open('{}','w').close()\n\
         while True: time.sleep(1)",
        data.display(),
        out.display(),
        ready.display()
    );
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    let pid = t.pid();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let o = criu(&["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _ = t.child.wait();

    // The file changed: a plain restore refuses it, naming it.
    std::fs::write(&data, b"changed contents").unwrap();
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(&format!("{} changed since dump", data.display())), "{}", text(&o.stderr));
    assert!(state(pid).is_none());

    // Handing in another file for it: the task reads from ours.
    let other = tmp.path().join("other");
    std::fs::write(&other, b"inherited!").unwrap();
    let f = std::fs::File::open(&other).unwrap();
    let n = f.as_raw_fd();
    // Our fd must survive exec into criu: clear close-on-exec on it.
    nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).unwrap();
    let pidfile = tmp.path().join("pid");
    let res = format!("fd[{n}]:{}", data.to_str().unwrap().trim_start_matches('/'));
    let o = common::criu_cmd()
        .args(["restore", "-d", "-D", imgs.to_str().unwrap(), "--inherit-fd", &res, "--pidfile"])
        .arg(&pidfile)
        .output()
        .unwrap();
    drop(f);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap().trim(), pid.to_string());
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap(), other);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGUSR1).unwrap();
    for _ in 0..100 {
        if out.exists() && std::fs::metadata(&out).unwrap().len() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Our description is used as it is: read from its own offset (0).
    assert_eq!(std::fs::read(&out).unwrap(), b"inherited!");
    kill_and_reap(pid);

    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap(), "--inherit-fd", "fd3:x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("Invalid inherit fd argument: fd3:x"), "{}", text(&o.stderr));
    assert!(Path::new(&imgs).exists());
}

/// criu killed in the middle of a restore: what it was building dies with
/// it (here at post-restore, the task restored but held, not yet running).
#[test]
fn criu_killed_mid_restore_leaves_nothing() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());
    let script = tmp.path().join("kill-criu.sh");
    std::fs::write(&script, "#!/bin/sh\n[ \"$CRTOOLS_SCRIPT_ACTION\" = post-restore ] && kill -9 $PPID\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap(), "--action-script", script.to_str().unwrap()]);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(libc::SIGKILL), "criu was killed");
    for _ in 0..200 {
        if state(pid).is_none() {
            break;
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(state(pid).is_none_or(|s| s == 'Z'), "task {pid} outlived the criu that was restoring it: {:?}", state(pid));
    kill_and_reap(pid);
}

/// `restore -s`: every thread of the restored task is stopped (group stop,
/// untraced) and does nothing until SIGCONT, after which it runs on.
#[test]
fn leave_stopped_restores_a_stopped_task() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    // A worker thread appends a byte every 10 ms; the main thread sleeps.
    let script = format!(
        "import threading,time\n\
         def w():\n  f=open('{}','ab',buffering=0)\n  while True:\n    f.write(b'x'); time.sleep(0.01)\n\
         threading.Thread(target=w,daemon=True).start()\n\
         open('{}','w').close()\n\
         while True: time.sleep(1)",
        out.display(),
        ready.display()
    );
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());

    let o = criu(&["restore", "-d", "-s", "-D", imgs.to_str().unwrap()]);
    assert!(o.status.success(), "restore -s: {}", text(&o.stderr));
    let tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(tids.len(), 2, "threads of {pid}: {tids:?}");
    let stopped = |tid: i32| {
        let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
        s.lines().any(|l| l.starts_with("State:") && l.contains("T (stopped)"))
            && s.lines().any(|l| l == "TracerPid:\t0")
    };
    for _ in 0..100 {
        if tids.iter().all(|t| stopped(*t)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for t in &tids {
        assert!(stopped(*t), "thread {t} of {pid} is not stopped and untraced");
    }
    let len = || std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let before = len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(len(), before, "the stopped task wrote");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGCONT).unwrap();
    let mut grew = false;
    for _ in 0..200 {
        if len() > before + 3 {
            grew = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(grew, "the task did not run on after SIGCONT ({} bytes)", len());
    kill_and_reap(pid);
}
