//! What LXC, runc and test harnesses pass on every dump and restore is
//! accepted, and the objects those options permit are carried (file locks)
//! or still refused by name when we cannot carry them (connected TCP,
//! unlinked files with other links, a task in other cgroups under
//! --manage-cgroups).

mod common;

use std::path::Path;

use common::*;

/// LXC's checkpoint options (but --freeze-cgroup, tested below).
const LXC_DUMP: &[&str] = &[
    "--tcp-established", "--file-locks", "--link-remap", "--manage-cgroups=full", "--ext-mount-map", "auto",
    "--enable-external-sharing", "--enable-external-masters", "--enable-fs", "hugetlbfs", "--enable-fs", "tracefs",
    "--skip-in-flight", "--force-irmap", "--pre-dump-mode", "splice", "-v4",
];

#[test]
fn lxc_options_dump_and_restore_a_plain_task() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let p = pid.to_string();
    let mut args = vec!["dump", "-t", &p, "-D", imgs.to_str().unwrap(), "-o", "dump.log"];
    args.extend_from_slice(LXC_DUMP);
    let o = criu(&args);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    t.reap();
    let o = criu(&[
        "restore", "-D", imgs.to_str().unwrap(), "-o", "restore.log", "--restore-detached", "--root", "/",
        "--tcp-established", "--file-locks", "--link-remap", "--manage-cgroups=full", "--evasive-devices",
        "--external", "veth[eth0]:vethX@br0", "--ext-mount-map", "auto",
    ]);
    assert!(o.status.success(), "restore: {}", text(&o.stderr));
    assert_eq!(state(pid), Some('S'), "restored sleep runs");
    kill_and_reap(pid);
}

/// With --file-locks (LXC passes it) a task holding a flock is dumped,
/// the lock in filelocks.img; the task runs on after -R.
#[test]
fn file_locks_are_dumped_with_file_locks() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let lockf = tmp.path().join("lockf");
    let script = format!(
        "import fcntl,time\nf=open('{}','w')\nfcntl.flock(f, fcntl.LOCK_EX)\nopen('{}','w').close()\nwhile True: time.sleep(1)",
        lockf.display(),
        ready.display()
    );
    let t = Target::spawn(py, &["-c", &script], Some(&ready));
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let p = t.pid().to_string();
    let mut args = vec!["dump", "-R", "-t", &p, "-D", imgs.to_str().unwrap(), "-o", "dump.log"];
    args.extend_from_slice(LXC_DUMP);
    let o = criu(&args);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    assert!(imgs.join("filelocks.img").is_file(), "filelocks.img written");
    assert_eq!(state(t.pid()).map(|s| s != 'Z'), Some(true), "the task runs on");
}

#[test]
fn tcp_established_carries_established_and_closing_connections_and_refuses_syn_sent_by_name() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    // Two connections: one established, one whose peer closed (CLOSE_WAIT).
    let script = format!(
        "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nc=socket.create_connection(s.getsockname())\na=s.accept()\nopen('{}','w').close()\nwhile True: time.sleep(1)",
        ready.display()
    );
    let t = Target::spawn(py, &["-c", &script], Some(&ready));
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let p = t.pid().to_string();
    let o = criu(&["dump", "-R", "-t", &p, "-D", imgs.to_str().unwrap(), "-o", "dump.log", "--tcp-established", "--skip-in-flight"]);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    let streams = std::fs::read_dir(&imgs).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("tcp-stream-")).count();
    assert_eq!(streams, 2, "a tcp-stream image for each end");
    assert_eq!(state(t.pid()).map(|s| s != 'Z'), Some(true), "the task runs on");
    drop(t);
    // A connection whose peer closed (CLOSE_WAIT, the other end gone) is
    // carried too, as CRIU 4.2 carries it.
    let script = format!(
        "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nc=socket.create_connection(s.getsockname())\na=s.accept()\na[0].close()\ntime.sleep(0.2)\nopen('{}','w').close()\nwhile True: time.sleep(1)",
        ready.display()
    );
    std::fs::remove_file(&ready).unwrap();
    let t = Target::spawn(py, &["-c", &script], Some(&ready));
    let imgs = tmp.path().join("imgs2");
    std::fs::create_dir_all(&imgs).unwrap();
    let p = t.pid().to_string();
    let o = criu(&["dump", "-R", "-t", &p, "-D", imgs.to_str().unwrap(), "-o", "dump.log", "--tcp-established", "--skip-in-flight"]);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    let streams = std::fs::read_dir(&imgs).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("tcp-stream-")).count();
    assert_eq!(streams, 1, "a tcp-stream image for the CLOSE_WAIT end");
    drop(t);
    // A connection not made yet (SYN_SENT: its SYN dropped by a listener
    // whose accept queue is full) is refused by name.
    let script = format!(
        "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nc=socket.create_connection(s.getsockname())\ntime.sleep(0.1)\nd=socket.socket()\nd.setblocking(False)\nd.connect_ex(s.getsockname())\ntime.sleep(0.1)\nopen('{}','w').close()\nwhile True: time.sleep(1)",
        ready.display()
    );
    std::fs::remove_file(&ready).unwrap();
    let t = Target::spawn(py, &["-c", &script], Some(&ready));
    let err = dump_refused(t.pid(), &tmp.path().join("refused"), &["--tcp-established", "--skip-in-flight"]);
    assert!(err.contains(&format!("of task {}", t.pid())) && err.contains("is a connection in state SYN_SENT"), "{err}");
}

