//! The stopped-task tests (stopped00, stopped01, stopped12), one program
//! each around [`run`]: the root forks a child C that counts, in a shared
//! mapping, once per millisecond per thread (its main thread and
//! `threads` more). C leads its own process group, so its group is not
//! orphaned and a SIGTSTP stops it as it stops a shell job. The root stops
//! C with `sig` and sees every thread of C stopped (/proc), without waiting
//! for it: the stop stays unreported, as a parent that has not called
//! wait yet. Ready. After the runner's SIGTERM the root checks, from
//! inside the tree:
//! - every thread of C is in state `T (stopped)` and no counter moves;
//! - wait(WSTOPPED|WNOWAIT) reports C stopped by `sig` (CRIU's restore
//!   stops the task again with the signal it had: the same report);
//! - SIGCONT resumes it: wait(WCONTINUED) reports it, every counter moves;
//! - SIGTERM ends it as any task: killed by SIGTERM.
//!
//! `--sabotage check`: the root sends C a SIGCONT before checking.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zdtm::Checks;

/// Counters per thread of C: main thread first.
struct Counters {
    words: &'static [AtomicU64],
}

impl Counters {
    fn new(n: usize) -> Counters {
        let len = n * std::mem::size_of::<AtomicU64>();
        // SAFETY: a fresh anonymous shared mapping of our own, zeroed; it
        // stays mapped for the life of the process (and of C).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            zdtm::fail(&format!("mmap: {}", zdtm::last_err()));
        }
        // SAFETY: `len` bytes of zeroed shared memory, 8-aligned (a page),
        // valid for 'static (never unmapped); AtomicU64 has u64's layout.
        let words = unsafe { std::slice::from_raw_parts(p as *const AtomicU64, n) };
        Counters { words }
    }

    fn get(&self) -> Vec<u64> {
        self.words.iter().map(|w| w.load(Ordering::SeqCst)).collect()
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// C: count forever, one counter per thread.
fn child(c: &'static Counters, threads: usize) -> ! {
    // The root's SIGTERM handler is not C's: SIGTERM kills it.
    // SAFETY: resetting a disposition to its default.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
    // SAFETY: plain syscall: C leads a process group of its own.
    if unsafe { libc::setpgid(0, 0) } != 0 {
        zdtm::test_msg!("child: setpgid: {}", zdtm::last_err());
        // SAFETY: leaving at once.
        unsafe { libc::_exit(1) };
    }
    for i in 1..=threads {
        std::thread::spawn(move || {
            loop {
                c.words[i].fetch_add(1, Ordering::SeqCst);
                sleep_ms(1);
            }
        });
    }
    loop {
        c.words[0].fetch_add(1, Ordering::SeqCst);
        sleep_ms(1);
    }
}

/// The state letter of each thread of `pid` (/proc/PID/task/*/stat), by tid.
fn thread_states(pid: i32) -> Vec<(i32, char)> {
    let mut out: Vec<(i32, char)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .map(|tid: i32| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap_or_default();
                    let st = stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()).unwrap_or('?');
                    (tid, st)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// The State line of each thread of `pid` (/proc/PID/task/*/status).
fn thread_status_states(pid: i32) -> Vec<(i32, String)> {
    thread_states(pid)
        .into_iter()
        .map(|(tid, _)| {
            let st = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
            let line = st.lines().find_map(|l| l.strip_prefix("State:")).unwrap_or("?").trim().to_string();
            (tid, line)
        })
        .collect()
}

/// Wait until `ok` holds (polling every 2 ms), at most `secs` seconds.
fn until(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if ok() {
            return true;
        }
        sleep_ms(2);
    }
    ok()
}

/// waitid(P_PID, pid, flags | WNOHANG), retried until it reports
/// something or `secs` pass: (si_code, si_status), or None.
fn waitid_poll(pid: i32, flags: libc::c_int, secs: u64) -> Result<Option<(i32, i32)>, String> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        // SAFETY: a zeroed siginfo is a valid out-buffer.
        let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain syscall with a valid out-pointer.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut si, flags | libc::WNOHANG) };
        if r != 0 {
            return Err(format!("waitid({pid}): {}", zdtm::last_err()));
        }
        // SAFETY: the kernel filled the SIGCHLD fields (or left zeros).
        let (spid, status) = unsafe { (si.si_pid(), si.si_status()) };
        if spid == pid {
            return Ok(Some((si.si_code, status)));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        sleep_ms(2);
    }
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill takes only integer arguments and touches no memory of ours.
    unsafe { libc::kill(pid, sig) };
}

