//! Process trees, dumped and restored as CRIU does: `criu dump -t ROOT`
//! takes ROOT and every descendant (zombies included: pid, parent, group,
//! session, name and exit status), `criu restore` recreates them all with
//! the same pids, parents, process groups and sessions, each zombie still a
//! zombie its restored parent reaps with the original status, files shared
//! between tasks shared again. A failed dump leaves every task running as
//! it was; a failed restore leaves nothing.
//!
//! Targets: a python tree made here (root; a zombie that exited with 7; a
//! zombie killed by SIGUSR2; a child leading its own process group with a
//! grandchild; a child writing into a pipe the root reads) and CRIU 4.2's
//! bash-loop fixture (bash with a zombie child). Tests run one at a time.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{crit, log, python, serial, text, tmpdir, wait_gone, FreezerGroup, Target};

const TREE_PY: &str = r#"
import os, sys, time, signal
d = sys.argv[1]
r, w = os.pipe()
def count(name):
    # One fd kept open, fixed-width in-place writes: no file the task
    # holds open ever changes name or size, whenever the dump comes.
    fd = os.open(f"{d}/count-{name}", os.O_WRONLY | os.O_CREAT, 0o644)
    n = 0
    while True:
        n += 1
        os.pwrite(fd, b"%010d" % n, 0)
        time.sleep(0.02)
z1 = os.fork()
if z1 == 0:
    os._exit(7)
z2 = os.fork()
if z2 == 0:
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGUSR2)
    time.sleep(10)
    os._exit(1)
g1 = os.fork()
if g1 == 0:
    os.setpgid(0, 0)
    if os.fork() == 0:
        count("grandchild")
    count("leader")
p1 = os.fork()
if p1 == 0:
    os.close(r)
    os.write(w, b"through the pipe")
    count("writer")
os.close(w)
def reap(s, f):
    a = os.waitpid(z1, 0)[1]
    b = os.waitpid(z2, 0)[1]
    data = os.read(r, 100).decode()
    with open(f"{d}/reaped.tmp", "w") as f: f.write(f"{a} {b} {data}")
    os.rename(f"{d}/reaped.tmp", f"{d}/reaped")
signal.signal(signal.SIGUSR1, reap)
while not all(os.path.exists(f"{d}/count-{n}") for n in ["grandchild", "leader", "writer"]):
    time.sleep(0.01)
while open(f"/proc/{z2}/stat").read().split(")")[1].split()[0] != "Z":
    time.sleep(0.01)
with open(f"{d}/ready.tmp", "w") as f: f.write(f"{z1} {z2} {g1} {p1}")
os.rename(f"{d}/ready.tmp", f"{d}/ready")
count("root")
"#;

/// The python tree, ready; its pids.
struct Tree {
    t: Target,
    root: i32,
    zombie: i32,
    zombie_sig: i32,
    leader: i32,
    grandchild: i32,
    writer: i32,
}

impl Tree {
    fn start(py: &str, dir: &Path) -> Tree {
        let script = dir.join("tree.py");
        std::fs::write(&script, TREE_PY).unwrap();
        let t = Target::spawn(py, &["-I", "-S", script.to_str().unwrap(), dir.to_str().unwrap()], Some(&dir.join("ready")));
        let root = t.pid();
        let ids: Vec<i32> = std::fs::read_to_string(dir.join("ready")).unwrap().split_whitespace().map(|s| s.parse().unwrap()).collect();
        let leader = ids[2];
        let kids = std::fs::read_to_string(format!("/proc/{leader}/task/{leader}/children")).unwrap();
        let grandchild = kids.split_whitespace().next().unwrap().parse().unwrap();
        Tree { t, root, zombie: ids[0], zombie_sig: ids[1], leader, grandchild, writer: ids[3] }
    }

    fn pids(&self) -> Vec<i32> {
        vec![self.root, self.zombie, self.zombie_sig, self.leader, self.grandchild, self.writer]
    }

    fn live(&self) -> Vec<i32> {
        vec![self.root, self.leader, self.grandchild, self.writer]
    }

