//! `criu service` authorizes each request by its caller's credentials
//! (SO_PEERCRED): an unprivileged client (uid 65534, through
//! tests/helpers/rpc_client.py run with that uid) may dump and restore its
//! own tasks only, with its own file permissions, and gets EPERM naming
//! its uid and what was refused otherwise; a root client keeps every
//! right (our raw client and Debian's pycriu).

mod common;

use common::{kill_and_reap, serial, state_tracer as state, subreaper, Target};

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criu::images::kind::kinds;
use criu::images::pb::CoreEntry;
use criu::images::{ImageDir, ImageReader, ImageWriter};
use criu::rpc::pb::{CriuOpts, CriuReq, CriuReqType, CriuResp};
use prost::Message;

const CRIU: &str = env!("CARGO_BIN_EXE_criu");
const NOBODY: u32 = 65534;
/// The client moves the dirs it opens to fds 100, 101, ...
const DIR_FD: i32 = 100;

/// `criu service` run as root in a directory everyone may enter.
struct Service {
    child: Child,
    sock: PathBuf,
    base: tempfile::TempDir,
}

impl Service {
    fn start() -> Service {
        subreaper();
        criu::sys::fd::cloexec_from(3).unwrap();
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sock = base.path().join("criu.sock");
        let (rd, wr) = nix::unistd::pipe().unwrap();
        let child = Command::new(CRIU)
            .args(["--no-default-config", "service", "--address", sock.to_str().unwrap()])
            .args(["--status-fd", &wr.as_raw_fd().to_string()])
            .env_remove("CRIU_CONFIG_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(wr);
        let mut b = [1u8; 1];
        assert_eq!(nix::unistd::read(rd.as_fd(), &mut b).unwrap(), 1, "the service never said it was ready");
        Service { child, sock, base }
    }

    /// A new directory in the service's, owned by `uid` with `mode`.
    fn dir(&self, name: &str, uid: u32, mode: u32) -> PathBuf {
        let d = self.base.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        d
    }

    /// Send `req` as user `uid` (0: root) with `dirs` open at fds 100...;
    /// Err with the client's reason when it could not open a dir.
    fn request(&self, uid: u32, req: &CriuReq, dirs: &[&Path]) -> Result<Option<CriuResp>, String> {
        let py = client_python().expect("python3 (checked by the test)");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/rpc_client.py");
        let hex: String = req.encode_to_vec().iter().map(|b| format!("{b:02x}")).collect();
        let mut cmd = Command::new(py);
        cmd.arg(script).arg(&self.sock).arg(hex).args(dirs).stdin(Stdio::null()).current_dir("/");
        if uid != 0 {
            cmd.uid(uid).gid(uid);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() == Some(3) {
            return Err(err);
        }
        assert!(out.status.success(), "rpc_client.py as uid {uid}: {err}");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let bytes: Vec<u8> = (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect();
        Ok((!bytes.is_empty()).then(|| CriuResp::decode(bytes.as_slice()).unwrap()))
    }

    /// `request` that must get an answer.
    fn ask(&self, uid: u32, req: &CriuReq, dirs: &[&Path]) -> CriuResp {
        self.request(uid, req, dirs).unwrap().expect("the service answered nothing")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A python3 that uid 65534 can run (root's pyenv is out of its reach).
fn client_python() -> Option<&'static str> {
    static PY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let runs = |p: &str| Command::new(p).args(["-c", "pass"]).uid(NOBODY).gid(NOBODY).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        ["/usr/bin/python3"].into_iter().map(String::from).chain(common::python().map(String::from)).find(|p| runs(p))
    })
    .as_deref()
}

fn python_or_skip() -> bool {
    let found = client_python().is_some();
    if !found {
        println!("skipping: no python3 that uid {NOBODY} can run");
    }
    found
}

/// The tests run one at a time against a service of their own, when a
/// python the client's uid can run exists (None: skipped, said why).
fn started() -> Option<(std::sync::MutexGuard<'static, ()>, Service)> {
    let g = serial();
    python_or_skip().then(|| (g, Service::start()))
}

fn req(ty: CriuReqType, opts: CriuOpts) -> CriuReq {
    CriuReq { r#type: ty as i32, opts: Some(opts), ..Default::default() }
}

/// Options naming the client's first dir (fd 100) as images and work dir.
fn in_dir(log: &str) -> CriuOpts {
    CriuOpts { images_dir_fd: DIR_FD, log_level: Some(4), log_file: Some(log.into()), ..Default::default() }
}

fn dump_req(pid: i32) -> CriuReq {
    req(CriuReqType::Dump, CriuOpts { pid: Some(pid), ..in_dir("dump.log") })
}

fn restore_req() -> CriuReq {
    req(CriuReqType::Restore, in_dir("restore.log"))
}

fn errmsg(r: &CriuResp) -> &str {
    r.cr_errmsg.as_deref().unwrap_or("")
}

/// A refusal: EPERM, naming the client's uid and `what`.
fn assert_denied(r: &CriuResp, what: &str) {
    assert!(!r.success, "granted: {r:?}");
    assert_eq!(r.cr_errno, Some(libc::EPERM), "{}", errmsg(r));
    assert!(errmsg(r).contains(&format!("RPC client uid {NOBODY}")), "{}", errmsg(r));
    assert!(errmsg(r).contains(what), "{what:?} not in {}", errmsg(r));
}

/// `sleep 100000` run by uid 65534 in a session of its own.
fn nobody_sleeper() -> Target {
    subreaper();
    criu::sys::fd::cloexec_from(3).unwrap();
    let child = Command::new("setsid")
        .args(["/usr/bin/sleep", "100000"])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .spawn()
        .unwrap();
    let t = Target { child };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(format!("/proc/{}/comm", t.pid())).unwrap_or_default().starts_with("sleep") {
        assert!(Instant::now() < deadline, "sleep did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    t
}

/// The credentials /proc/PID/status shows.
fn creds(pid: i32) -> Vec<String> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let keys = ["Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:"];
    st.lines().filter(|l| keys.iter().any(|k| l.starts_with(k))).map(str::to_string).collect()
}

fn uids(pid: i32) -> String {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn log_of(d: &Path, name: &str) -> String {
    std::fs::read_to_string(d.join(name)).unwrap_or_default()
}

#[test]
fn a_user_cannot_dump_a_root_task_and_the_task_runs_on() {
    let Some((_g, svc)) = started() else { return };
    let dir = svc.dir("imgs", NOBODY, 0o700);
    let t = Target::sleeper();
    let pid = t.pid();
    let r = svc.ask(NOBODY, &dump_req(pid), &[&dir]);
    assert_denied(&r, &format!("dump task {pid}: its real, effective and saved uids are 0 0 0"));
    assert_eq!(r.dump.and_then(|d| d.restored), Some(false));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state(pid), Some(('S', 0)), "the root task must be untouched");
    assert_eq!(listing(&dir), ["dump.log"], "no image of a refused dump");
    // The log is the client's, and names the refusal.
    assert_eq!(std::fs::metadata(dir.join("dump.log")).unwrap().uid(), NOBODY);
    assert!(log_of(&dir, "dump.log").contains(&format!("RPC client uid {NOBODY}")), "{}", log_of(&dir, "dump.log"));

    // WAIT_PID for someone else's task: refused the same way.
    let w = svc.ask(NOBODY, &CriuReq { r#type: CriuReqType::WaitPid as i32, pid: Some(pid as u32), ..Default::default() }, &[]);
    assert_denied(&w, &format!("wait for task {pid}: its real uid is 0"));
    assert_eq!(state(pid), Some(('S', 0)));
}

#[test]
fn a_user_dumps_and_restores_its_own_task_with_its_own_files() {
    let Some((_g, svc)) = started() else { return };
    let dir = svc.dir("imgs", NOBODY, 0o700);
    let mut t = nobody_sleeper();
    let pid = t.pid();
    let before = creds(pid);
    let r = svc.ask(NOBODY, &dump_req(pid), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "dump.log"));
    t.reap();
    assert!(listing(&dir).contains(&format!("core-{pid}.img")), "{:?}", listing(&dir));
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap();
        let m = f.metadata().unwrap();
        assert_eq!((m.uid(), m.gid()), (NOBODY, NOBODY), "{} is not the client's", f.path().display());
    }

    let r = svc.ask(NOBODY, &restore_req(), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "restore.log"));
    assert_eq!(r.restore.map(|x| x.pid), Some(pid));
    assert_eq!(uids(pid), "65534 65534 65534 65534");
    assert_eq!(creds(pid), before, "the restored task has exactly its credentials");
    assert!(matches!(state(pid), Some(('S', 0))), "{:?}", state(pid));
    assert_eq!(std::fs::metadata(dir.join("restore.log")).unwrap().uid(), NOBODY);
    kill_and_reap(pid);
}

/// What each fd of `pid` is: its path, or its kind for a pipe or socket.
fn fd_kinds(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let t = std::fs::read_link(e.path()).unwrap().to_string_lossy().into_owned();
            (e.file_name().to_string_lossy().parse().unwrap(), t.split(":[").next().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_user_restores_its_files_pipes_and_sockets() {
    let Some((_g, svc)) = started() else { return };
    let dir = svc.dir("imgs", NOBODY, 0o700);
    let work = svc.dir("work", NOBODY, 0o700);
    let script = "import os, socket, time, sys\n\
        os.chdir(sys.argv[1])\n\
        f = open('data.txt', 'w+'); f.write('hello'); f.flush()\n\
        r, w = os.pipe(); os.write(w, b'piped')\n\
        a, b = socket.socketpair(); a.send(b'queued')\n\
        l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))\n\
        open('ready', 'w').close()\n\
        time.sleep(100000)\n";
    subreaper();
    criu::sys::fd::cloexec_from(3).unwrap();
    let child = Command::new("setsid")
        .args([client_python().unwrap(), "-c", script, work.to_str().unwrap()])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .spawn()
        .unwrap();
    let mut t = Target { child };
    let pid = t.pid();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !work.join("ready").exists() {
        assert!(Instant::now() < deadline, "the program never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = (fd_kinds(pid), creds(pid));
    let r = svc.ask(NOBODY, &dump_req(pid), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "dump.log"));
    t.reap();
    let r = svc.ask(NOBODY, &restore_req(), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "restore.log"));
    assert_eq!((fd_kinds(pid), creds(pid)), before);
    kill_and_reap(pid);
}

#[test]
fn a_dir_the_user_cannot_write_stays_untouched() {
    let Some((_g, svc)) = started() else { return };
    let t = nobody_sleeper();
    let pid = t.pid();
    // Root's, readable by all: the client opens it, the dump can't write there.
    let ro = svc.dir("readonly", 0, 0o755);
    let r = svc.ask(NOBODY, &dump_req(pid), &[&ro]);
    assert!(!r.success);
    assert!(errmsg(&r).contains("Permission denied"), "{}", errmsg(&r));
    assert!(listing(&ro).is_empty(), "{:?}", listing(&ro));
    assert_eq!(state(pid), Some(('S', 0)));

    // Root's only: the client can't open it, and can't name it either.
    let secret = svc.dir("rootonly", 0, 0o700);
    assert!(svc.request(NOBODY, &dump_req(pid), &[&secret]).unwrap_err().contains("Permission denied"));
    let by_path = req(CriuReqType::Dump, CriuOpts { pid: Some(pid), images_dir: Some(secret.to_str().unwrap().into()), log_file: Some("dump.log".into()), ..Default::default() });
    let r = svc.ask(NOBODY, &by_path, &[]);
    assert!(!r.success);
    assert!(errmsg(&r).contains("Permission denied"), "{}", errmsg(&r));
    assert!(listing(&secret).is_empty(), "{:?}", listing(&secret));
    assert_eq!(state(pid), Some(('S', 0)));

    // Root may: the same dump (leave_running) by a root client works.
    let root_dir = svc.dir("root-imgs", 0, 0o700);
    let r = svc.ask(0, &req(CriuReqType::Dump, CriuOpts { pid: Some(pid), leave_running: Some(true), ..in_dir("dump.log") }), &[&root_dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&root_dir, "dump.log"));
    assert_eq!(state(pid), Some(('S', 0)));
}

/// Rewrite every core image of `dir` with `f` (as root, as a forger would).
fn forge(dir: &Path, pid: i32, f: impl Fn(&mut criu::images::pb::CredsEntry)) {
    let d = ImageDir::open(dir).unwrap();
    let name = format!("core-{pid}.img");
    let mut core: CoreEntry = ImageReader::open_kind(&d, &name, kinds::core()).unwrap().all().unwrap().remove(0);
    f(core.thread_core.as_mut().unwrap().creds.as_mut().unwrap());
    std::fs::remove_file(dir.join(&name)).unwrap();
    let mut w = ImageWriter::create(&d, &name, kinds::core()).unwrap();
    w.write(&core).unwrap();
    w.finish().unwrap();
    std::os::unix::fs::chown(dir.join(&name), Some(NOBODY), Some(NOBODY)).unwrap();
}

#[test]
fn forged_images_claiming_root_are_refused_to_a_user_not_to_root() {
    let Some((_g, svc)) = started() else { return };
    let dir = svc.dir("imgs", NOBODY, 0o700);
    let mut t = nobody_sleeper();
    let pid = t.pid();
    let r = svc.ask(NOBODY, &dump_req(pid), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "dump.log"));
    t.reap();

    forge(&dir, pid, |c| c.cap_eff = vec![1 << 21, 0]);
    let r = svc.ask(NOBODY, &restore_req(), &[&dir]);
    assert_denied(&r, &format!("restore task {pid} (core-{pid}.img): its effective capabilities hold CAP_SYS_ADMIN"));
    assert!(state(pid).is_none(), "nothing may be restored");

    forge(&dir, pid, |c| {
        c.cap_eff = vec![0, 0];
        (c.uid, c.euid, c.suid, c.fsuid) = (0, 0, 0, 0);
    });
    let r = svc.ask(NOBODY, &restore_req(), &[&dir]);
    assert_denied(&r, &format!("restore task {pid} (core-{pid}.img): it claims uids [0, 0, 0, 0]"));
    assert_eq!(r.restore.map(|x| x.pid), Some(-1));
    assert!(state(pid).is_none(), "nothing may be restored");
    assert!(log_of(&dir, "restore.log").contains(&format!("RPC client uid {NOBODY}")));

    // Root may restore what it likes: the task comes back as uid 0.
    let r = svc.ask(0, &req(CriuReqType::Restore, in_dir("root-restore.log")), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "root-restore.log"));
    assert_eq!(r.restore.map(|x| x.pid), Some(pid));
    assert_eq!(uids(pid), "0 0 0 0");
    kill_and_reap(pid);
}

#[test]
fn other_requests_of_a_user_run_with_its_rights() {
    let Some((_g, svc)) = started() else { return };
    let r = svc.ask(NOBODY, &CriuReq { r#type: CriuReqType::Version as i32, ..Default::default() }, &[]);
    assert!(r.success, "{}", errmsg(&r));
    assert_eq!(r.version.map(|v| (v.major_number, v.minor_number)), Some((4, 2)));

    // CHECK logs into the client's dir, and only there.
    let dir = svc.dir("check", NOBODY, 0o700);
    let r = svc.ask(NOBODY, &req(CriuReqType::Check, in_dir("check.log")), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "check.log"));
    assert_eq!(std::fs::metadata(dir.join("check.log")).unwrap().uid(), NOBODY);
    let ro = svc.dir("check-ro", 0, 0o755);
    let r = svc.ask(NOBODY, &req(CriuReqType::Check, in_dir("check.log")), &[&ro]);
    assert!(!r.success);
    assert!(listing(&ro).is_empty());

    // Options that would run programs or join namespaces as root.
    let t = nobody_sleeper();
    let conf = svc.base.path().join("evil.conf");
    std::fs::write(&conf, "action-script /bin/true\n").unwrap();
    let opts = CriuOpts { pid: Some(t.pid()), config_file: Some(conf.to_str().unwrap().into()), ..in_dir("dump.log") };
    let r = svc.ask(NOBODY, &req(CriuReqType::Dump, opts), &[&dir]);
    assert_denied(&r, "use option action-script");
    assert_eq!(state(t.pid()), Some(('S', 0)));
    let r = svc.ask(NOBODY, &req(CriuReqType::Restore, CriuOpts { shell_job: Some(true), ..in_dir("restore.log") }), &[&dir]);
    assert_denied(&r, "use option shell-job on restore");

    // WAIT_PID of a root task: refused to the user; root waits as before
    // (the task is no child of the worker: ECHILD).
    let root_task = Target::sleeper();
    let wait = CriuReq { r#type: CriuReqType::WaitPid as i32, pid: Some(root_task.pid() as u32), ..Default::default() };
    assert_denied(&svc.ask(NOBODY, &wait, &[]), "wait for task");
    let r = svc.ask(0, &wait, &[]);
    assert!(!r.success);
    assert_eq!(r.cr_errno, Some(libc::ECHILD), "{}", errmsg(&r));
    assert_eq!(state(root_task.pid()), Some(('S', 0)));
}

#[test]
fn a_tree_with_a_task_the_user_could_not_ptrace_is_refused_untouched() {
    let Some((_g, svc)) = started() else { return };
    let dir = svc.dir("imgs", NOBODY, 0o700);
    // The root task is the user's; its child made itself non-dumpable.
    let script = "import ctypes, os, time\nif os.fork() == 0:\n    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\ntime.sleep(100000)\n";
    subreaper();
    criu::sys::fd::cloexec_from(3).unwrap();
    let child = Command::new("setsid")
        .args([client_python().unwrap(), "-c", script])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .spawn()
        .unwrap();
    let t = Target { child };
    let pid = t.pid();
    let deadline = Instant::now() + Duration::from_secs(10);
    let kid = loop {
        let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(k) = kids.split_whitespace().next().and_then(|k| k.parse::<i32>().ok())
            && std::fs::metadata(format!("/proc/{k}/status")).is_ok_and(|m| m.uid() == 0)
            && state(pid) == Some(('S', 0))
        {
            break k;
        }
        assert!(Instant::now() < deadline, "the child never became non-dumpable");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Ended however the test ends (it is not our child).
    let _kid = common::Restored(kid);
    let r = svc.ask(NOBODY, &dump_req(pid), &[&dir]);
    assert_denied(&r, &format!("dump task {kid}: it is not dumpable"));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state(pid), Some(('S', 0)));
    assert_eq!(state(kid), Some(('S', 0)));
    assert!(!listing(&dir).iter().any(|f| f.ends_with(".img")), "{:?}", listing(&dir));
}

#[test]
fn an_executable_with_file_capabilities_is_refused_to_a_user() {
    let _g = serial();
    if !python_or_skip() {
        return;
    }
    let has_setcap = Command::new("setcap").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !has_setcap {
        println!("skipping: no setcap(8) here");
        return;
    }
    let svc = Service::start();
    let dir = svc.dir("imgs", NOBODY, 0o700);
    let bin = svc.dir("bin", 0, 0o755).join("sleep");
    std::fs::copy("/usr/bin/sleep", &bin).unwrap();
    subreaper();
    criu::sys::fd::cloexec_from(3).unwrap();
    let child = Command::new("setsid").arg(&bin).arg("100000").uid(NOBODY).gid(NOBODY).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).current_dir("/").spawn().unwrap();
    let mut t = Target { child };
    let pid = t.pid();
    std::thread::sleep(Duration::from_millis(200));
    let r = svc.ask(NOBODY, &dump_req(pid), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "dump.log"));
    t.reap();
    // The executable gains a capability after the dump.
    let st = Command::new("setcap").arg("cap_net_raw+ep").arg(&bin).status().unwrap();
    assert!(st.success(), "setcap");
    let r = svc.ask(NOBODY, &restore_req(), &[&dir]);
    assert_denied(&r, &format!("restore task {pid}: its executable {} has file capabilities CAP_NET_RAW", bin.display()));
    assert!(state(pid).is_none());
}

#[test]
fn images_cannot_reach_through_other_users_proc_links() {
    let Some((_g, svc)) = started() else { return };
    let dir = svc.dir("imgs", NOBODY, 0o700);
    // A root task whose cwd the user can enter but not reach by path.
    let vault = svc.dir("vault", 0, 0o700);
    let inner = vault.join("inner");
    std::fs::create_dir(&inner).unwrap();
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o711)).unwrap();
    let root_task = Command::new("/usr/bin/sleep").arg("100000").current_dir(&inner).stdin(Stdio::null()).spawn().unwrap();
    let root_task = Target { child: root_task };
    let mut t = nobody_sleeper();
    let pid = t.pid();
    let r = svc.ask(NOBODY, &dump_req(pid), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "dump.log"));
    t.reap();
    // The images say: cwd is the root task's, through /proc.
    let d = ImageDir::open(&dir).unwrap();
    let name = format!("fs-{pid}.img");
    let mut fs = ImageReader::open_kind(&d, &name, kinds::fs()).unwrap().all().unwrap().remove(0);
    let mut files = ImageReader::open_kind(&d, "files.img", kinds::files()).unwrap().all().unwrap();
    let new_id = files.iter().map(|f| f.id).max().unwrap() + 1;
    let mut cwd = files.iter().find(|f| f.id == fs.cwd_id).unwrap().clone();
    cwd.id = new_id;
    let through = format!("/proc/{}/cwd", root_task.pid());
    let reg = cwd.reg.as_mut().unwrap();
    reg.id = new_id;
    reg.name = through.clone();
    files.push(cwd);
    fs.cwd_id = new_id;
    for (n, write) in [(name.as_str(), true), ("files.img", false)] {
        std::fs::remove_file(dir.join(n)).unwrap();
        if write {
            let mut w = ImageWriter::create(&d, n, kinds::fs()).unwrap();
            w.write(&fs).unwrap();
            w.finish().unwrap();
        } else {
            let mut w = ImageWriter::create(&d, n, kinds::files()).unwrap();
            files.iter().for_each(|f| w.write(f).unwrap());
            w.finish().unwrap();
        }
        std::os::unix::fs::chown(dir.join(n), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let r = svc.ask(NOBODY, &restore_req(), &[&dir]);
    assert!(!r.success, "restored with its cwd in {}", inner.display());
    let log = log_of(&dir, "restore.log");
    assert!(errmsg(&r).contains(&through) && errmsg(&r).contains("Permission denied"), "{}\n{log}", errmsg(&r));
    assert!(state(pid).is_none());
    // Root may.
    let r = svc.ask(0, &req(CriuReqType::Restore, in_dir("root-restore.log")), &[&dir]);
    assert!(r.success, "{}\n{}", errmsg(&r), log_of(&dir, "root-restore.log"));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), inner);
    kill_and_reap(pid);
}

#[test]
fn pycriu_dumps_and_restores_through_the_service_as_root() {
    let _g = serial();
    let py = "/usr/bin/python3";
    let has = Command::new(py).args(["-c", "import pycriu"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !has {
        println!("skipping: Debian's pycriu (python3-criu) is not installed for {py}");
        return;
    }
    let svc = Service::start();
    let dir = svc.dir("imgs", 0, 0o700);
    let mut t = Target::sleeper();
    let pid = t.pid();
    // Two runs: the dump kills the sleeper, reaped here before the restore.
    let script = r#"
import os, sys, pycriu
c = pycriu.criu()
c.use_sk(sys.argv[1])
c.opts.images_dir_fd = os.open(sys.argv[2], os.O_DIRECTORY)
c.opts.log_level = 4
if sys.argv[3] == "dump":
    c.opts.pid = int(sys.argv[4])
    c.opts.log_file = "dump.log"
    c.dump()
else:
    c.opts.log_file = "restore.log"
    print(c.restore().pid)
"#;
    let run = |args: &[&str]| {
        let out = Command::new(py).args(["-c", script]).arg(&svc.sock).arg(&dir).args(args).stdin(Stdio::null()).output().unwrap();
        let log = log_of(&dir, &format!("{}.log", args[0]));
        assert!(out.status.success(), "pycriu {args:?}: {}\n{log}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["dump", &pid.to_string()]);
    t.reap();
    assert_eq!(run(&["restore"]), pid.to_string());
    assert!(matches!(state(pid), Some(('S', _))), "{:?}", state(pid));
    kill_and_reap(pid);
}
