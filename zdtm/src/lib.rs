//! The zdtm test library: what every test program under `src/bin/` uses.
//!
//! A test program's life, as in CRIU's zdtm:
//!
//! ```text
//! let opts = zdtm::test_init();   // parse --pidfile/--outfile/..., set up
//! ... build the state to be checkpointed ...
//! zdtm::test_daemon();            // "ready": the pid file appears
//! zdtm::test_waitsig();           // sleep until SIGTERM (the runner's "check now")
//! ... verify the state ...
//! zdtm::pass() / zdtm::fail("why")
//! ```
//!
//! The runner starts the program directly (no fork: the program is the task
//! that gets dumped), in its own session, with stdin on /dev/null and
//! stdout/stderr on a log file. Between `test_daemon` and the SIGTERM the
//! runner dumps and restores it. The verdict goes to the out file only at the
//! end (`PASS` or `FAIL: reason`), so a program that dies, hangs or exits
//! without a verdict is a failure for the runner.
//!
//! Arguments (all `--name VALUE` or `--name=VALUE`): `--pidfile` and
//! `--outfile` (required), `--filename` and `--dirname` (scratch paths the
//! test may create). Environment: `ZDTM_UID`/`ZDTM_GID` (drop to that user,
//! as zdtm does for tests without the `suid` flag) and `ZDTM_SABOTAGE` (the
//! runner's self-tests: `check` makes the program corrupt the state it is
//! about to verify, `crash`/`hang`/`noready`/`noverdict` break the protocol),
//! `ZDTM_STATE_DIFF` (the `--state-diff` self-test: SIGUSR2 marks a page of
//! ours MADV_DONTDUMP, a VmFlag change the runner's compare must notice).

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// The parsed standard arguments.
#[derive(Debug)]
pub struct Opts {
    pub pidfile: PathBuf,
    pub outfile: PathBuf,
    pub filename: Option<PathBuf>,
    pub dirname: Option<PathBuf>,
    /// argv as the program got it (argv[0] included).
    pub argv: Vec<String>,
}

static OPTS: OnceLock<Opts> = OnceLock::new();
static SABOTAGE: OnceLock<Option<String>> = OnceLock::new();
/// The signal that ended `test_waitsig` (0 while none came).
static SIG: AtomicU32 = AtomicU32::new(0);
static VERDICT_WRITTEN: AtomicU32 = AtomicU32::new(0);

/// Print a line to the test's log (stderr), prefixed with time and pid.
#[macro_export]
macro_rules! test_msg {
    ($($arg:tt)*) => {
        $crate::log_line(&format!($($arg)*))
    };
}

#[doc(hidden)]
pub fn log_line(s: &str) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let line = format!(
        "{:02}:{:02}:{:02}.{:03}: {:5}: {}\n",
        (ts.tv_sec / 3600) % 24,
        (ts.tv_sec / 60) % 60,
        ts.tv_sec % 60,
        ts.tv_nsec / 1_000_000,
        std::process::id(),
        s.trim_end()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}

fn usage_exit(msg: &str) -> ! {
    eprintln!("zdtm: {msg}");
    eprintln!("usage: TEST --pidfile PATH --outfile PATH [--filename PATH] [--dirname PATH]");
    std::process::exit(2);
}

fn parse_args(argv: Vec<String>) -> Opts {
    let (mut pidfile, mut outfile, mut filename, mut dirname) = (None, None, None, None);
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        let (name, value) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), v.to_string()),
            _ => {
                if !a.starts_with("--") {
                    usage_exit(&format!("unexpected argument {a:?}"));
                }
                i += 1;
                let Some(v) = argv.get(i) else {
                    usage_exit(&format!("{a} needs a value"))
                };
                (a.clone(), v.clone())
            }
        };
        let slot = match name.as_str() {
            "--pidfile" => &mut pidfile,
            "--outfile" => &mut outfile,
            "--filename" => &mut filename,
            "--dirname" => &mut dirname,
            _ => usage_exit(&format!("unknown option {name}")),
        };
        // Absolute, so a test may chdir (cwd00) and still write its verdict.
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        *slot = Some(cwd.join(value));
        i += 1;
    }
    Opts {
        pidfile: pidfile.unwrap_or_else(|| usage_exit("--pidfile is required")),
        outfile: outfile.unwrap_or_else(|| usage_exit("--outfile is required")),
        filename,
        dirname,
        argv,
    }
}

