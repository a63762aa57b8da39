//! stopped10: the test itself is stopped. The root forks a helper H and
//! stops itself (SIGSTOP: a session leader's process group is orphaned,
//! so SIGTSTP would be discarded); H sees it stopped, says "ready" for it
//! (the pid file names the root) and exits. The runner dumps and restores
//! a stopped root, wants it stopped again, and continues it (SIGCONT)
//! before its SIGTERM. The root then checks it got exactly one SIGCONT,
//! from the runner (its parent): it stayed stopped until then; and it
//! reaps H, which saw it stopped before saying ready.
//!
//! `--sabotage check`: the root sends itself one more SIGCONT.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use zdtm::Checks;

static CONTS: AtomicU32 = AtomicU32::new(0);
static CONT_FROM: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_cont(_sig: libc::c_int, si: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    CONTS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    CONT_FROM.store(unsafe { (*si).si_pid() }, Ordering::SeqCst);
}

fn state_of(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()).unwrap_or('?')
}

/// H: wait for the root to stop, then say ready in its name.
fn helper(root: i32) -> ! {
    let end = Instant::now() + Duration::from_secs(10);
    while state_of(root) != 'T' {
        if Instant::now() > end {
            zdtm::test_msg!("helper: the root {root} did not stop");
            // SAFETY: leaving at once.
            unsafe { libc::_exit(1) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let pidfile = &zdtm::opts().pidfile;
    let mut tmp = pidfile.clone().into_os_string();
    tmp.push(".tmp");
    let ok = std::fs::write(&tmp, format!("{root}\n")).and_then(|_| std::fs::rename(&tmp, pidfile)).is_ok();
    // SAFETY: leaving at once (no verdict: the root writes it).
    unsafe { libc::_exit(if ok { 0 } else { 2 }) }
}

fn main() {
    zdtm::test_init();
    zdtm::install_handler(libc::SIGCONT, on_cont as *const () as usize, libc::SA_SIGINFO);
    // SAFETY: getpid takes no arguments and touches no memory of ours.
    let root = unsafe { libc::getpid() };
    // SAFETY: single-threaded; the child runs only `helper`.
    let h = unsafe { libc::fork() };
    if h < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if h == 0 {
        helper(root);
    }
    // Stopped here until the runner continues us (after the dump and
    // restore).
    // SAFETY: raise takes only integer arguments and touches no memory of ours.
    unsafe { libc::raise(libc::SIGSTOP) };
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: raise takes only integer arguments and touches no memory of ours.
        unsafe { libc::raise(libc::SIGCONT) };
    }
    let mut k = Checks::new();
    // SAFETY: getppid takes no arguments and touches no memory of ours.
    let parent = unsafe { libc::getppid() };
    k.eq("SIGCONTs received", CONTS.load(Ordering::SeqCst), 1);
    k.eq("the SIGCONT's sender (our parent, the runner)", CONT_FROM.load(Ordering::SeqCst), parent);
    let mut st = 0;
    // SAFETY: a valid out-pointer; H is our child.
    let r = unsafe { libc::waitpid(h, &mut st, 0) };
    k.check(r == h && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, || {
        format!("helper {h}: waitpid {r}, status {st:#x} (it did not see us stopped)")
    });
    k.finish()
}
