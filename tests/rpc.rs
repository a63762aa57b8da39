//! The RPC service as its callers drive it: the `rust-criu` crate (what
//! youki uses) runs `criu swrk` for VERSION, DUMP and RESTORE with notify
//! callbacks; raw-protocol tests send what a buggy or hostile client could
//! (garbage, an unknown type, a huge datagram, an unsupported option, a
//! disconnect in the middle of a dump) and check the answers and that the
//! dumped task survives; `criu service` serves connections on a socket.

mod common;

use common::{kill_and_reap, serial, state_tracer as state, subreaper, Target};

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criu::rpc::pb::{CriuFeatures, CriuOpts, CriuReq, CriuReqType, CriuResp};
use nix::sys::socket::{recv, send, setsockopt, socket, socketpair, sockopt, AddressFamily, MsgFlags, SockFlag, SockType};
use prost::Message;

const NOT_BUILT: &str = "the restorer blob is not built yet";
const CRIU: &str = env!("CARGO_BIN_EXE_criu");

/// `criu swrk` on our own socketpair (close-on-exec on our side, so the
/// server sees us go away).
struct Swrk {
    sk: Option<OwnedFd>,
    child: Child,
}

impl Swrk {
    fn start() -> Swrk {
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
        nix::fcntl::fcntl(theirs.as_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).unwrap();
        let child = Command::new(CRIU)
            .args(["--no-default-config", "swrk", &theirs.as_raw_fd().to_string()])
            .env_remove("CRIU_CONFIG_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(theirs);
        Swrk { sk: Some(ours), child }
    }

    fn fd(&self) -> i32 {
        self.sk.as_ref().unwrap().as_raw_fd()
    }

    fn send_raw(&self, b: &[u8]) {
        assert_eq!(send(self.fd(), b, MsgFlags::empty()).unwrap(), b.len());
    }

    fn send(&self, req: &CriuReq) {
        self.send_raw(&req.encode_to_vec());
    }

    /// The next response; None at EOF.
    fn recv(&self) -> Option<CriuResp> {
        let mut buf = vec![0u8; 1 << 20];
        let n = recv(self.fd(), &mut buf, MsgFlags::empty()).unwrap();
        (n > 0).then(|| CriuResp::decode(&buf[..n]).unwrap())
    }

    fn exit_code(mut self) -> i32 {
        self.sk = None;
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn req(ty: CriuReqType, opts: Option<CriuOpts>) -> CriuReq {
    CriuReq { r#type: ty as i32, opts, ..Default::default() }
}

fn dump_opts(pid: i32, dir: &std::fs::File) -> CriuOpts {
    CriuOpts { images_dir_fd: dir.as_raw_fd(), pid: Some(pid), log_level: Some(4), log_file: Some("dump.log".into()), ..Default::default() }
}

fn errmsg(r: &CriuResp) -> &str {
    r.cr_errmsg.as_deref().unwrap_or("")
}

// ---- rust-criu, an independent client -------------------------------------------------

static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(script: &str, n: &rust_criu::rust_criu_protobuf::rpc::Criu_notify, _fd: Option<std::os::fd::RawFd>) -> i32 {
    let pid = if n.has_pid() { format!("({})", n.pid()) } else { String::new() };
    NOTES.lock().unwrap().push(format!("{script}{pid}"));
    0
}

fn notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap())
}

#[test]
fn rust_criu_reads_version_4_2() {
    let _g = serial();
    let mut c = rust_criu::Criu::new_with_criu_path(CRIU.into()).unwrap();
    assert_eq!(c.get_criu_version().unwrap(), 40200);
}

#[test]
fn rust_criu_dumps_and_restores_with_notifications_in_order() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    notes();

    let mut c = rust_criu::Criu::new_with_criu_path(CRIU.into()).unwrap();
    c.set_pid(pid);
    c.set_images_dir_fd(dir.as_raw_fd());
    c.set_log_file("dump.log".into());
    c.set_log_level(4);
    c.set_notify_scripts(true);
    c.set_notify_cb(record);
    let r = c.dump();
    let log = std::fs::read_to_string(tmp.path().join("dump.log")).unwrap_or_default();
    r.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(notes(), ["pre-dump", "query-ext-files", "post-dump"], "{log}");
    assert!(tmp.path().join(format!("core-{pid}.img")).exists());
    // Dumped without leave_running: killed.
    let st = t.child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));

    c.set_images_dir_fd(dir.as_raw_fd());
    c.set_log_file("restore.log".into());
    c.set_log_level(4);
    c.set_notify_scripts(true);
    c.set_notify_cb(record);
    let r = c.restore();
    let log = std::fs::read_to_string(tmp.path().join("restore.log")).unwrap_or_default();
    if log.contains(NOT_BUILT) {
        assert!(r.is_err());
        assert_eq!(notes(), ["pre-restore"], "{log}");
        assert!(state(pid).is_none(), "a failed restore left {pid} behind");
        eprintln!("SKIPPED the restore half: criu restore reports \"{NOT_BUILT}\"");
        return;
    }
    r.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(notes(), ["pre-restore", format!("post-restore({pid})").as_str(), "pre-resume", "post-resume"], "{log}");
    assert!(matches!(state(pid), Some(('S', 0))), "{:?}", state(pid));
    // Nothing of criu's (the RPC socket, the images dir) leaked into it.
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "restored task {pid} holds {}", target.display());
    }
    kill_and_reap(pid);
}