    /// Dump the tree (it is killed) into `DIR/imgs`, make sure every one
    /// of its processes is gone, and return the images' folder.
    fn dump_and_kill(&mut self, dir: &Path) -> std::path::PathBuf {
        let imgs = dir.join("imgs");
        dump_ok(self.root, &imgs, &[]);
        self.t.reap();
        kill_all(&self.pids());
        imgs
    }
}

/// Per pid: (state, ppid, pgid, sid, tracer, comm, exit code field).
type Seen = BTreeMap<i32, (char, i32, i32, i32, i32, String, i64)>;

fn seen(pids: &[i32]) -> Seen {
    pids.iter()
        .filter_map(|&p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            let comm = head.split_once(" (")?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            let tracer = status.lines().find_map(|l| l.strip_prefix("TracerPid:"))?.trim().parse().ok()?;
            // Caught on the CPU, or writing its counter, counts as running on.
            let state = match f[0].chars().next()? {
                'R' | 'D' => 'S',
                c => c,
            };
            Some((p, (state, f[1].parse().ok()?, f[2].parse().ok()?, f[3].parse().ok()?, tracer, comm, f[49].parse().ok()?)))
        })
        .collect()
}

fn count(dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(dir.join(format!("count-{name}"))).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Every live task's counter moves on within 3 s.
fn all_counting(dir: &Path) {
    let names = ["root", "leader", "grandchild", "writer"];
    let before: Vec<u64> = names.iter().map(|n| count(dir, n)).collect();
    let t0 = Instant::now();
    loop {
        let now: Vec<u64> = names.iter().map(|n| count(dir, n)).collect();
        if now.iter().zip(&before).all(|(n, b)| n > b) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "counters stuck: {names:?} {before:?} then {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kill every pid (ours or reparented to us: we are a subreaper) and wait
/// until none is left, zombies reaped.
fn kill_all(pids: &[i32]) {
    for &p in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
    }
    gone(pids, Duration::from_secs(5));
}

/// Wait until no pid of `pids` exists (reaping what is ours); panics after `t`.
fn gone(pids: &[i32], t: Duration) {
    let left = wait_gone(pids, t);
    assert!(left.is_empty(), "still there: {:?}", seen(&left));
}

/// The restored tree: killed and reaped when the test ends.
struct Restored(Vec<i32>);

impl Drop for Restored {
    fn drop(&mut self) {
        kill_all(&self.0);
    }
}

fn dump(pid: i32, imgs: &Path, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::fs::create_dir_all(imgs).unwrap();
    let pid = pid.to_string();
    let mut args = vec!["dump", "-t", &pid, "-D", imgs.to_str().unwrap(), "-v4", "-o", "dump.log"];
    args.extend_from_slice(extra);
    common::criu_cmd().args(&args).envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap()
}

fn dump_ok(pid: i32, imgs: &Path, extra: &[&str]) {
    let o = dump(pid, imgs, extra, &[]);
    assert!(o.status.success(), "dump: {}\n{}", text(&o.stderr), std::fs::read_to_string(imgs.join("dump.log")).unwrap_or_default());
}

fn restore(imgs: &Path, env: &[(&str, &str)], extra: &[&str]) -> std::process::Output {
    let mut args = vec!["restore", "-d", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log"];
    args.extend_from_slice(extra);
    common::criu_cmd()
        .args(&args)
        .env_remove("CRIU_FAULT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// SIGUSR1 makes the root reap its zombies and read the pipe; what it got.
fn reaped(dir: &Path, root: i32) -> String {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(root), nix::sys::signal::Signal::SIGUSR1).unwrap();
    let f = dir.join("reaped");
    let t0 = Instant::now();
    while !f.exists() {
        assert!(t0.elapsed() < Duration::from_secs(3), "the root did not reap its zombies: {:?}", seen(&[root]));
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::read_to_string(f).unwrap()
}

/// What the zombies' wait statuses and the pipe must read as.
fn want_reaped() -> String {
    format!("{} {} through the pipe", 7 << 8, libc::SIGUSR2)
}

#[test]
fn dump_leave_running_records_the_whole_tree() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tmpdir();
    let tr = Tree::start(py, tmp.path());
    let before = seen(&tr.pids());
    assert_eq!(before.len(), 6, "{before:?}");
    assert_eq!(before[&tr.zombie].0, 'Z');
    assert_eq!(before[&tr.zombie_sig].0, 'Z');
    let imgs = tmp.path().join("imgs");
    dump_ok(tr.root, &imgs, &["-R"]);

    // Left running exactly as it was: same states, parents, groups, untraced.
    assert_eq!(seen(&tr.pids()), before);
    all_counting(tmp.path());

    // pstree.img: every task, parents first, with its group and session.
    let ps = crit(&imgs.join("pstree.img"));
    let entries: Vec<(i64, i64, i64, i64)> = ps["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["pid"].as_i64().unwrap(), e["ppid"].as_i64().unwrap(), e["pgid"].as_i64().unwrap(), e["sid"].as_i64().unwrap()))
        .collect();
    assert_eq!(entries.len(), 6, "{entries:?}");
    assert_eq!(entries[0], (tr.root.into(), 0, tr.root.into(), tr.root.into()));
    for (pid, ppid, pgid, sid) in &entries[1..] {
        let b = &before[&(*pid as i32)];
        assert_eq!((*ppid, *pgid, *sid), (i64::from(b.1), i64::from(b.2), i64::from(b.3)), "task {pid}");
        let parent_at = entries.iter().position(|e| e.0 == *ppid).unwrap();
        let at = entries.iter().position(|e| e.0 == *pid).unwrap();
        assert!(parent_at < at, "{entries:?}");
    }
    // Zombies: a task core only, dead, with the wait status.
    for (z, code) in [(tr.zombie, 7 << 8), (tr.zombie_sig, libc::SIGUSR2)] {
        let core = crit(&imgs.join(format!("core-{z}.img")))["entries"][0].clone();
        assert_eq!(core["tc"]["task_state"], 2, "{core}");
        assert_eq!(core["tc"]["exit_code"], code, "{core}");
        assert_eq!(core["tc"]["comm"].as_str(), Some(before[&z].5.as_str()), "{core}");
        assert!(core.get("thread_info").is_none(), "{core}");
        assert!(!imgs.join(format!("mm-{z}.img")).exists() && !imgs.join(format!("ids-{z}.img")).exists());
    }
    // Each live task its own ids and fd table; the pipe is one description.
    let mut files_ids = Vec::new();
    for p in tr.live() {
        let ids = crit(&imgs.join(format!("ids-{p}.img")))["entries"][0].clone();
        files_ids.push(ids["files_id"].as_u64().unwrap());
        assert!(imgs.join(format!("mm-{p}.img")).exists() && imgs.join(format!("core-{p}.img")).exists());
    }
    files_ids.sort_unstable();
    files_ids.dedup();
    assert_eq!(files_ids.len(), 4, "{files_ids:?}");
    let files = crit(&imgs.join("files.img"));
    let pipes: Vec<&serde_json::Value> = files["entries"].as_array().unwrap().iter().filter(|e| e["type"] == "PIPE").collect();
    // Root: read end; writer: write end; leader, grandchild: both ends.
    assert_eq!(pipes.len(), 2, "{pipes:?}");
    kill_all(&tr.pids());
    drop(tr.t);
}

#[test]
fn dump_and_restore_recreate_the_tree() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tmpdir();
    let mut tr = Tree::start(py, tmp.path());
    let pids = tr.pids();
    let before = seen(&pids);
    let imgs = tr.dump_and_kill(tmp.path());

    let o = restore(&imgs, &[], &[]);
    let _r = Restored(pids.clone());
    assert!(o.status.success(), "restore: {}\n{}", text(&o.stderr), log(&imgs, "restore.log"));
    // Same pids, parents (the root's is now us, its reaper), groups,
    // sessions, names; the zombies still zombies with their status.
    let mut after = seen(&pids);
    let mut want = before.clone();
    for m in [&mut after, &mut want] {
        if let Some(r) = m.get_mut(&tr.root) {
            r.1 = 0;
        }
    }
    assert_eq!(after, want);
    all_counting(tmp.path());
    // The restored root reaps its zombies and gets their statuses; the
    // pipe its child wrote into still holds the data.
    assert_eq!(reaped(tmp.path(), tr.root), want_reaped());
    assert!(seen(&[tr.zombie, tr.zombie_sig]).is_empty());
    all_counting(tmp.path());
}

/// `--log-pid`: every restoring process logs to restore.log.PID, its own
/// pid only (a grandchild's log once got its parent's pid too).
#[test]
fn log_pid_names_each_log_by_its_pid() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tmpdir();
    let mut tr = Tree::start(py, tmp.path());
    let pids = tr.pids();
    let imgs = tr.dump_and_kill(tmp.path());
    let o = restore(&imgs, &[], &["--log-pid"]);
    let _r = Restored(pids.clone());
    assert!(o.status.success(), "restore: {}\n{}", text(&o.stderr), log(&imgs, "restore.log"));
    let logs: Vec<String> = std::fs::read_dir(&imgs)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("restore.log.").map(str::to_string))
        .collect();
    assert!(logs.iter().all(|s| s.parse::<i32>().is_ok()), "logs named by more than one pid: {logs:?}");
    for p in [tr.leader, tr.grandchild, tr.writer] {
        assert!(logs.contains(&p.to_string()), "no restore.log.{p}: {logs:?}");
    }
}

#[test]
fn restore_twice_from_one_dump() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tmpdir();
    let mut tr = Tree::start(py, tmp.path());
    let pids = tr.pids();
    let imgs = tr.dump_and_kill(tmp.path());
    for round in 0..2 {
        let o = restore(&imgs, &[], &[]);
        let r = Restored(pids.clone());
        assert!(o.status.success(), "restore {round}: {}\n{}", text(&o.stderr), log(&imgs, "restore.log"));
        assert_eq!(seen(&[tr.zombie])[&tr.zombie].0, 'Z');
        all_counting(tmp.path());
        drop(r);
    }
}

#[test]
fn failed_dumps_leave_the_tree_running() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tmpdir();
    let tr = Tree::start(py, tmp.path());
    let before = seen(&tr.pids());
    for stage in 1..=7 {
        let imgs = tmp.path().join(format!("imgs-{stage}"));
        let o = dump(tr.root, &imgs, &[], &[("CRIU_FAULT", &stage.to_string())]);
        let err = text(&o.stderr);
        assert!(!o.status.success() && err.contains("fault injected"), "stage {stage}: {err}");
        assert_eq!(seen(&tr.pids()), before, "stage {stage}");
        all_counting(tmp.path());
    }
    kill_all(&tr.pids());
    drop(tr.t);
}