#[test]
fn an_unlinked_file_with_another_link_needs_link_remap() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let script = format!(
        "import os,time\nf=open('{a}','w')\nf.write('x')\nf.flush()\nos.link('{a}','{b}')\nos.unlink('{a}')\nopen('{r}','w').close()\nwhile True: time.sleep(1)",
        a = a.display(),
        b = b.display(),
        r = ready.display()
    );
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    // Without --link-remap: refused by name (a copy would be another inode).
    let err = dump_refused(t.pid(), &tmp.path().join("refused"), &[]);
    assert!(err.contains(&format!("of task {}: {} was unlinked but has 1 other link(s): dump with --link-remap", t.pid(), a.display())), "{err}");
    // With it (as LXC and runc may pass it): a link_remap link carries it,
    // and the restored fd is that very inode again, the link gone.
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let pid = t.pid();
    let o = criu(&["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap(), "--link-remap"]);
    assert!(o.status.success(), "dump --link-remap: {}", text(&o.stderr));
    t.reap();
    let fds: Vec<String> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(fds.iter().any(|n| n.starts_with("link_remap.")), "no link_remap link beside {}: {fds:?}", a.display());
    restore_detached(&imgs);
    let _r = Restored(pid);
    let fd3 = std::fs::metadata(format!("/proc/{pid}/fd/3")).unwrap();
    let other = std::fs::metadata(&b).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((fd3.dev(), fd3.ino(), fd3.nlink()), (other.dev(), other.ino(), 1));
    let left: Vec<String> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("link_remap.") || n == "a").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn manage_cgroups_refuses_a_task_in_other_cgroups_by_name() {
    if !Path::new("/sys/fs/cgroup/freezer/tasks").exists() {
        eprintln!("SKIPPED: no cgroup v1 freezer hierarchy to put the task elsewhere");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = Target::sleeper();
    let group = FreezerGroup::new(t.pid(), "mgcg");
    let rel = format!("/{}", group.dir.file_name().unwrap().to_str().unwrap());
    // CRIU's default mode (soft) carries cgroups too.
    for extra in [&[][..], &["--manage-cgroups=full"], &["--manage-cgroups"], &["--cgroup-props", "x"]] {
        let err = dump_refused(t.pid(), &tmp.path().join("imgs"), extra);
        assert!(err.contains(&format!("task {} is in cgroup freezer:{rel}", t.pid())) && err.contains("--manage-cgroups=ignore"), "{extra:?}: {err}");
    }
    // LXC freezes through the container's freezer and asks for cgroups.
    let mut args = vec!["--freeze-cgroup", group.dir.to_str().unwrap()];
    args.extend_from_slice(LXC_DUMP);
    let err = dump_refused(t.pid(), &tmp.path().join("imgs2"), &args);
    assert!(err.contains(&format!("is in cgroup freezer:{rel}")), "{err}");
    assert_eq!(group.state(), "THAWED", "the freezer is thawed again");
    // ignore: the caller does not want cgroups back; the dump goes on.
    let imgs = tmp.path().join("imgs3");
    std::fs::create_dir(&imgs).unwrap();
    let o = criu(&["dump", "-t", &t.pid().to_string(), "-D", imgs.to_str().unwrap(), "--manage-cgroups=ignore", "-R"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn a_cgroup_root_elsewhere_is_refused_on_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap(), "--cgroup-root", "/surely/not/criu/s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--cgroup-root /surely/not/criu/s"), "{}", text(&o.stderr));
    assert_eq!(state(pid), None, "nothing restored");
    // runc moves criu into the container's cgroups, then names them.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut args = vec!["restore".to_string(), "-d".into(), "-D".into(), imgs.to_str().unwrap().into()];
    for l in own.lines() {
        let mut p = l.splitn(3, ':');
        let (_, ctl, path) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        args.push("--cgroup-root".into());
        args.push(format!("{}:{path}", ctl.split(',').next().unwrap()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = criu(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(state(pid), Some('S'));
    kill_and_reap(pid);
}