extern "C" fn on_sigterm(signo: libc::c_int) {
    mark_signal(signo);
}

/// Record that the "checked" signal arrived and wake `test_waitsig`.
/// Async-signal-safe: for tests that install their own SIGTERM handler.
pub fn mark_signal(signo: libc::c_int) {
    SIG.store(signo as u32, Ordering::SeqCst);
    // SAFETY: futex wake on a valid, static u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            SIG.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// The word `test_waitsig` sleeps on (non-zero once SIGTERM came), for
/// tests that must wait without calling any function (fpu00).
pub fn sig_word() -> &'static AtomicU32 {
    &SIG
}

/// Parse the standard arguments and set the process up. Call first.
pub fn test_init() -> &'static Opts {
    let opts = parse_args(std::env::args().collect());
    SABOTAGE.get_or_init(|| {
        std::env::var("ZDTM_SABOTAGE")
            .ok()
            .filter(|s| !s.is_empty())
    });

    if opts.outfile.exists() {
        usage_exit(&format!(
            "out file {} already exists",
            opts.outfile.display()
        ));
    }
    let opts = OPTS.get_or_init(|| opts);

    std::panic::set_hook(Box::new(|info| {
        let msg = format!("panic: {info}");
        log_line(&msg);
        write_verdict(&format!("FAIL: {}", msg.replace('\n', " ")));
    }));

    // As zdtm: tests not flagged `suid` run as an unprivileged user.
    if let Ok(gid) = std::env::var("ZDTM_GID") {
        let gid: libc::gid_t = gid.parse().unwrap_or_else(|_| fail("bad ZDTM_GID"));
        // SAFETY: setgroups with an empty list reads no memory; setgid takes an integer.
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 || unsafe { libc::setgid(gid) } != 0
        {
            fail(&format!(
                "can't set gid {gid}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if let Ok(uid) = std::env::var("ZDTM_UID") {
        let uid: libc::uid_t = uid.parse().unwrap_or_else(|_| fail("bad ZDTM_UID"));
        // SAFETY: setuid takes only integer arguments and touches no memory of ours.
        if unsafe { libc::setuid(uid) } != 0 {
            fail(&format!(
                "can't set uid {uid}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } != 0 {
        fail("can't set the dumpable flag");
    }
    install_handler(
        libc::SIGTERM,
        on_sigterm as *const () as usize,
        libc::SA_RESTART,
    );
    if std::env::var_os("ZDTM_STATE_DIFF").is_some() {
        state_diff_setup();
    }
    opts
}

/// A page the runner's `--state-diff` self-test has us mark MADV_DONTDUMP.
static STATE_DIFF_PAGE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_state_diff(_: libc::c_int) {
    let p = STATE_DIFF_PAGE.load(Ordering::SeqCst);
    // SAFETY: madvise on our own page; async-signal-safe.
    unsafe { libc::madvise(p as *mut libc::c_void, 4096, libc::MADV_DONTDUMP) };
}

/// ZDTM_STATE_DIFF (the runner's `--state-diff` self-test): on SIGUSR2,
/// change a VmFlag of a page of ours (the runner can't from outside).
fn state_diff_setup() {
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        fail("state-diff: mmap");
    }
    STATE_DIFF_PAGE.store(p as usize, Ordering::SeqCst);
    install_handler(libc::SIGUSR2, on_state_diff as *const () as usize, libc::SA_RESTART);
}

/// Install a plain handler with the given flags and an empty mask.
pub fn install_handler(sig: libc::c_int, handler: usize, flags: libc::c_int) {
    // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            fail(&format!(
                "sigaction({sig}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// The options `test_init` parsed.
pub fn opts() -> &'static Opts {
    OPTS.get().expect("zdtm::test_init() not called")
}

/// `--filename`, which this test needs.
pub fn filename() -> &'static Path {
    opts()
        .filename
        .as_deref()
        .unwrap_or_else(|| fail("this test needs --filename"))
}

/// `--dirname`, which this test needs.
pub fn dirname() -> &'static Path {
    opts()
        .dirname
        .as_deref()
        .unwrap_or_else(|| fail("this test needs --dirname"))
}

fn sabotage_mode() -> Option<&'static str> {
    SABOTAGE.get().and_then(|s| s.as_deref())
}

/// True when the runner asks this program to break the state it checks
/// (ZDTM_SABOTAGE=check): proof that the check can fail. Tests call it
/// right after `test_waitsig` and, if true, corrupt what they verify.
pub fn sabotaged() -> bool {
    sabotage_mode() == Some("check")
}

fn sleep_forever() -> ! {
    loop {
        // SAFETY: pause takes no arguments and touches no memory of ours.
        unsafe { libc::pause() };
    }
}

/// Tell the runner we are ready: write our pid to the pid file (atomically:
/// a temporary file renamed into place).
pub fn test_daemon() {
    let o = opts();
    if sabotage_mode() == Some("noready") {
        test_msg!("sabotage: never ready");
        sleep_forever();
    }
    let mut tmp = o.pidfile.clone().into_os_string();
    tmp.push(".tmp");
    let res = std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|_| std::fs::rename(&tmp, &o.pidfile));
    if let Err(e) = res {
        fail(&format!(
            "can't write pid file {}: {e}",
            o.pidfile.display()
        ));
    }
}