#[test]
fn failed_restores_leave_nothing() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tmpdir();
    let mut tr = Tree::start(py, tmp.path());
    let pids = tr.pids();
    let imgs = tr.dump_and_kill(tmp.path());
    // The restorer fails (in every task: MOVE, step 6), or the cleaner
    // does, or post-restore/pre-resume scripts while the tree is held.
    let script = tmp.path().join("fail.sh");
    std::fs::write(&script, "#!/bin/sh\n[ \"$CRTOOLS_SCRIPT_ACTION\" = \"$FAIL_AT\" ] && exit 3\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cleaner = criu::restorer::proto::step::CLEANER.to_string();
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec![("CRIU_RESTORER_FAULT", "6")], vec![]),
        (vec![("CRIU_RESTORER_FAULT", cleaner.as_str())], vec![]),
        (vec![("FAIL_AT", "post-restore")], vec!["--action-script", script.to_str().unwrap()]),
        (vec![("FAIL_AT", "pre-resume")], vec!["--action-script", script.to_str().unwrap()]),
    ];
    for (env, extra) in cases {
        let o = restore(&imgs, &env, &extra);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{env:?}: restore succeeded");
        let want = match env[0] {
            ("CRIU_RESTORER_FAULT", "6") => "step 6 (moving premapped memory into place)".to_string(),
            ("CRIU_RESTORER_FAULT", _) => format!("step {cleaner} "),
            (_, at) => format!("restore aborted at {at}; the tree of task {} was killed", tr.root),
        };
        assert!(err.contains(&want), "{env:?}: {err}");
        gone(&pids, Duration::from_secs(5));
    }
    // criu itself dies while the tree is held (and, earlier, while the
    // tasks wait for it): its tasks die with it.
    let killer = tmp.path().join("kill.sh");
    std::fs::write(&killer, "#!/bin/sh\n[ \"$CRTOOLS_SCRIPT_ACTION\" = \"$KILL_AT\" ] && kill -9 $PPID\nexit 0\n").unwrap();
    std::fs::set_permissions(&killer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for at in ["post-restore", "pre-resume"] {
        let o = restore(&imgs, &[("KILL_AT", at)], &["--action-script", killer.to_str().unwrap()]);
        assert_eq!(o.status.code(), None, "criu was to be killed at {at}: {}", text(&o.stderr));
        gone(&pids, Duration::from_secs(5));
    }
    // One task (the grandchild) fails on its own, after the whole tree is
    // forked: its last page is gone (its vDSO, read before the fork, lies
    // below its stack).
    let pm = crit(&imgs.join(format!("pagemap-{}.img", tr.grandchild)));
    let pages = imgs.join(format!("pages-{}.img", pm["entries"][0]["pages_id"]));
    let saved = std::fs::read(&pages).unwrap();
    std::fs::write(&pages, &saved[..saved.len() - 4096]).unwrap();
    let o = restore(&imgs, &[], &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains(&format!("task {}: ", tr.grandchild)), "{err}");
    gone(&pids, Duration::from_secs(5));
    std::fs::write(&pages, saved).unwrap();
    // The images are still good: a restore without faults works.
    let o = restore(&imgs, &[], &[]);
    let _r = Restored(pids.clone());
    assert!(o.status.success(), "restore after the failures: {}\n{}", text(&o.stderr), log(&imgs, "restore.log"));
}

