//! sched_deadline01 (crfail, suid): a thread under SCHED_DEADLINE. Its
//! runtime, deadline and period have no place in the image (CRIU's thread
//! core keeps a policy, a priority and a nice value), so the dump must
//! refuse, naming the thread; the thread stays under SCHED_DEADLINE.
//! Skipped where the kernel refuses the policy.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;

use zdtm::Checks;

static GO: AtomicU32 = AtomicU32::new(0);
const SCHED_DEADLINE: u32 = 6;

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER0).
#[repr(C)]
#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn want() -> SchedAttr {
    SchedAttr { size: 48, policy: SCHED_DEADLINE, runtime: 2_000_000, deadline: 50_000_000, period: 100_000_000, ..Default::default() }
}

fn get(tid: i32) -> SchedAttr {
    let mut a = SchedAttr::default();
    // SAFETY: the kernel writes at most 48 bytes into a live SchedAttr.
    unsafe { libc::syscall(libc::SYS_sched_getattr, tid, &mut a as *mut SchedAttr, 48u32, 0u32) };
    a
}

fn main() {
    zdtm::test_init();
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || -> Result<(), String> {
        let a = want();
        // SAFETY: a valid sched_attr for ourselves.
        if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0u32) } != 0 {
            let _ = tx.send(Err(zdtm::last_err()));
            return Ok(());
        }
        // SAFETY: gettid takes no arguments and touches no memory of ours.
        let _ = tx.send(Ok(unsafe { libc::syscall(libc::SYS_gettid) } as i32));
        while GO.load(Ordering::SeqCst) == 0 {
            // SAFETY: futex wait on a static word.
            unsafe {
                libc::syscall(libc::SYS_futex, GO.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, 0u32, std::ptr::null::<libc::timespec>());
            }
        }
        let got = get(0);
        if got != want() { Err(format!("sched_attr {got:?}, want {:?}", want())) } else { Ok(()) }
    });
    let tid = match rx.recv() {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => zdtm::skip(&format!("sched_setattr(SCHED_DEADLINE): {e}")),
        Err(_) => zdtm::fail("the thread died"),
    };

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let p = libc::sched_param { sched_priority: 0 };
        // SAFETY: a valid sched_param.
        unsafe { libc::syscall(libc::SYS_sched_setscheduler, tid, libc::SCHED_OTHER, &p) };
    }
    GO.store(1, Ordering::SeqCst);
    // SAFETY: futex wake on a static word.
    unsafe { libc::syscall(libc::SYS_futex, GO.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX) };
    let mut c = Checks::new();
    match h.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => c.check(false, || format!("thread {tid}: {e}")),
        Err(_) => c.check(false, || "the thread panicked".into()),
    }
    c.finish()
}
