//! sched_policy00: scheduling survives per thread: the main thread and four
//! threads each with their own policy, real-time priority and nice value
//! (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_FIFO, SCHED_RR with
//! SCHED_RESET_ON_FORK; negative and positive nice). Each thread checks its
//! own after, with sched_getscheduler/sched_getparam/getpriority on
//! itself. Needs root (real-time policies and lowering nice).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;

use zdtm::Checks;

/// Set (and futex-woken) once SIGTERM came.
static GO: AtomicU32 = AtomicU32::new(0);

/// (policy with flags, rt priority, nice)
type Sched = (i32, i32, i32);

const PLAN: [Sched; 5] = [
    (libc::SCHED_OTHER, 0, 3),
    (libc::SCHED_BATCH, 0, 7),
    (libc::SCHED_IDLE, 0, 11),
    (libc::SCHED_FIFO, 10, -4),
    (libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, 3, 2),
];

fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Set thread `tid`'s scheduling.
fn set(tid: i32, (policy, prio, nice): Sched) -> Result<(), String> {
    // SAFETY: plain syscalls with a valid sched_param.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0 {
            return Err(format!("setpriority({tid}, {nice}): {}", zdtm::last_err()));
        }
        let p = libc::sched_param { sched_priority: prio };
        if libc::syscall(libc::SYS_sched_setscheduler, tid, policy, &p) != 0 {
            return Err(format!("sched_setscheduler({tid}, {policy:#x}, {prio}): {}", zdtm::last_err()));
        }
    }
    Ok(())
}

/// The calling thread's scheduling.
fn get() -> Sched {
    // SAFETY: plain syscalls on ourselves, a valid out-param.
    unsafe {
        let policy = libc::syscall(libc::SYS_sched_getscheduler, 0) as i32;
        let mut p = libc::sched_param { sched_priority: -1 };
        libc::syscall(libc::SYS_sched_getparam, 0, &mut p);
        // The raw syscall says 20 - nice (never negative).
        let raw = libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) as i32;
        (policy, p.sched_priority, 20 - raw)
    }
}

fn wait_go() {
    while GO.load(Ordering::SeqCst) == 0 {
        // SAFETY: futex wait on a static word.
        unsafe {
            libc::syscall(libc::SYS_futex, GO.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, 0u32, std::ptr::null::<libc::timespec>());
        }
    }
}

fn main() {
    zdtm::test_init();
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for (i, &want) in PLAN.iter().enumerate().skip(1) {
        let tx = tx.clone();
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            set(0, want).map_err(|e| format!("thread {i}: {e}"))?;
            let _ = tx.send((i, gettid(), get()));
            drop(tx);
            wait_go();
            let got = get();
            if got != want {
                return Err(format!("thread {i}: (policy, prio, nice) {got:?}, want {want:?}"));
            }
            Ok(())
        }));
    }
    drop(tx);
    if let Err(e) = set(0, PLAN[0]) {
        zdtm::fail(&format!("main thread: {e}"));
    }
    let mut tids = vec![0; PLAN.len()];
    tids[0] = gettid();
    for (i, tid, got) in rx.iter() {
        if got != PLAN[i] {
            zdtm::fail(&format!("thread {i}: (policy, prio, nice) {got:?} right after setting {:?}", PLAN[i]));
        }
        tids[i] = tid;
    }
    if tids.contains(&0) {
        let errs: Vec<String> = handles.into_iter().filter_map(|h| h.join().ok()?.err()).collect();
        zdtm::fail(&format!("threads failed to set up: {}", errs.join("; ")));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // Thread 1 (SCHED_BATCH, nice 7) gets nice 8.
        let t1 = tids[1];
        // SAFETY: setpriority takes only integer arguments and touches no memory of ours.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, t1 as libc::id_t, 8) };
    }
    GO.store(1, Ordering::SeqCst);
    // SAFETY: futex wake on a static word.
    unsafe { libc::syscall(libc::SYS_futex, GO.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX) };
    let mut c = Checks::new();
    let got = get();
    c.check(got == PLAN[0], || format!("main thread: (policy, prio, nice) {got:?}, want {:?}", PLAN[0]));
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => c.check(false, || e),
            Err(_) => c.check(false, || "a thread panicked".into()),
        }
    }
    c.finish()
}