/// True until the "checked" signal arrives.
pub fn test_go() -> bool {
    SIG.load(Ordering::SeqCst) == 0
}

/// Sleep until SIGTERM arrives. Allocates nothing and calls only futex.
pub fn test_waitsig() {
    while SIG.load(Ordering::SeqCst) == 0 {
        // SAFETY: futex wait on a valid, static u32; returns on wake,
        // on a value mismatch or on a signal.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                SIG.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                0u32,
                std::ptr::null::<libc::timespec>(),
            );
        }
    }
    after_signal();
}

/// The protocol sabotages that act once the signal came; tests that wait
/// on their own (fpu00) call it after their wait.
pub fn after_signal() {
    match sabotage_mode() {
        Some("crash") => {
            test_msg!("sabotage: crash");
            std::process::abort();
        }
        Some("hang") => {
            test_msg!("sabotage: hang, ignoring SIGTERM");
            // SAFETY: ignoring a signal.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            sleep_forever();
        }
        Some("noverdict") => {
            test_msg!("sabotage: exit 0 without a verdict");
            std::process::exit(0);
        }
        _ => {}
    }
}

fn write_verdict(line: &str) -> bool {
    if VERDICT_WRITTEN.swap(1, Ordering::SeqCst) != 0 {
        return false;
    }
    let Some(o) = OPTS.get() else {
        eprintln!("{line}");
        return false;
    };
    let res = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&o.outfile)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    match res {
        Ok(()) => true,
        Err(e) => {
            log_line(&format!(
                "can't write the verdict to {}: {e}",
                o.outfile.display()
            ));
            false
        }
    }
}

/// Report success and exit 0.
pub fn pass() -> ! {
    test_msg!("PASS");
    if !write_verdict("PASS") {
        std::process::exit(3);
    }
    std::process::exit(0)
}

/// Report failure (one line) and exit 1.
pub fn fail(reason: &str) -> ! {
    let reason = reason.replace('\n', " ");
    test_msg!("FAIL: {reason}");
    write_verdict(&format!("FAIL: {reason}"));
    std::process::exit(1)
}

/// Report that the test can't run here (exit 0, counted as skipped).
pub fn skip(reason: &str) -> ! {
    test_msg!("SKIP: {reason}");
    write_verdict(&format!("SKIP: {}", reason.replace('\n', " ")));
    std::process::exit(0)
}

