//! `criu dump` of a live process from the outside: the images have the
//! shape CRIU 4.2 gives the same program (compared with the `sleep`
//! fixture), decode with crit, and the task's fate follows -R / -s /
//! default; a failed dump (injected at every stage, or an fd we refuse)
//! leaves the task running exactly as before.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;

use common::{crit, python, serial, FreezerGroup, Target};

fn criu(args: &[&str]) -> (i32, String) {
    let out = common::criu(args);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn criu_env(args: &[&str], env: (&str, &str)) -> (i32, String) {
    let out = common::criu_cmd().args(args).env(env.0, env.1).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/criu-4.2/sleep.crit").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn names(dir: &Path, pid: i32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap().replace(&pid.to_string(), "PID"))
        .filter(|n| !n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

fn statuses(mm: &Value) -> Vec<String> {
    mm["entries"][0]["vmas"].as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap().to_string()).collect()
}

#[test]
fn sleep_dump_leave_running_matches_criu_shape() {
    let _g = serial();
    let t = Target::spawn_group("/usr/bin/sleep", &["100000"]);
    let pid = t.pid();
    let before = t.maps();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let (rc, err) = criu(&["dump", "-t", &pid.to_string(), "-D", d, "-R", "-v4", "-o", "dump.log"]);
    let log = std::fs::read_to_string(tmp.path().join("dump.log")).unwrap_or_default();
    assert_eq!(rc, 0, "{err}\n{log}");
    assert!(log.contains("Dumping finished successfully"), "{log}");

    // Still running, untouched.
    assert!(matches!(t.state(), Some('S')), "{:?}", t.state());
    assert_eq!(t.maps(), before);

    // The same image files CRIU 4.2 wrote for sleep.
    let fx_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/criu-4.2/sleep");
    assert_eq!(names(tmp.path(), pid), names(&fx_dir, 30001));

    // Every image decodes; shapes match the fixture's.
    for n in std::fs::read_dir(tmp.path()).unwrap() {
        let p = n.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if !name.starts_with("pages-") && !name.ends_with(".log") {
            crit(&p);
        }
    }
    let mm = crit(&tmp.path().join(format!("mm-{pid}.img")));
    assert_eq!(statuses(&mm), statuses(&fixture("mm-30001.img.json")));
    let ps = crit(&tmp.path().join("pstree.img"));
    assert_eq!(ps["entries"][0]["pid"], pid);
    assert_eq!(ps["entries"][0]["threads"][0], pid);
    let fdinfo = crit(&tmp.path().join("fdinfo-2.img"));
    assert_eq!(fdinfo["entries"].as_array().unwrap().len(), 3);
    let core = crit(&tmp.path().join(format!("core-{pid}.img")));
    let fx_core = fixture("core-30001.img.json");
    assert_eq!(core["entries"][0]["tc"]["comm"], "sleep");
    assert_eq!(
        core["entries"][0]["tc"]["sigactions"].as_array().unwrap().len(),
        fx_core["entries"][0]["tc"]["sigactions"].as_array().unwrap().len()
    );
    assert_eq!(core["entries"][0]["thread_info"]["gpregs"]["orig_ax"], "0xe6", "stopped in clock_nanosleep");
    let inv = crit(&tmp.path().join("inventory.img"));
    assert_eq!(inv["entries"][0]["img_version"], 2);
    assert_eq!(inv["entries"][0]["fdinfo_per_id"], true);
    let fs = crit(&tmp.path().join(format!("fs-{pid}.img")));
    assert!(fs["entries"][0]["umask"].is_number());
}

#[test]
fn default_dump_kills_and_dash_s_leaves_stopped() {
    let _g = serial();
    let mut t = Target::spawn_group("/usr/bin/sleep", &["100000"]);
    let tmp = tempfile::tempdir().unwrap();
    let (rc, err) = criu(&["dump", "-t", &t.pid().to_string(), "-D", tmp.path().to_str().unwrap()]);
    assert_eq!(rc, 0, "{err}");
    let st = t.child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGKILL));

    let t = Target::spawn_group("/usr/bin/sleep", &["100000"]);
    let tmp = tempfile::tempdir().unwrap();
    let (rc, err) = criu(&["dump", "-t", &t.pid().to_string(), "-D", tmp.path().to_str().unwrap(), "-s"]);
    assert_eq!(rc, 0, "{err}");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(t.state(), Some('T'));
}

