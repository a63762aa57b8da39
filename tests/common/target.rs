//! Starting what a test dumps: a target program started the way the
//! fixtures' programs were (own session or process group, fds 0-2 on
//! /dev/null, cwd /), the python interpreter found through PATH, the
//! helper programs of tests/helpers compiled once, a scratch dir on tmpfs,
//! the test process as a child subreaper, and one lock per test binary
//! for tests that must not run at once.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// A program under test; killed and reaped on drop.
pub struct Target {
    pub child: Child,
}

impl Target {
    /// Start `program args` in a session of its own. `ready` is a file the
    /// program creates once set up (None: just wait a little).
    pub fn spawn(program: &str, args: &[&str], ready: Option<&Path>) -> Target {
        subreaper();
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

    /// Start `program args` with only fds 0-2 (on /dev/null), cwd /, in a
    /// process group of its own (not a session), then wait 100 ms.
    pub fn spawn_group(program: &str, args: &[&str]) -> Target {
        subreaper();
        // cargo's jobserver pipes must not leak into the programs we dump.
        criu::sys::fd::cloexec_from(3).unwrap();
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).current_dir("/");
        cmd.process_group(0);
        let child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(100));
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

    /// The task's state letter, one on the CPU counted as asleep (`state`).
    pub fn state(&self) -> Option<char> {
        super::state(self.pid())
    }

    /// Its /proc/PID/maps.
    pub fn maps(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/maps", self.pid())).unwrap()
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

/// Make the test process a child subreaper: what its targets leave
/// behind (restored tasks, orphans) is reparented to it and reaped here.
pub fn subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Hold the test binary's lock: tests that use fixed pids, freezer groups
/// or many processes run one at a time (a failed test's poison is ignored).
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The python interpreter: `python3` found through PATH, resolved to the
/// interpreter it runs (`sys.executable`: a pyenv shim is a shell script,
/// and the task we dump must be python itself). None, with the reason
/// printed, when there is none: the caller skips its test.
pub fn python() -> Option<&'static str> {
    static PY: OnceLock<Option<String>> = OnceLock::new();
    let py = PY.get_or_init(|| {
        let path = std::env::var_os("PATH")?;
        let found = std::env::split_paths(&path).map(|d| d.join("python3")).find(|p| p.is_file())?;
        let real = Command::new(&found)
            .args(["-c", "import sys; print(sys.executable)"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| Path::new(p).is_file());
        Some(real.unwrap_or_else(|| found.to_string_lossy().into_owned()))
    });
    if py.is_none() {
        println!("skipping: no python3 in PATH");
    }
    py.as_deref()
}

/// `tests/helpers/NAME.rs` compiled with the toolchain's rustc (-O) into
/// the test target dir; the path of the program.
pub fn compile_helper(name: &str) -> PathBuf {
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

/// `tests/helpers/NAME.rs` compiled once per test binary (see
/// `compile_helper`); the path of the program.
pub fn helper(name: &str) -> PathBuf {
    static BINS: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut bins = BINS.lock().unwrap_or_else(|e| e.into_inner());
    bins.get_or_insert_with(HashMap::new).entry(name.to_string()).or_insert_with(|| compile_helper(name)).clone()
}

/// A scratch directory on tmpfs where there is one: targets write their
/// counters every few milliseconds, and a busy disk can hold such a write
/// (state D) for longer than the tests wait.
pub fn tmpdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}