/// The whole test: C stopped by `sig`, with `threads` threads besides its
/// main one.
pub fn run(sig: i32, threads: usize) -> ! {
    zdtm::test_init();
    let counters: &'static Counters = Box::leak(Box::new(Counters::new(threads + 1)));
    // SAFETY: single-threaded here; the child runs only this program's code.
    let c = unsafe { libc::fork() };
    if c < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if c == 0 {
        child(counters, threads);
    }
    let bail = |why: String| -> ! {
        kill(c, libc::SIGKILL);
        zdtm::fail(&why)
    };
    // C runs: every thread counts, and it leads its group.
    if !until(10, || counters.get().iter().all(|&n| n > 2) && thread_states(c).len() == threads + 1) {
        bail(format!("child {c} did not start counting in all {} threads: {:?}", threads + 1, counters.get()));
    }
    // SAFETY: getpgid takes no arguments and touches no memory of ours.
    if !until(5, || unsafe { libc::getpgid(c) } == c) {
        bail(format!("child {c} does not lead its own process group"));
    }
    kill(c, sig);
    if !until(10, || thread_states(c).iter().all(|(_, s)| *s == 'T')) {
        bail(format!("child {c} did not stop on signal {sig}: {:?}", thread_states(c)));
    }
    zdtm::test_msg!("child {c} ({} threads) stopped by signal {sig}", threads + 1);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        kill(c, libc::SIGCONT);
        sleep_ms(20);
    }
    let mut k = Checks::new();
    // A restored task stops once it runs again: its threads may still be
    // on their way into the group stop.
    until(2, || thread_states(c).iter().all(|(_, s)| *s == 'T'));
    let states = thread_status_states(c);
    k.eq("threads of the child", states.len(), threads + 1);
    for (tid, st) in &states {
        k.check(st == "T (stopped)", || format!("thread {tid} of child {c} is in state {st:?}, not \"T (stopped)\""));
    }
    let before = counters.get();
    sleep_ms(100);
    let after = counters.get();
    k.check(before == after, || format!("the stopped child's threads counted on: {before:?} -> {after:?}"));
    match waitid_poll(c, libc::WSTOPPED | libc::WNOWAIT, 0) {
        Ok(Some((code, status))) => {
            k.eq("wait(WSTOPPED) si_code (CLD_STOPPED)", code, libc::CLD_STOPPED);
            k.eq("wait(WSTOPPED): the stop signal", status, sig);
        }
        Ok(None) => k.check(false, || format!("wait(WSTOPPED) reports nothing for child {c}: not stopped")),
        Err(e) => k.check(false, || e),
    }
    if k.failed() {
        kill(c, libc::SIGKILL);
        k.finish();
    }

    // SIGCONT resumes every thread, and the parent hears of it.
    kill(c, libc::SIGCONT);
    match waitid_poll(c, libc::WCONTINUED, 5) {
        Ok(Some((code, _))) => k.eq("wait(WCONTINUED) si_code (CLD_CONTINUED)", code, libc::CLD_CONTINUED),
        Ok(None) => k.check(false, || format!("wait(WCONTINUED) reports nothing for child {c} after SIGCONT")),
        Err(e) => k.check(false, || e),
    }
    let base = counters.get();
    let moved = until(10, || counters.get().iter().zip(&base).all(|(n, b)| n > b));
    k.check(moved, || format!("after SIGCONT not every thread counts: {base:?} -> {:?}", counters.get()));
    let states = thread_states(c);
    k.check(states.iter().all(|(_, s)| matches!(s, 'R' | 'S')), || format!("after SIGCONT the child's threads are in {states:?}"));

    // And SIGTERM ends it.
    kill(c, libc::SIGTERM);
    let mut st = 0;
    // SAFETY: a valid out-pointer; C is our child.
    let r = unsafe { libc::waitpid(c, &mut st, 0) };
    k.eq("waitpid of the child", r, c);
    k.check(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGTERM, || format!("the child ended with status {st:#x}, not killed by SIGTERM"));
    if k.failed() {
        kill(c, libc::SIGKILL);
    }
    k.finish()
}