#[test]
fn rst_sibling_follows_the_option_table() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let mut c = rust_criu::Criu::new_with_criu_path(CRIU.into()).unwrap();
    c.set_images_dir_fd(dir.as_raw_fd());
    c.set_log_file("restore.log".into());
    c.set_rst_sibling(true);
    assert!(c.restore().is_err(), "nothing to restore here");
    let log = std::fs::read_to_string(tmp.path().join("restore.log")).unwrap();
    let supported = criu::cli::table::find("restore-sibling").unwrap().support == criu::cli::table::Support::Yes;
    let refused = log.contains("not supported yet: rst_sibling (--restore-sibling)");
    assert_eq!(refused, !supported, "{log}");
}

// ---- raw protocol -----------------------------------------------------------------------

#[test]
fn version_and_feature_check_keep_the_connection_open_then_check() {
    let _g = serial();
    let s = Swrk::start();
    s.send(&CriuReq { keep_open: Some(true), ..req(CriuReqType::Version, None) });
    let v = s.recv().unwrap();
    assert!(v.success);
    assert_eq!(v.r#type, CriuReqType::Version as i32);
    let v = v.version.unwrap();
    assert_eq!((v.major_number, v.minor_number), (4, 2));

    let all = CriuFeatures { mem_track: Some(true), lazy_pages: Some(true), pidfd_store: Some(true) };
    s.send(&CriuReq { keep_open: Some(true), features: Some(all), ..req(CriuReqType::FeatureCheck, None) });
    let f = s.recv().unwrap();
    assert!(f.success, "{}", errmsg(&f));
    let f = f.features.unwrap();
    let yes = |o: &str| criu::cli::table::find(o).unwrap().support == criu::cli::table::Support::Yes;
    assert_eq!(f.mem_track, Some(yes("track-mem") && criu::kerndat::dirty_track().available()));
    assert_eq!(f.lazy_pages, Some(yes("lazy-pages") && criu::kerndat::has_uffd_noncoop()));
    assert_eq!(f.pidfd_store, Some(false));

    s.send(&req(CriuReqType::Check, None));
    let c = s.recv().unwrap();
    assert_eq!(c.r#type, CriuReqType::Check as i32);
    assert!(c.success, "{}", errmsg(&c));
    assert!(s.recv().is_none(), "no keep_open: the worker is done");
    assert_eq!(s.exit_code(), 0);
}

#[test]
fn garbage_bytes_get_a_clear_error() {
    let _g = serial();
    let s = Swrk::start();
    s.send_raw(b"\xff\xff\xff\xff this is not protobuf");
    let r = s.recv().unwrap();
    assert!(!r.success);
    assert_eq!(r.r#type, CriuReqType::Empty as i32);
    assert!(errmsg(&r).contains("malformed request"), "{}", errmsg(&r));
    assert_eq!(r.cr_errno, Some(libc::EBADRQC));
    assert_eq!(s.exit_code(), 1);
}

#[test]
fn unknown_and_unimplemented_request_types_are_refused() {
    let _g = serial();
    let s = Swrk::start();
    s.send(&CriuReq { r#type: 99, ..Default::default() });
    let r = s.recv().unwrap();
    assert!(!r.success);
    assert!(errmsg(&r).contains("unknown request type 99"), "{}", errmsg(&r));
    assert_eq!(s.exit_code(), 1);

    let s = Swrk::start();
    s.send(&req(CriuReqType::PreDump, Some(CriuOpts::default())));
    let r = s.recv().unwrap();
    assert!(!r.success);
    assert_eq!(r.r#type, CriuReqType::PreDump as i32);
    assert!(errmsg(&r).contains("pre-dump is not supported yet"), "{}", errmsg(&r));
    assert_eq!(r.cr_errno, Some(libc::EOPNOTSUPP));
}

#[test]
fn huge_requests_are_refused_and_big_ones_served() {
    let _g = serial();
    let s = Swrk::start();
    setsockopt(s.sk.as_ref().unwrap(), sockopt::SndBufForce, &(32 << 20)).unwrap();
    // Just under the 2 MiB limit: a VERSION request with a large (ignored) option.
    let big = CriuOpts { external: vec!["x".repeat((2 << 20) - 64)], ..Default::default() };
    s.send(&CriuReq { keep_open: Some(true), ..req(CriuReqType::Version, Some(big)) });
    let r = s.recv().unwrap();
    assert!(r.success, "{}", errmsg(&r));
    // 3 MiB: past the limit.
    s.send_raw(&vec![0u8; 3 << 20]);
    let r = s.recv().unwrap();
    assert!(!r.success);
    assert!(errmsg(&r).contains(&format!("a request of {} bytes is larger than the 2097152-byte limit", 3 << 20)), "{}", errmsg(&r));
    assert_eq!(s.exit_code(), 1);
}

#[test]
fn unsupported_option_fails_with_a_clear_message_and_no_dump() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let t = Target::sleeper();
    let s = Swrk::start();
    let opts = CriuOpts { track_mem: Some(true), ..dump_opts(t.pid(), &dir) };
    s.send(&req(CriuReqType::Dump, Some(opts)));
    let r = s.recv().unwrap();
    assert!(!r.success);
    assert_eq!(r.r#type, CriuReqType::Dump as i32);
    assert_eq!(errmsg(&r), "RPC option(s) not supported yet: track_mem (--track-mem)");
    assert_eq!(r.cr_errno, Some(libc::EBADRQC));
    assert_eq!(s.exit_code(), 1);
    assert_eq!(state(t.pid()), Some(('S', 0)));
    assert!(!tmp.path().join(format!("core-{}.img", t.pid())).exists());
}

#[test]
fn config_file_is_applied_over_the_request() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let t = Target::sleeper();
    let conf = tmp.path().join("rpc.conf");

    std::fs::write(&conf, "tcp-established\nlsm-profile apparmor:x\n").unwrap();
    let s = Swrk::start();
    s.send(&req(CriuReqType::Dump, Some(CriuOpts { config_file: Some(conf.to_str().unwrap().into()), ..dump_opts(t.pid(), &dir) })));
    let r = s.recv().unwrap();
    assert!(!r.success);
    assert_eq!(errmsg(&r), format!("RPC option(s) not supported yet: --lsm-profile (config file {})", conf.display()));
    drop(s);

    std::fs::remove_file(tmp.path().join("dump.log")).unwrap();
    std::fs::write(&conf, "log-file conf.log\nleave-running\n").unwrap();
    let s = Swrk::start();
    s.send(&req(CriuReqType::Dump, Some(CriuOpts { config_file: Some(conf.to_str().unwrap().into()), ..dump_opts(t.pid(), &dir) })));
    let r = s.recv().unwrap();
    let log = std::fs::read_to_string(tmp.path().join("conf.log")).unwrap_or_default();
    assert!(r.success, "{}\n{log}", errmsg(&r));
    assert_eq!(r.dump.unwrap().restored, Some(false));
    assert!(log.contains("Dumping finished successfully"), "{log}");
    assert!(!tmp.path().join("dump.log").exists(), "the config file's log-file wins");
    assert_eq!(state(t.pid()), Some(('S', 0)), "leave-running from the config file");
}

/// Run a notified dump, answering with `answer` for each script; returns
/// the notifications seen and the final response.
fn notified_dump(s: &Swrk, opts: CriuOpts, mut answer: impl FnMut(&str) -> Option<bool>) -> (Vec<String>, Option<CriuResp>) {
    s.send(&req(CriuReqType::Dump, Some(CriuOpts { notify_scripts: Some(true), ..opts })));
    let mut seen = Vec::new();
    loop {
        let Some(r) = s.recv() else { return (seen, None) };
        if r.r#type != CriuReqType::Notify as i32 {
            return (seen, Some(r));
        }
        let script = r.notify.unwrap().script.unwrap();
        seen.push(script.clone());
        match answer(&script) {
            Some(ok) => s.send(&CriuReq { notify_success: Some(ok), ..req(CriuReqType::Notify, None) }),
            None => return (seen, None),
        }
    }
}

#[test]
fn a_refused_notification_fails_the_dump_and_the_task_runs_on() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let t = Target::sleeper();
    let s = Swrk::start();
    let (seen, r) = notified_dump(&s, dump_opts(t.pid(), &dir), |a| Some(a != "post-dump"));
    assert_eq!(seen, ["pre-dump", "query-ext-files", "post-dump"]);
    let r = r.unwrap();
    assert!(!r.success);
    assert!(errmsg(&r).contains("the RPC client failed the post-dump notification"), "{}", errmsg(&r));
    assert!(errmsg(&r).contains("left running"), "{}", errmsg(&r));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state(t.pid()), Some(('S', 0)));
}

#[test]
fn a_client_that_disconnects_mid_dump_leaves_the_task_running() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let t = Target::sleeper();
    let s = Swrk::start();
    // The task is frozen and its images written when post-dump is sent; hang up then.
    let (seen, r) = notified_dump(&s, dump_opts(t.pid(), &dir), |a| (a != "post-dump").then_some(true));
    assert_eq!(seen, ["pre-dump", "query-ext-files", "post-dump"]);
    assert!(r.is_none());
    assert_eq!(s.exit_code(), 1);
    let log = std::fs::read_to_string(tmp.path().join("dump.log")).unwrap();
    assert!(log.contains("the RPC client closed the connection"), "{log}");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state(t.pid()), Some(('S', 0)), "{log}");
}