#[test]
fn failed_dumps_leave_the_task_running_untouched() {
    let _g = serial();
    let t = Target::spawn_group("/usr/bin/sleep", &["100000"]);
    let pid = t.pid().to_string();
    let before = t.maps();
    for stage in 1..=7 {
        let tmp = tempfile::tempdir().unwrap();
        let (rc, err) = criu_env(&["dump", "-t", &pid, "-D", tmp.path().to_str().unwrap()], ("CRIU_FAULT", &stage.to_string()));
        assert_eq!(rc, 1, "stage {stage}: {err}");
        assert!(err.contains("fault injected"), "stage {stage}: {err}");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(t.state(), Some('S'), "stage {stage}");
        assert_eq!(t.maps(), before, "stage {stage}: maps changed");
    }
}

#[test]
fn an_fd_we_cannot_dump_is_named_and_the_task_survives() {
    let _g = serial();
    // python opens a packet socket on fd 3 with PACKET_QDISC_BYPASS on
    // (263, 20: an option its record has no place for) and sleeps.
    let Some(prog) = python() else { return };
    let t = Target::spawn_group(prog, &["-c", "import socket,time\ns=socket.socket(socket.AF_PACKET,socket.SOCK_DGRAM,0)\nassert s.fileno()==3\ns.setsockopt(263,20,1)\ntime.sleep(100000)"]);
    std::thread::sleep(Duration::from_millis(300));
    let before = t.maps();
    let tmp = tempfile::tempdir().unwrap();
    let (rc, err) = criu(&["dump", "-t", &t.pid().to_string(), "-D", tmp.path().to_str().unwrap()]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("fd 3") && err.contains("PACKET_QDISC_BYPASS"), "{err}");
    assert_eq!(t.state(), Some('S'));
    assert_eq!(t.maps(), before);
}