/// Collects failed checks; `finish` passes or fails with all of them.
#[derive(Default)]
pub struct Checks {
    errs: Vec<String>,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }
    /// Record `msg` unless `ok`.
    pub fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            let m = msg();
            test_msg!("check failed: {m}");
            self.errs.push(m);
        }
    }
    /// Record an equality check.
    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.check(false, || format!("{what}: got {got:?}, want {want:?}"));
        }
    }
    pub fn failed(&self) -> bool {
        !self.errs.is_empty()
    }
    pub fn finish(self) -> ! {
        if self.errs.is_empty() {
            pass()
        }
        fail(&self.errs.join("; "))
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), as zdtm's datagen.
pub fn datagen(buf: &mut [u8], seed: u64) {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    if s == 0 {
        s = 1;
    }
    for chunk in buf.chunks_mut(8) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let v = s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// Check bytes made by `datagen(.., seed)`: the first differing offset.
pub fn datachk(buf: &[u8], seed: u64) -> Option<usize> {
    let mut want = vec![0u8; buf.len()];
    datagen(&mut want, seed);
    buf.iter().zip(&want).position(|(a, b)| a != b)
}

pub fn page_size() -> usize {
    // SAFETY: sysconf takes only integer arguments and touches no memory of ours.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The /proc/self/maps line of the mapping that holds `addr`.
pub fn maps_entry(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .find(|l| {
            let range = l.split_whitespace().next().unwrap_or("");
            let (a, b) = range.split_once('-').unwrap_or(("0", "0"));
            let (a, b) = (
                usize::from_str_radix(a, 16).unwrap_or(0),
                usize::from_str_radix(b, 16).unwrap_or(0),
            );
            (a..b).contains(&addr)
        })
        .map(str::to_string)
}

/// Whether the byte at `addr` can be read, without touching it from user
/// space: the kernel copies it into a pipe (EFAULT for unmapped, PROT_NONE
/// and guard pages).
pub fn probe_readable(addr: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: plain syscalls on our own fds; the kernel checks `addr`.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            fail("pipe2 failed");
        }
        let n = libc::write(fds[1], addr as *const libc::c_void, 1);
        libc::close(fds[0]);
        libc::close(fds[1]);
        n == 1
    }
}

/// errno of the last failed libc call, as an io::Error.
pub fn last_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// A C string from a path (for raw libc calls).
pub fn cpath(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| fail("path has a NUL byte"))
}

/// eventfd00/eventfd01: an O_NONBLOCK eventfd holding 5 + `add`, set up,
/// checkpointed, then read back whole (the sabotage adds one).
pub fn eventfd_count_test(add: u64) -> ! {
    test_init();
    // SAFETY: plain syscalls on our own fd.
    let fd = unsafe { libc::eventfd(5, libc::EFD_NONBLOCK) };
    if fd < 0 {
        fail("eventfd");
    }
    // SAFETY: writing one u64.
    unsafe { libc::write(fd, (&add as *const u64).cast(), 8) };
    test_daemon();
    test_waitsig();
    if sabotaged() {
        let one: u64 = 1;
        // SAFETY: writing one u64.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
    let mut c = Checks::new();
    let mut v: u64 = 0;
    // SAFETY: reading one u64; fcntl query.
    unsafe {
        c.eq("read", libc::read(fd, (&mut v as *mut u64).cast(), 8), 8);
        c.eq("flags", libc::fcntl(fd, libc::F_GETFL) & libc::O_NONBLOCK, libc::O_NONBLOCK);
    }
    c.eq("count", v, 5 + add);
    c.finish()
}

pub mod idcheck;
pub mod ghost_holes;
pub mod hugetlb;
pub mod mem;
pub mod mlock;
pub mod locks;
pub mod seccomp;
pub mod pty;

/// The data extents of file `fd` as SEEK_DATA/SEEK_HOLE report them, as
/// (start, end); the file offset is kept.
pub fn extents(fd: i32) -> Vec<(i64, i64)> {
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        // SAFETY: plain syscalls on the caller's fd.
        let d = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if d < 0 {
            break;
        }
        // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
        let h = unsafe { libc::lseek(fd, d, libc::SEEK_HOLE) };
        out.push((d, h));
        at = h;
    }
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    unsafe { libc::lseek(fd, pos, libc::SEEK_SET) };
    out
}

