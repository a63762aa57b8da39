//! pgrp_helper00: a task in a process group whose leader exited. The root
//! forks L, which leads its own group, and B, which joins L's group; L
//! exits (the root reaps it). After the restore B says, from inside, that
//! its group is still L (getpgid) and its session the root's (getsid), that
//! it has no child (no helper left, no zombie: waitpid gives ECHILD); the
//! root that its only child is B and that no task L exists.
//!
//! `--sabotage check`: B leaves L's group before it answers.

use zdtm::Checks;
use zdtm::idcheck::{children, exists, fork, Ids, Pipes};

fn main() {
    zdtm::test_init();
    let root = std::process::id() as i32;
    // SAFETY: getsid takes an integer.
    let sid = unsafe { libc::getsid(0) };

    let l = fork();
    if l == 0 {
        // SAFETY: setpgid takes integers; pause only waits for the SIGKILL.
        unsafe {
            libc::setpgid(0, 0);
            loop {
                libc::pause();
            }
        }
    }
    // SAFETY: setpgid takes integers (both sides set it: no race).
    unsafe { libc::setpgid(l, l) };
    let pipes = Pipes::new();
    let b = fork();
    if b == 0 {
        // SAFETY: setpgid takes integers.
        if unsafe { libc::setpgid(0, l) } != 0 {
            zdtm::fail(&format!("B joining group {l}: {}", zdtm::last_err()));
        }
        pipes.serve();
    }
    // SAFETY: setpgid takes integers.
    unsafe { libc::setpgid(b, l) };
    let b = pipes.member(b);
    let mut st = 0;
    // SAFETY: kill takes integers; waitpid gets a valid out-pointer.
    if unsafe { libc::kill(l, libc::SIGKILL) } != 0 || unsafe { libc::waitpid(l, &mut st, 0) } != l {
        zdtm::fail(&format!("ending L {l}: {}", zdtm::last_err()));
    }
    let want = Ids { ppid: root, pgid: l, sid, wait: -1, wait_errno: libc::ECHILD };
    let before = b.ids(false);
    if before != want {
        zdtm::fail(&format!("before the dump B {} says {before:?}, want {want:?}", b.pid));
    }
    zdtm::test_msg!("root {root} (session {sid}): B {} in group {l}, whose leader L {l} exited", b.pid);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut k = Checks::new();
    k.eq("B's ids (from inside)", b.ids(zdtm::sabotaged()), want);
    k.eq("the root's children", children(root), vec![b.pid]);
    k.check(!exists(l), || format!("a task with pid {l} (the exited leader) exists"));
    let bpid = b.pid;
    k.check(b.finish(), || format!("B {bpid} did not exit cleanly"));
    k.finish()
}