#[test]
fn a_taken_pid_of_a_child_is_refused() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tmpdir();
    let mut tr = Tree::start(py, tmp.path());
    let pids = tr.pids();
    let imgs = tr.dump_and_kill(tmp.path());
    // Rewrite the grandchild's pid in pstree.img to one that is taken (ours).
    let me = std::process::id();
    let dir = criu::images::ImageDir::open(&imgs).unwrap();
    let mut items: Vec<criu::images::pb::PstreeEntry> =
        criu::images::ImageReader::open_kind(&dir, "pstree.img", criu::images::kind::kinds::pstree()).unwrap().all().unwrap();
    let at = items.iter().position(|e| e.pid == tr.grandchild as u32).unwrap();
    for f in ["core", "ids", "mm", "fs", "pagemap"] {
        let _ = std::fs::rename(imgs.join(format!("{f}-{}.img", tr.grandchild)), imgs.join(format!("{f}-{me}.img")));
    }
    items[at].pid = me;
    items[at].threads = vec![me];
    let mut w = criu::images::ImageWriter::create(&dir, "pstree.img", criu::images::kind::kinds::pstree()).unwrap();
    for e in &items {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    let o = restore(&imgs, &[], &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains(&format!("pid {me} is taken")), "{err}");
    gone(&pids, Duration::from_secs(5));
}