/// Up to `len` bytes of file `fd` at `off` (fewer at its end).
pub fn pread(fd: i32, off: i64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    // SAFETY: reading into our buffer of len bytes.
    let n = unsafe { libc::pread(fd, b.as_mut_ptr().cast(), len, off) };
    b.truncate(n.max(0) as usize);
    b
}

/// Wait for child `pid`: whether it exited with status 0.
pub fn exited_ok(pid: i32) -> bool {
    let mut st = 0;
    // SAFETY: a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    r == pid && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0
}

/// A child's "ready" to its parent over the pipe `ready`: one byte, then
/// both ends closed.
pub fn say_ready(ready: [i32; 2]) {
    // SAFETY: one byte to our pipe, then closing our ends.
    unsafe {
        libc::close(ready[0]);
        libc::write(ready[1], b"r".as_ptr().cast(), 1);
        libc::close(ready[1]);
    }
}

/// open(2) `path` with `flags`, failing the test if it can't.
pub fn open_or_fail(path: &Path, flags: libc::c_int) -> libc::c_int {
    let p = cpath(path);
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(p.as_ptr(), flags) };
    if fd < 0 {
        fail(&format!("open {} ({flags:#o}): {}", path.display(), last_err()));
    }
    fd
}

/// fstat(2) of `fd`, failing the test if it can't.
pub fn fstat_or_fail(fd: libc::c_int) -> libc::stat {
    // SAFETY: a zeroed stat buffer filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat into our buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        fail(&format!("fstat {fd}: {}", last_err()));
    }
    st
}

/// A pipe (read end, write end), failing the test if it can't.
pub fn pipe_or_fail() -> (libc::c_int, libc::c_int) {
    let mut p = [0i32; 2];
    // SAFETY: a valid out-array of two ints.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        fail(&format!("pipe: {}", last_err()));
    }
    (p[0], p[1])
}

/// Fork a child that serves requests: it gets the read end of a request
/// pipe and the write end of a reply pipe and runs `serve`, which is not
/// to return (if it does, the child exits with 1); the parent gets (child
/// pid, request write end, reply read end). Each side closes the other's
/// ends.
pub fn fork_server(serve: impl FnOnce(libc::c_int, libc::c_int)) -> (libc::c_int, libc::c_int, libc::c_int) {
    let (req_r, req_w) = pipe_or_fail();
    let (rep_r, rep_w) = pipe_or_fail();
    // SAFETY: the child closes the parent's ends, runs `serve` and leaves
    // with _exit: it never goes on as the parent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(&format!("fork: {}", last_err()));
    }
    if pid == 0 {
        // SAFETY: closing our copies of the parent's ends.
        unsafe {
            libc::close(req_w);
            libc::close(rep_r);
        }
        serve(req_r, rep_w);
        // A server that returns ends the child: it never goes on as the parent.
        // SAFETY: leaving the child at once.
        unsafe { libc::_exit(1) }
    }
    // SAFETY: closing the child's ends.
    unsafe {
        libc::close(req_r);
        libc::close(rep_w);
    }
    (pid, req_w, rep_r)
}

/// Ask a [`fork_server`] child: one request byte on `req`, then its reply
/// line from `rep` (without the newline); "no answer" if the request can't
/// be sent.
pub fn ask_line(req: libc::c_int, rep: libc::c_int) -> String {
    // SAFETY: a one-byte write; reads into a local buffer.
    unsafe {
        if libc::write(req, b"c".as_ptr().cast(), 1) != 1 {
            return "no answer".into();
        }
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while libc::read(rep, b.as_mut_ptr().cast(), 1) == 1 && b[0] != b'\n' {
            out.push(b[0]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// One read(2) of up to `max` bytes (empty on error or EOF).
pub fn read_some(fd: libc::c_int, max: usize) -> Vec<u8> {
    let mut buf = vec![0u8; max];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), max) };
    buf.truncate(n.max(0) as usize);
    buf
}

/// mkfifo(3) `path` with `mode`, failing the test if it can't.
pub fn mkfifo_or_fail(path: &Path, mode: libc::mode_t) {
    let c = cpath(path);
    // SAFETY: a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), mode) } != 0 {
        fail(&format!("mkfifo {}: {}", path.display(), last_err()));
    }
}