/// A python task with shared anonymous memory, a pipe holding data, a file
/// at an offset and a signal handler: what each image records, and that
/// Debian's crit (CRIU's own tool) decodes every image we write.
#[test]
fn rich_task_images_hold_its_state_and_decode_with_criu_crit() {
    let _g = serial();
    let Some(prog) = python() else { return };
    let script = "import os,mmap,time,signal\n\
                  m=mmap.mmap(-1, 3*4096, flags=mmap.MAP_SHARED)\n\
                  m[:5]=b'hello'\n\
                  r,w=os.pipe(); os.write(w,b'xyz')\n\
                  f=open('/etc/passwd'); f.seek(10)\n\
                  signal.signal(signal.SIGUSR1, lambda *a: None)\n\
                  os.umask(0o027)\n\
                  open('/tmp/criu-rs-dump-ready','w').close()\n\
                  time.sleep(100000)";
    let _ = std::fs::remove_file("/tmp/criu-rs-dump-ready");
    let t = Target::spawn_group(prog, &["-c", script]);
    for _ in 0..100 {
        if Path::new("/tmp/criu-rs-dump-ready").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = t.pid();
    let tmp = tempfile::tempdir().unwrap();
    let (rc, err) = criu(&["dump", "-t", &pid.to_string(), "-D", tmp.path().to_str().unwrap(), "-R"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(t.state(), Some('S'));

    let pd = crit(&tmp.path().join("pipes-data.img"));
    assert_eq!(pd["entries"][0]["extra"], "eHl6\n", "pipe data 'xyz'");
    let files = crit(&tmp.path().join("files.img"));
    let passwd = files["entries"].as_array().unwrap().iter().find(|e| e["reg"]["name"] == "/etc/passwd").unwrap();
    assert_eq!(passwd["reg"]["pos"], 10);
    let fs = crit(&tmp.path().join(format!("fs-{pid}.img")));
    assert_eq!(fs["entries"][0]["umask"], 0o027);
    let core = crit(&tmp.path().join(format!("core-{pid}.img")));
    // The list skips SIGKILL (9) and SIGSTOP (19): SIGUSR1 (10) is 9th.
    let usr1 = &core["entries"][0]["tc"]["sigactions"][libc::SIGUSR1 as usize - 2];
    assert_ne!(usr1["sigaction"], "0x0", "SIGUSR1 handler recorded");
    let shm: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("pagemap-shmem-"))
        .collect();
    assert_eq!(shm.len(), 1, "one shared memory object");
    let pm = crit(&tmp.path().join(&shm[0]));
    let pages_id = pm["entries"][0]["pages_id"].as_u64().unwrap();
    assert_eq!(pm["entries"][1]["vaddr"], "0x0");
    let pages = std::fs::read(tmp.path().join(format!("pages-{pages_id}.img"))).unwrap();
    assert_eq!(&pages[..5], b"hello");

    // CRIU's own crit (Debian's criu package) decodes every image.
    let crit_bin = Path::new("/usr/bin/crit");
    assert!(crit_bin.exists(), "Debian's crit is missing: scripts/test.sh installs the criu package");
    for n in std::fs::read_dir(tmp.path()).unwrap() {
        let p = n.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("pages-") {
            continue;
        }
        let out = Command::new(crit_bin).args(["decode", "-i"]).arg(&p).output().unwrap();
        assert!(out.status.success(), "crit decode {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn freeze_cgroup_and_timeout() {
    let _g = serial();
    if !Path::new("/sys/fs/cgroup/freezer").is_dir() {
        panic!("this machine kind has a cgroup v1 freezer; /sys/fs/cgroup/freezer is missing");
    }
    let t = Target::spawn_group("/usr/bin/sleep", &["100000"]);
    let pid = t.pid();
    let fz = FreezerGroup::new(pid, "test");
    let before = t.maps();
    let tmp = tempfile::tempdir().unwrap();
    let path = fz.dir.to_str().unwrap().to_string();
    let (rc, err) = criu(&["dump", "-t", &pid.to_string(), "-D", tmp.path().to_str().unwrap(), "-R", "--freeze-cgroup", &path, "--manage-cgroups=ignore"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(fz.state(), "THAWED");
    assert_eq!(t.state(), Some('S'));
    assert_eq!(t.maps(), before);
    let core = crit(&tmp.path().join(format!("core-{pid}.img")));
    assert_eq!(core["entries"][0]["tc"]["comm"], "sleep");

    // Frozen behind our back: seizing can't finish; --timeout ends it.
    fz.set("FROZEN");
    let tmp = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let (rc, err) = criu(&["dump", "-t", &pid.to_string(), "-D", tmp.path().to_str().unwrap(), "--timeout", "1"]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("within 1 s (--timeout)"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    fz.set("THAWED");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(t.state(), Some('S'), "the task survives a timed-out dump");
    assert_eq!(t.maps(), before);

    let (rc, err) = criu(&["dump", "-t", &pid.to_string(), "-D", tmp.path().to_str().unwrap(), "--freeze-cgroup", "/nonexistent"]);
    assert_eq!(rc, 1);
    assert!(err.contains("/nonexistent is not a cgroup v1 freezer"), "{err}");
}

#[test]
fn display_stats_prints_criu_lines() {
    let _g = serial();
    let t = Target::spawn_group("/usr/bin/sleep", &["100000"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = common::criu(&["dump", "-R", "--display-stats", "-t", &t.pid().to_string(), "-D", tmp.path().to_str().unwrap()]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("Displaying dump stats:\nFreezing time: "), "{s}");
    let written = s.lines().find(|l| l.starts_with("Memory pages written: ")).unwrap();
    let stats = crit(&tmp.path().join("stats-dump"));
    let n = stats["entries"][0]["dump"]["pages_written"].as_u64().unwrap();
    assert!(n > 0);
    assert_eq!(written, format!("Memory pages written: {n} ({n:#x})"));
}
