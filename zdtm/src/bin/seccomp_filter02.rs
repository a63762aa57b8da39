//! seccomp_filter02: filters on threads. The test process has two more
//! threads; once they exist the leader installs a filter with
//! SECCOMP_FILTER_FLAG_TSYNC (sysinfo fails with EPERM), so every thread
//! holds the same one (the dump keeps it on the leader only, flagged TSYNC,
//! and the restored leader syncs the others). A forked child process has
//! per-thread filters instead: its leader the inherited one, its thread
//! one more of its own (times fails with EACCES, prctl and sigaltstack
//! with EPERM: the dump's own syscalls in that thread must get past it).
//! After the restore each thread of both checks itself: the errnos of
//! sysinfo, times and prctl, Seccomp and Seccomp_filters of its own
//! status. Sabotage: one more TSYNC filter in the test process (times
//! fails with ENOENT, the count is 2).

use std::sync::mpsc;

use zdtm::seccomp::{self as sc, SYSINFO, TIMES};
use zdtm::Checks;

/// What a thread sees of its own filters: the errnos of sysinfo, times
/// and prctl (option 0: EINVAL when allowed), Seccomp, Seccomp_filters.
type Seen = (i32, i32, i32, String, String);

fn seen() -> Seen {
    let me = sc::gettid();
    let f = |n| sc::status_field(me, n);
    (sc::errno_of(SYSINFO), sc::errno_of(TIMES), sc::errno_of(libc::SYS_prctl), f("Seccomp"), f("Seccomp_filters"))
}

/// A thread answering `seen()` each time it is asked; `own` first
/// installs one more filter on itself alone, which also denies prctl and
/// sigaltstack: the syscalls the dump runs in each thread (with seccomp
/// suspended) to read its clear_tid address, securebits, parent-death
/// signal and sigaltstack.
fn worker(own: bool) -> (mpsc::Sender<()>, mpsc::Receiver<Seen>) {
    let (qtx, qrx) = mpsc::channel::<()>();
    let (atx, arx) = mpsc::channel::<Seen>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if own {
            sc::install(&[(TIMES, libc::EACCES), (libc::SYS_prctl, libc::EPERM), (libc::SYS_sigaltstack, libc::EPERM)], 0);
        }
        let _ = ready_tx.send(());
        while qrx.recv().is_ok() {
            if atx.send(seen()).is_err() {
                break;
            }
        }
    });
    ready_rx.recv().unwrap_or_else(|_| zdtm::fail("a worker thread died"));
    (qtx, arx)
}

fn ask(w: &(mpsc::Sender<()>, mpsc::Receiver<Seen>)) -> Option<Seen> {
    w.0.send(()).ok()?;
    w.1.recv_timeout(std::time::Duration::from_secs(10)).ok()
}

fn fmt(s: &Seen) -> String {
    format!("{} {} {} {} {}", s.0, s.1, s.2, s.3, s.4)
}

/// The child: its leader keeps the inherited filter, its thread adds one.
/// On each request byte it answers one line: the leader's and the
/// thread's views.
fn child(req: i32, rep: i32) -> ! {
    let w = worker(true);
    loop {
        let mut b = [0u8; 1];
        // SAFETY: one-byte reads and a write from local buffers.
        if unsafe { libc::read(req, b.as_mut_ptr().cast(), 1) } != 1 {
            std::process::exit(0);
        }
        let line = format!("{}|{}\n", fmt(&seen()), ask(&w).map_or("none".into(), |s| fmt(&s)));
        // SAFETY: as above.
        unsafe { libc::write(rep, line.as_ptr().cast(), line.len()) };
    }
}

fn main() {
    zdtm::test_init();
    sc::no_new_privs();
    let workers = [worker(false), worker(false)];
    sc::install(&[(SYSINFO, libc::EPERM)], sc::SECCOMP_FILTER_FLAG_TSYNC);

    // The child only spawns a thread and answers.
    let (pid, req_w, rep_r) = zdtm::fork_server(|req, rep| child(req, rep));
    let (eperm, einval) = (libc::EPERM, libc::EINVAL);
    let child_want = format!("{eperm} 0 {einval} 2 1|{eperm} {} {eperm} 2 2", libc::EACCES);
    if zdtm::ask_line(req_w, rep_r) != child_want {
        zdtm::fail("the child's filters are not as set up");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        sc::install(&[(TIMES, libc::ENOENT)], sc::SECCOMP_FILTER_FLAG_TSYNC);
    }

    let mut c = Checks::new();
    let want: Seen = (libc::EPERM, 0, libc::EINVAL, "2".into(), "1".into());
    c.eq("the leader's view", Some(seen()), Some(want.clone()));
    for (i, w) in workers.iter().enumerate() {
        c.eq(&format!("thread {i}'s view (TSYNC)"), ask(w), Some(want.clone()));
    }
    c.eq("the child's views (leader|thread)", zdtm::ask_line(req_w, rep_r), child_want);
    // SAFETY: our own child: killed and reaped.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    c.finish()
}