const BASH_PID: i32 = 30101;
const BASH_ZOMBIE: i32 = 30122;
const BASH_FILE: &str = "/tmp/criu-fixture-bash-loop";


fn bash_count() -> u64 {
    std::fs::read_to_string(BASH_FILE).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn bash_loop_fixture_keeps_counting() {
    let _g = serial();
    common::subreaper();
    for p in [BASH_PID, BASH_ZOMBIE] {
        assert!(!Path::new(&format!("/proc/{p}")).exists(), "fixture pid {p} is taken");
    }
    let Some(dir) = common::fixture_copy("bash-loop") else { return };
    let _ = std::fs::remove_file(BASH_FILE);
    let o = restore(dir.path(), &[], &[]);
    let _r = Restored(vec![BASH_PID, BASH_ZOMBIE]);
    assert!(o.status.success(), "restore: {}\n{}", text(&o.stderr), log(dir.path(), "restore.log"));
    let st = seen(&[BASH_PID]);
    assert_eq!(st[&BASH_PID].2, BASH_PID, "{st:?}");
    assert_eq!(st[&BASH_PID].3, BASH_PID, "{st:?}");
    assert_eq!(st[&BASH_PID].5, "bash", "{st:?}");
    // The zombie came back as bash's child (bash reaps it at its next
    // SIGCHLD, which was pending in the image).
    let l = log(dir.path(), "restore.log");
    assert!(l.contains("2 task(s), 1 zombie(s)"), "{l}");
    let t0 = Instant::now();
    while bash_count() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(3), "bash wrote nothing: {:?}", seen(&[BASH_PID]));
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = bash_count();
    while bash_count() < first + 3 {
        assert!(t0.elapsed() < Duration::from_secs(5), "bash stopped counting at {}", bash_count());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen(&[BASH_ZOMBIE]).is_empty() || seen(&[BASH_ZOMBIE])[&BASH_ZOMBIE].0 == 'Z');
}