/// After the children's ready bytes: wait until every child has closed its
/// end too (EOF), so none is still changing its fd table when the runner
/// looks; then close ours.
pub fn wait_ready_closed(ready_r: i32) {
    let mut b = [0u8; 16];
    // SAFETY: reading into our buffer, then closing our own fd.
    unsafe {
        while libc::read(ready_r, b.as_mut_ptr().cast(), b.len()) > 0 {}
        libc::close(ready_r);
    }
}

/// A zeroed counter in anonymous shared memory (seen by children forked
/// after), valid for the program's life.
pub fn shared_counter() -> &'static std::sync::atomic::AtomicU64 {
    let len = std::mem::size_of::<std::sync::atomic::AtomicU64>();
    // SAFETY: a fresh anonymous shared mapping of our own, never unmapped.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
    };
    if p == libc::MAP_FAILED {
        fail(&format!("mmap: {}", last_err()));
    }
    // SAFETY: 8 zeroed, page-aligned bytes, valid for the program's life.
    unsafe { &*(p as *const std::sync::atomic::AtomicU64) }
}

/// The wait status of the process behind pidfd `fd` once it has exited
/// (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15); None while it lives
/// or where the kernel keeps none.
pub fn pidfd_exit_status(fd: i32) -> Option<i32> {
    const PIDFD_INFO_EXIT: u64 = 1 << 3;
    // _IOWR(0xFF, 11, struct pidfd_info) with its first, 64-byte version.
    const PIDFD_GET_INFO: libc::c_ulong = 0xC040_FF0B;
    let mut info = [0u64; 8];
    info[0] = PIDFD_INFO_EXIT;
    // SAFETY: the kernel writes at most the 64 bytes of `info`.
    let r = unsafe { libc::ioctl(fd, PIDFD_GET_INFO as _, info.as_mut_ptr()) };
    if r != 0 || info[0] & PIDFD_INFO_EXIT == 0 {
        return None;
    }
    Some((info[7] >> 32) as u32 as i32)
}