// ---- criu service -----------------------------------------------------------------------

fn connect(path: &Path) -> Swrk {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sk = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
        let addr = nix::sys::socket::UnixAddr::new(path).unwrap();
        if nix::sys::socket::connect(sk.as_raw_fd(), &addr).is_ok() {
            // Reuse Swrk's framing; the "child" is a no-op process.
            let child = Command::new("/bin/true").spawn().unwrap();
            return Swrk { sk: Some(sk), child };
        }
        assert!(Instant::now() < deadline, "service socket {} never came up", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn service_serves_each_connection_in_its_own_worker() {
    let _g = serial();
    subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("criu.sock");
    let pidfile = tmp.path().join("service.pid");
    let (rd, wr) = nix::unistd::pipe().unwrap();
    let mut svc = Command::new(CRIU)
        .args(["--no-default-config", "service", "--address", sock.to_str().unwrap(), "--pidfile", pidfile.to_str().unwrap()])
        .args(["--status-fd", &wr.as_raw_fd().to_string()])
        .env_remove("CRIU_CONFIG_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(wr);
    let mut b = [1u8; 1];
    assert_eq!(nix::unistd::read(rd.as_fd(), &mut b).unwrap(), 1, "status fd");
    assert_eq!(b[0], 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), svc.id().to_string());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o666);

    for _ in 0..2 {
        let c = connect(&sock);
        c.send(&req(CriuReqType::Version, None));
        let r = c.recv().unwrap();
        assert!(r.success);
        assert_eq!(r.version.unwrap().major_number, 4);
        assert!(c.recv().is_none());
    }
    // swrk-only options are refused in a standalone service.
    let c = connect(&sock);
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let opts = CriuOpts { images_dir_fd: dir.as_raw_fd(), rst_sibling: Some(true), ..Default::default() };
    c.send(&req(CriuReqType::Restore, Some(opts)));
    let r = c.recv().unwrap();
    assert!(!r.success);
    assert!(errmsg(&r).contains("rst_sibling is not allowed in standalone service"), "{}", errmsg(&r));
    assert_eq!(r.restore.map(|x| x.pid), Some(-1));

    let _ = svc.kill();
    let _ = svc.wait();
}

#[test]
fn service_daemonizes() {
    let _g = serial();
    subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("criu.sock");
    let pidfile = tmp.path().join("service.pid");
    let st = Command::new(CRIU)
        .args(["--no-default-config", "service", "--daemon", "--address", sock.to_str().unwrap(), "--pidfile", pidfile.to_str().unwrap()])
        .env_remove("CRIU_CONFIG_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    // The daemon is killed however the test ends, not only when it passes.
    struct Daemon<'a>(&'a std::path::Path);
    impl Drop for Daemon<'_> {
        fn drop(&mut self) {
            if let Some(pid) = std::fs::read_to_string(self.0).ok().and_then(|s| s.trim().parse().ok()) {
                kill_and_reap(pid);
            }
        }
    }
    let _daemon = Daemon(&pidfile);
    let c = connect(&sock);
    assert!(std::fs::read_to_string(&pidfile).unwrap().trim().parse::<i32>().is_ok());
    c.send(&req(CriuReqType::Version, None));
    assert!(c.recv().unwrap().success);
}

