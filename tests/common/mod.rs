//! Helpers shared by integration tests: start a target program the way the
//! fixtures' programs were started (own session, fds 0-2 on /dev/null, cwd
//! /), run the criu binary, read a task's state, decode an image.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A program under test; killed and reaped on drop.
pub struct Target {
    pub child: Child,
}

impl Target {
    /// Start `program args` in a session of its own. `ready` is a file the
    /// program creates once set up (None: just wait a little).
    pub fn spawn(program: &str, args: &[&str], ready: Option<&Path>) -> Target {
        let _ = nix::sys::prctl::set_child_subreaper(true);
        // cargo's jobserver pipes must not leak into the programs we dump.
        criu::sys::fd::cloexec_from(3).unwrap();
        if let Some(r) = ready {
            let _ = std::fs::remove_file(r);
        }
        // setsid(1) execs in place: the test process is no group leader.
        let child = Command::new("setsid")
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            .spawn()
            .unwrap();
        match ready {
            Some(r) => {
                for _ in 0..500 {
                    if r.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                assert!(r.exists(), "{program} did not get ready");
            }
            None => std::thread::sleep(Duration::from_millis(150)),
        }
        Target { child }
    }

    /// `/usr/bin/sleep 100000` leading its own session.
    pub fn sleeper() -> Target {
        let t = Target::spawn("/usr/bin/sleep", &["100000"], None);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(format!("/proc/{}/comm", t.pid())).unwrap_or_default().starts_with("sleep") {
            assert!(std::time::Instant::now() < deadline, "sleep did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        t
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Reap it once a dump killed it (its pid must be free to restore).
    pub fn reap(&mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The task's state letter; one caught on the CPU ('R') counts as asleep.
pub fn state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next().map(|c| if c == 'R' { 'S' } else { c })
}

/// (state letter, tracer pid); a task caught on the CPU ('R') counts as
/// running on, like one asleep ('S').
pub fn state_tracer(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("").to_string();
    let st = match field("State:").chars().next()? {
        'R' => 'S',
        c => c,
    };
    Some((st, field("TracerPid:").parse().ok()?))
}

/// Kill a task we restored (our child or reparented to us) and reap it.
pub fn kill_and_reap(pid: i32) {
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(p, None);
}

/// Run the criu binary.
pub fn criu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_criu")).args(args).env_remove("CRIU_FAULT").output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An image as crit JSON.
pub fn crit(path: &Path) -> serde_json::Value {
    let dir = criu::images::ImageDir::open(path.parent().unwrap()).unwrap();
    let r = criu::images::ImageReader::open(&dir, path.file_name().unwrap().to_str().unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    criu::crit::decode_image(r, true).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The python interpreter of this machine kind.
pub fn python() -> &'static str {
    let py = "/root/.pyenv/versions/3.11.7/bin/python3.11";
    if Path::new(py).exists() { py } else { "python3" }
}

/// `criu dump` the target (it is killed and reaped) into a new `imgs`
/// directory under `tmp`; returns the directory.
pub fn dump_killed(t: &mut Target, tmp: &Path) -> std::path::PathBuf {
    let imgs = tmp.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let o = criu(&["dump", "-t", &t.pid().to_string(), "-D", imgs.to_str().unwrap()]);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    t.reap();
    imgs
}

/// `criu dump` of `pid` into a new `dir` with `extra` options, which
/// must be refused (exit 1) with the task left running; returns stderr.
pub fn dump_refused(pid: i32, dir: &Path, extra: &[&str]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let mut args = vec!["dump", "-t"];
    let p = pid.to_string();
    args.extend([p.as_str(), "-D", dir.to_str().unwrap()]);
    args.extend(extra);
    let o = criu(&args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "dump {extra:?}: {err}");
    assert_eq!(state(pid), Some('S'), "the task runs on after a refused dump: {err}");
    err
}

/// `criu restore -d` from `imgs`, which must succeed.
pub fn restore_detached(imgs: &Path) {
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap()]);
    assert!(o.status.success(), "restore: {}", text(&o.stderr));
}

/// Send the task SIGUSR1 (its cue to report) and return what it wrote to
/// `out` within 10 s (empty if nothing).
pub fn ask(pid: i32, out: &Path) -> String {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGUSR1).unwrap();
    wait_nonempty(out);
    String::from_utf8_lossy(&std::fs::read(out).unwrap_or_default()).into_owned()
}

/// Wait up to 10 s for `path` to hold something (a report may itself wait
/// up to 2 s for a child's, as tests/memfd.rs's does; under a loaded CI
/// machine 2 s was seen not to be enough).
pub fn wait_nonempty(path: &Path) {
    for _ in 0..1000 {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A cgroup v1 freezer group of our own holding every thread of `pid`
/// (named after the test binary's pid and `tag`); thawed, emptied and
/// removed on drop.
pub struct FreezerGroup {
    pub dir: std::path::PathBuf,
}

impl FreezerGroup {
    pub fn new(pid: i32, tag: &str) -> FreezerGroup {
        let dir = std::path::PathBuf::from(format!("/sys/fs/cgroup/freezer/criu-rs-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        FreezerGroup { dir }
    }

    pub fn state(&self) -> String {
        std::fs::read_to_string(self.dir.join("freezer.state")).unwrap().trim().to_string()
    }

    pub fn set(&self, s: &str) {
        std::fs::write(self.dir.join("freezer.state"), s).unwrap();
    }
}

impl Drop for FreezerGroup {
    fn drop(&mut self) {
        self.set("THAWED");
        if let Ok(t) = std::fs::read_to_string(self.dir.join("tasks")) {
            for p in t.lines() {
                let _ = std::fs::write("/sys/fs/cgroup/freezer/tasks", p);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A copy of CRIU 4.2's fixture `name` in a temp dir, or None, with the
/// reason printed, when this CPU lacks XSAVE features the fixture's saved
/// registers use: a restore must refuse such an image (the program's libc
/// chose its string functions for those features), so the test cannot run.
pub fn fixture_copy(name: &str) -> Option<tempfile::TempDir> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/criu-4.2");
    let xcr0 = xcr0();
    for e in std::fs::read_dir(root.join(format!("{name}.crit"))).unwrap() {
        let p = e.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().starts_with("core-") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let bv = v["entries"][0]["thread_info"]["fpregs"]["xsave"]["xstate_bv"].as_u64().unwrap_or(0);
        if bv & !xcr0 != 0 {
            eprintln!(
                "skipping: fixture {name} ({}) holds XSAVE state {:#x} this CPU lacks (XCR0 {xcr0:#x})",
                p.display(),
                bv & !xcr0
            );
            return None;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root.join(name), tmp.path());
    Some(tmp)
}

/// Copy every file of directory `from` into directory `to` (made if need be).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The XSAVE features the OS enabled on this CPU (x87 and SSE without XSAVE).
fn xcr0() -> u64 {
    #[target_feature(enable = "xsave")]
    fn xgetbv0() -> u64 {
        // SAFETY: XGETBV with ECX=0 is defined once the OS enabled XSAVE,
        // which the caller checked.
        unsafe { std::arch::x86_64::_xgetbv(0) }
    }
    if std::arch::is_x86_feature_detected!("xsave") {
        // SAFETY: the xsave feature was detected just above.
        unsafe { xgetbv0() }
    } else {
        3
    }
}

/// `tests/helpers/NAME.rs` compiled with the toolchain's rustc (-O) into
/// the test target dir; the path of the program.
pub fn compile_helper(name: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/helpers/{name}.rs"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let rustc = std::env::var_os("RUSTC")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO").map(|c| PathBuf::from(c).with_file_name("rustc")).filter(|p| p.exists()))
        .unwrap_or_else(|| "rustc".into());
    let st = Command::new(rustc).args(["--edition=2024", "-O", "-o"]).arg(&out).arg(&src).status().expect("run rustc");
    assert!(st.success(), "compiling {}", src.display());
    out
}