/// Wait (at most 10 s) until the low byte of a shared step counter (the
/// rest may carry a payload) reaches `n`.
pub fn wait_step(step: &std::sync::atomic::AtomicU64, n: u64) -> bool {
    let t = std::time::Instant::now();
    while step.load(std::sync::atomic::Ordering::SeqCst) & 0xff < n {
        if t.elapsed() > std::time::Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

/// The inode fd `fd` is open on; None if it is not open.
pub fn fd_ino(fd: libc::c_int) -> Option<u64> {
    // SAFETY: a zeroed stat buffer filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat into our buffer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

pub mod unixsk;

/// AIO (io_setup) for the aio tests: the kernel ABI's iocb and io_event,
/// and the syscalls as thin calls returning errors as `io::Error`.
pub mod aio {
    pub const IOCB_CMD_PREAD: u16 = 0;
    pub const IOCB_CMD_POLL: u16 = 5;
    /// `struct aio_ring`'s magic, at byte 16 of the ring (the context's address).
    pub const RING_MAGIC: u32 = 0xa10a10a1;

    /// `struct iocb`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Iocb {
        pub data: u64,
        pub key: u32,
        pub rw_flags: u32,
        pub lio_opcode: u16,
        pub reqprio: i16,
        pub fildes: u32,
        pub buf: u64,
        pub nbytes: u64,
        pub offset: i64,
        pub reserved2: u64,
        pub flags: u32,
        pub resfd: u32,
    }

    /// `struct io_event`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct IoEvent {
        pub data: u64,
        pub obj: u64,
        pub res: i64,
        pub res2: i64,
    }

    /// io_setup(nr): the context; skips the test where the kernel has no AIO.
    pub fn setup(nr: u32) -> u64 {
        let mut ctx: u64 = 0;
        // SAFETY: io_setup writes the context into our u64.
        if unsafe { libc::syscall(libc::SYS_io_setup, nr, &mut ctx as *mut u64) } != 0 {
            let e = super::last_err();
            if e.raw_os_error() == Some(libc::ENOSYS) {
                super::skip("no AIO (io_setup) in this kernel");
            }
            super::fail(&format!("io_setup: {e}"));
        }
        ctx
    }

    /// io_submit of `cbs` (which must stay in place until their events are
    /// reaped): how many went in.
    pub fn submit(ctx: u64, cbs: &mut [Iocb]) -> Result<usize, std::io::Error> {
        let mut list: Vec<*mut Iocb> = cbs.iter_mut().map(|c| c as *mut Iocb).collect();
        // SAFETY: valid iocbs, alive as long as the caller keeps `cbs`.
        let r = unsafe { libc::syscall(libc::SYS_io_submit, ctx, list.len() as libc::c_long, list.as_mut_ptr()) };
        if r < 0 { Err(super::last_err()) } else { Ok(r as usize) }
    }

    /// io_getevents(min, max) with a timeout in milliseconds.
    pub fn getevents(ctx: u64, min: usize, max: usize, ms: i64) -> Result<Vec<IoEvent>, std::io::Error> {
        let mut evs = vec![IoEvent::default(); max];
        let ts = libc::timespec { tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000 };
        // SAFETY: room for `max` events, a valid timeout.
        let r = unsafe { libc::syscall(libc::SYS_io_getevents, ctx, min as libc::c_long, max as libc::c_long, evs.as_mut_ptr(), &ts as *const libc::timespec) };
        if r < 0 {
            return Err(super::last_err());
        }
        evs.truncate(r as usize);
        Ok(evs)
    }

    /// The ring header's magic, head and tail, read at the context's address.
    pub fn ring_state(ctx: u64) -> (u32, u32, u32) {
        let p = ctx as *const u32;
        // SAFETY: the ring is mapped at the context's address (callers check
        // /proc/self/maps first); its header is eight u32 words.
        unsafe { (std::ptr::read_volatile(p.add(4)), std::ptr::read_volatile(p.add(2)), std::ptr::read_volatile(p.add(3))) }
    }

    /// Reap up to `n` events from user space, as libaio does: read them out
    /// of the ring and move its head (the kernel learns of it only when it
    /// next looks at the head).
    pub fn user_reap(ctx: u64, n: u32) -> Vec<IoEvent> {
        let p = ctx as *mut u32;
        // SAFETY: the ring is mapped at the context's address; its header
        // is eight u32 words, the events (32 bytes each, `nr` of them) follow.
        unsafe {
            let nr = std::ptr::read_volatile(p.add(1));
            let head = std::ptr::read_volatile(p.add(2));
            let tail = std::ptr::read_volatile(p.add(3));
            let avail = (tail + nr - head) % nr;
            let events = (ctx as usize + 32) as *const IoEvent;
            let out: Vec<IoEvent> = (0..n.min(avail)).map(|k| std::ptr::read_volatile(events.add(((head + k) % nr) as usize))).collect();
            std::ptr::write_volatile(p.add(2), (head + out.len() as u32) % nr);
            out
        }
    }

    /// Whether our maps show an AIO ring at `ctx`.
    pub fn ring_mapped(ctx: u64) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        maps.lines().any(|l| l.starts_with(&format!("{ctx:x}-")) && l.ends_with("/[aio] (deleted)"))
    }
}

/// inet socket helpers (the inet tests).
pub mod inet;
/// Netlink sockets (the netlink tests).
pub mod netlink;
pub mod tcp;

/// Network namespace tests: make this process a network namespace of its
/// own (needs root; skips with the reason when the kernel refuses).
/// Returns the namespace it left (for [`own_netns`]).
pub fn unshare_net() -> String {
    let before = netns_link();
    // SAFETY: plain syscall on this (single-threaded) process.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        skip(&format!("unshare(CLONE_NEWNET): {}", last_err()));
    }
    before
}

