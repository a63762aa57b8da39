//! ptraced00 (crfail): the root traces its child C (PTRACE_SEIZE) and
//! holds it in a tracing stop (PTRACE_INTERRUPT). ptrace allows one
//! tracer, and criu can't take the tracer's place: the dump must fail
//! (CRIU 4.2 refuses such a task too), leaving the tree as it was. After
//! it the root checks C is still its tracee, stopped where it was: its
//! registers read back the same and C's counter did not move; then it lets
//! C go and sees it count again.
//!
//! `--sabotage check`: the root detaches C before checking.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use zdtm::Checks;

fn ptrace(req: libc::c_uint, pid: i32, data: usize) -> i64 {
    // SAFETY: the requests used here take no pointers but `data` for
    // PTRACE_GETREGS (a valid out-buffer given by the caller).
    unsafe { libc::ptrace(req, pid, std::ptr::null_mut::<libc::c_void>(), data as *mut libc::c_void) }
}

fn regs(pid: i32) -> Result<libc::user_regs_struct, String> {
    // SAFETY: zeroed registers are a valid out-buffer.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    if ptrace(libc::PTRACE_GETREGS, pid, &mut r as *mut _ as usize) != 0 {
        return Err(format!("PTRACE_GETREGS({pid}): {}", zdtm::last_err()));
    }
    Ok(r)
}

fn main() {
    zdtm::test_init();
    let count = zdtm::shared_counter();
    // SAFETY: single-threaded; the child runs only this loop.
    let c = unsafe { libc::fork() };
    if c < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if c == 0 {
        // SAFETY: resetting a disposition (SIGKILL ends it anyway).
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
        loop {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let bail = |why: String| -> ! {
        // SAFETY: kill takes only integer arguments and touches no memory of ours.
        unsafe { libc::kill(c, libc::SIGKILL) };
        zdtm::fail(&why)
    };
    let end = Instant::now() + Duration::from_secs(10);
    while count.load(Ordering::SeqCst) < 3 {
        if Instant::now() > end {
            bail("the child does not count".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if ptrace(libc::PTRACE_SEIZE, c, 0) != 0 || ptrace(libc::PTRACE_INTERRUPT, c, 0) != 0 {
        bail(format!("PTRACE_SEIZE/INTERRUPT {c}: {}", zdtm::last_err()));
    }
    let mut st = 0;
    // SAFETY: a valid out-pointer; C is our tracee.
    if unsafe { libc::waitpid(c, &mut st, libc::__WALL) } != c || !libc::WIFSTOPPED(st) {
        bail(format!("child {c} did not stop for us: status {st:#x}"));
    }
    let at = regs(c).unwrap_or_else(|e| bail(e));
    let n = count.load(Ordering::SeqCst);
    zdtm::test_msg!("child {c} in a tracing stop at ip {:#x}, count {n}", at.rip);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        ptrace(libc::PTRACE_DETACH, c, 0);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut k = Checks::new();
    match regs(c) {
        Ok(r) => {
            k.eq("the tracee's ip", r.rip, at.rip);
            k.eq("the tracee's sp", r.rsp, at.rsp);
        }
        Err(e) => k.check(false, || format!("the child is no longer our stopped tracee: {e}")),
    }
    k.eq("the tracee's count while stopped", count.load(Ordering::SeqCst), n);
    // Let it go: it counts again.
    ptrace(libc::PTRACE_DETACH, c, 0);
    let end = Instant::now() + Duration::from_secs(10);
    while count.load(Ordering::SeqCst) <= n + 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    k.check(count.load(Ordering::SeqCst) > n + 2, || "the child does not count once detached".into());
    // SAFETY: plain syscall, then reaping our child.
    unsafe {
        libc::kill(c, libc::SIGKILL);
        libc::waitpid(c, &mut st, 0);
    }
    k.finish()
}