/// --freeze-cgroup: the tree is found and seized while frozen, then
/// thawed; a live task outside the group is refused by name and the tree
/// runs on.
#[test]
fn freezer_cgroup_takes_the_tree() {
    let Some(py) = python() else { return };
    let _g = serial();
    assert!(Path::new("/sys/fs/cgroup/freezer").is_dir(), "this machine kind has a cgroup v1 freezer");
    let tmp = tmpdir();
    let tr = Tree::start(py, tmp.path());
    let before = seen(&tr.pids());
    let fz = FreezerGroup::with(&tr.live(), "tree");
    let imgs = tmp.path().join("imgs");
    dump_ok(tr.root, &imgs, &["-R", "--freeze-cgroup", fz.dir.to_str().unwrap(), "--manage-cgroups=ignore"]);
    assert_eq!(fz.state(), "THAWED");
    assert_eq!(seen(&tr.pids()), before);
    assert_eq!(crit(&imgs.join("pstree.img"))["entries"].as_array().unwrap().len(), 6);
    all_counting(tmp.path());

    // The grandchild leaves the group: the dump must not take it.
    std::fs::write("/sys/fs/cgroup/freezer/cgroup.procs", tr.grandchild.to_string()).unwrap();
    let o = dump(tr.root, &tmp.path().join("imgs2"), &["-R", "--freeze-cgroup", fz.dir.to_str().unwrap(), "--manage-cgroups=ignore"], &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains(&format!("task {} ", tr.grandchild)) && err.contains("not in the freezer cgroup"), "{err}");
    assert_eq!(fz.state(), "THAWED");
    assert_eq!(seen(&tr.pids()), before);
    all_counting(tmp.path());
    drop(fz);
    kill_all(&tr.pids());
    drop(tr.t);
}

/// A process group whose leader left it for another group (the leader
/// lives on, so no helper can take its pid): the restore refuses by name
/// before creating anything.
#[test]
fn a_group_without_its_leader_is_refused_by_name() {
    let Some(py) = python() else { return };
    let _g = serial();
    let tmp = tmpdir();
    let script = tmp.path().join("group.py");
    std::fs::write(
        &script,
        r#"
import os, sys, time
d = sys.argv[1]
if os.fork() == 0:
    os.setpgid(0, 0)
    if os.fork() == 0:
        while True: time.sleep(1)
    time.sleep(0.1)
    os.setpgid(0, os.getppid())
    open(f"{d}/ready", "w").write("1")
    while True: time.sleep(1)
while True: time.sleep(1)
"#,
    )
    .unwrap();
    let mut t = Target::spawn(py, &["-I", "-S", script.to_str().unwrap(), tmp.path().to_str().unwrap()], Some(&tmp.path().join("ready")));
    let root = t.pid();
    let pids: Vec<i32> = std::iter::once(root)
        .chain(
            std::fs::read_to_string(format!("/proc/{root}/task/{root}/children")).unwrap().split_whitespace().map(|c| c.parse().unwrap()),
        )
        .collect();
    let child = pids[1];
    let grandchild: i32 = std::fs::read_to_string(format!("/proc/{child}/task/{child}/children")).unwrap().trim().parse().unwrap();
    let all = [root, child, grandchild];
    let imgs = tmp.path().join("imgs");
    dump_ok(root, &imgs, &[]);
    t.reap();
    kill_all(&all);
    let o = restore(&imgs, &[], &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&format!("task {grandchild} is in process group {child}, whose leader {child} left it for group {root}")), "{err}");
    gone(&all, Duration::from_secs(2));
}