/// This process's network namespace ("net:[INODE]").
pub fn netns_link() -> String {
    std::fs::read_link("/proc/self/ns/net").map(|l| l.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Run a system tool (`ip`, `sysctl`, `nft`, ...) for a network test; its
/// stdout, or fail naming it.
pub fn run_tool(cmd: &str, args: &[&str]) -> String {
    match std::process::Command::new(cmd).args(args).stdin(std::process::Stdio::null()).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => fail(&format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => skip(&format!("{cmd} can't run here: {e}")),
    }
}

/// Whether this process is in a network namespace other than `host` (the
/// one [`unshare_net`] left).
pub fn own_netns(host: &str) -> bool {
    let ours = netns_link();
    !ours.is_empty() && ours != host
}
/// Packet sockets (the packet tests) and their mapped rings.
pub mod packet;
pub mod packet_ring;
/// ICMP ping sockets (the ping tests).
pub mod ping;

/// Namespace tests (uts, ipc): make this process a namespace of its own of
/// the kind of `flag` ("uts", "ipc": its /proc name), skipping with the
/// reason when the kernel refuses. Returns the namespace it left.
pub fn unshare_ns(flag: libc::c_int, kind: &str) -> String {
    let before = ns_link(kind);
    // SAFETY: plain syscall on this (single-threaded) process.
    if unsafe { libc::unshare(flag) } != 0 {
        skip(&format!("unshare of a new {kind} namespace: {}", last_err()));
    }
    before
}

/// This process's namespace of `kind` ("uts:[INODE]").
pub fn ns_link(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}")).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Write a sysctl under /proc/sys (fail naming it).
pub fn write_sysctl(name: &str, v: &str) {
    std::fs::write(format!("/proc/sys/{name}"), v).unwrap_or_else(|e| fail(&format!("writing {v:?} to /proc/sys/{name}: {e}")));
}

/// A sysctl under /proc/sys, trimmed (the error text when unreadable).
pub fn read_sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{name}")).map(|s| s.trim().to_string()).unwrap_or_else(|e| e.to_string())
}

/// A child in a namespace of its own (netns04, utsname01): the root forks
/// C, which unshares `flag` and counts. Namespaces nested in the tree are
/// refused at dump, naming C; after it the root checks, from outside,
/// that C still lives in a `/proc/PID/ns/<proc>` namespace other than its
/// own (`label` names it in messages) and still counts. `--sabotage
/// check`: the root expects C in its own namespace.
pub fn nested_ns_child(flag: i32, proc: &str, label: &str) -> ! {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    test_init();
    let count = shared_counter();
    let (r, w) = pipe_or_fail();
    // SAFETY: single-threaded; the child runs only the code below.
    let c = unsafe { libc::fork() };
    if c < 0 {
        fail(&format!("fork: {}", last_err()));
    }
    if c == 0 {
        // SAFETY: resetting a disposition; then plain syscalls.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            let ok = libc::unshare(flag) == 0;
            libc::write(w, [u8::from(ok)].as_ptr().cast(), 1);
        }
        loop {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into our buffer.
    if unsafe { libc::read(r, b.as_mut_ptr().cast(), 1) } != 1 || b[0] != 1 {
        fail(&format!("the child could not make a {label} namespace"));
    }
    let counts = || {
        let (n, end) = (count.load(Ordering::SeqCst), Instant::now() + Duration::from_secs(5));
        while count.load(Ordering::SeqCst) < n + 3 {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    };
    test_daemon();
    test_waitsig();

    let mut c_ = Checks::new();
    let ns = |p: &str| std::fs::read_link(p).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    let differ = ns(&format!("/proc/{c}/ns/{proc}")) != ns(&format!("/proc/self/ns/{proc}"));
    c_.check(differ != sabotaged(), || format!("the child is not in a {label} namespace of its own"));
    c_.check(counts(), || "the child stopped counting".into());
    // SAFETY: plain syscalls on our child.
    unsafe {
        libc::kill(c, libc::SIGKILL);
        libc::waitpid(c, std::ptr::null_mut(), 0);
    }
    c_.finish()
}