#[test]
fn rust_criu_restores_as_a_sibling_like_runc() {
    let _g = serial();
    if criu::cli::table::find("restore-sibling").unwrap().support != criu::cli::table::Support::Yes {
        eprintln!("SKIPPED: --restore-sibling is not supported yet (checked by rst_sibling_follows_the_option_table)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    let mut c = rust_criu::Criu::new_with_criu_path(CRIU.into()).unwrap();
    c.set_pid(pid);
    c.set_images_dir_fd(dir.as_raw_fd());
    c.set_log_file("dump.log".into());
    c.dump().unwrap();
    t.child.wait().unwrap();
    notes();

    c.set_images_dir_fd(dir.as_raw_fd());
    c.set_log_file("restore.log".into());
    c.set_log_level(4);
    c.set_rst_sibling(true);
    c.set_notify_scripts(true);
    c.set_notify_cb(record);
    let r = c.restore();
    let log = std::fs::read_to_string(tmp.path().join("restore.log")).unwrap_or_default();
    r.unwrap_or_else(|e| panic!("{e}\n{log}"));
    let p = |s: &str| format!("{s}({pid})");
    assert_eq!(notes(), ["pre-restore".into(), p("setup-namespaces"), "post-setup-namespaces".into(), p("post-restore"), "pre-resume".into(), "post-resume".into()], "{log}");
    // A sibling of criu: our own child.
    let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: u32 = ppid[ppid.rfind(')').unwrap() + 4..].split(' ').next().unwrap().parse().unwrap();
    assert_eq!(ppid, std::process::id());
    assert!(matches!(state(pid), Some(('S', 0))), "{:?}", state(pid));
    kill_and_reap(pid);
}

/// What runc sends with every request: a config_file that usually does not
/// exist (CRIU goes on without it), orphan_pts_master, manage_cgroups,
/// tcp_established, ext_unix_sk, file_locks, link_remap, evasive_devices,
/// an external net namespace, empty_ns = CLONE_NEWNET, ext_mnt, root.
fn runc_opts(base: CriuOpts, missing_conf: &Path) -> CriuOpts {
    use criu::rpc::pb::ExtMountMap;
    CriuOpts {
        config_file: Some(missing_conf.to_str().unwrap().into()),
        orphan_pts_master: Some(true),
        manage_cgroups: Some(true),
        manage_cgroups_mode: Some(3),
        tcp_established: Some(true),
        ext_unix_sk: Some(true),
        file_locks: Some(true),
        link_remap: Some(true),
        evasive_devices: Some(true),
        shell_job: Some(false),
        external: vec!["net[4026531992]:extRootNetNS".into()],
        empty_ns: Some(libc::CLONE_NEWNET as u32),
        ext_mnt: vec![ExtMountMap { key: "/etc/hostname".into(), val: "/etc/hostname".into() }],
        root: Some("/".into()),
        ..base
    }
}

#[test]
fn runc_requests_with_a_missing_config_file_dump_restore_and_check() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let missing = tmp.path().join("etc-criu/runc.conf");
    let mut t = Target::sleeper();
    let pid = t.pid();

    let s = Swrk::start();
    s.send(&req(CriuReqType::Dump, Some(runc_opts(dump_opts(pid, &dir), &missing))));
    let r = s.recv().unwrap();
    let log = std::fs::read_to_string(tmp.path().join("dump.log")).unwrap_or_default();
    assert!(r.success, "{}\n{log}", errmsg(&r));
    drop(s);
    t.reap();
    assert!(tmp.path().join(format!("core-{pid}.img")).exists());

    let s = Swrk::start();
    let opts = CriuOpts { images_dir_fd: dir.as_raw_fd(), log_level: Some(4), log_file: Some("restore.log".into()), ..Default::default() };
    s.send(&req(CriuReqType::Restore, Some(runc_opts(opts, &missing))));
    let r = s.recv().unwrap();
    let log = std::fs::read_to_string(tmp.path().join("restore.log")).unwrap_or_default();
    if !r.success && errmsg(&r).contains(NOT_BUILT) {
        eprintln!("SKIPPED the restore half: {NOT_BUILT}");
    } else {
        assert!(r.success, "{}\n{log}", errmsg(&r));
        assert_eq!(r.restore.unwrap().pid, pid);
        assert!(matches!(state(pid), Some(('S', _))), "{:?}", state(pid));
        kill_and_reap(pid);
    }
    drop(s);

    // CHECK with a log file reads config_file too.
    let s = Swrk::start();
    let opts = CriuOpts { images_dir_fd: dir.as_raw_fd(), log_file: Some("check.log".into()), config_file: Some(missing.to_str().unwrap().into()), ..Default::default() };
    s.send(&req(CriuReqType::Check, Some(opts)));
    let r = s.recv().unwrap();
    assert!(r.success, "{}", errmsg(&r));

    // An existing but unreadable one (a directory) is skipped the same way.
    let s = Swrk::start();
    let opts = CriuOpts { images_dir_fd: dir.as_raw_fd(), log_file: Some("check2.log".into()), config_file: Some(tmp.path().to_str().unwrap().into()), ..Default::default() };
    s.send(&req(CriuReqType::Check, Some(opts)));
    let r = s.recv().unwrap();
    assert!(r.success, "{}", errmsg(&r));
}
