//! sid_helper00: tasks in a session whose leader exited. The root is a
//! child subreaper; it forks S, which calls setsid and forks B (in S's
//! group) and C (in a group of its own), then exits: B and C are the
//! root's children in session S, whose leader is gone. After the restore
//! each says, from inside, its session (getsid), group (getpgid) and
//! parent (the root), and that it has no child (no helper, no zombie);
//! the root that its children are B and C, that it has no dead child
//! left (the helper was reaped) and that no task S exists.
//!
//! `--sabotage check`: B leaves its group before it answers.

use zdtm::Checks;
use zdtm::idcheck::{children, exists, fork, Ids, Pipes};

fn main() {
    zdtm::test_init();
    let root = std::process::id() as i32;
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        zdtm::fail(&format!("PR_SET_CHILD_SUBREAPER: {}", zdtm::last_err()));
    }
    let (pb, pc) = (Pipes::new(), Pipes::new());
    let mut pids = [0i32; 2];
    let mut p = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let s = fork();
    if s == 0 {
        // SAFETY: setsid takes nothing.
        if unsafe { libc::setsid() } < 0 {
            zdtm::fail(&format!("setsid: {}", zdtm::last_err()));
        }
        let b = fork();
        if b == 0 {
            pc.close();
            pb.serve();
        }
        let c = fork();
        if c == 0 {
            // SAFETY: setpgid takes integers.
            unsafe { libc::setpgid(0, 0) };
            pb.close();
            pc.serve();
        }
        // SAFETY: setpgid takes integers; 8 bytes from our array to our pipe; _exit.
        unsafe {
            libc::setpgid(c, c);
            let v = [b, c];
            libc::write(p[1], v.as_ptr().cast(), 8);
            libc::_exit(0);
        }
    }
    // SAFETY: 8 bytes into our array; waitpid gets a valid out-pointer.
    unsafe {
        libc::close(p[1]);
        if libc::read(p[0], pids.as_mut_ptr().cast(), 8) != 8 {
            zdtm::fail("reading B's and C's pids");
        }
        libc::close(p[0]);
        let mut st = 0;
        if libc::waitpid(s, &mut st, 0) != s {
            zdtm::fail(&format!("reaping S {s}: {}", zdtm::last_err()));
        }
    }
    let (b, c) = (pb.member(pids[0]), pc.member(pids[1]));
    let want_b = Ids { ppid: root, pgid: s, sid: s, wait: -1, wait_errno: libc::ECHILD };
    let want_c = Ids { ppid: root, pgid: c.pid, sid: s, wait: -1, wait_errno: libc::ECHILD };
    // They are the root's once S is gone (asked until then).
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.ids(false).ppid != root || c.ids(false).ppid != root {
        if std::time::Instant::now() > end {
            zdtm::fail("B and C were not reparented to the root");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    for (name, m, want) in [("B", &b, want_b), ("C", &c, want_c)] {
        let got = m.ids(false);
        if got != want {
            zdtm::fail(&format!("before the dump {name} {} says {got:?}, want {want:?}", m.pid));
        }
    }
    zdtm::test_msg!("root {root}: B {} and C {} in session {s}, whose leader S {s} exited", b.pid, c.pid);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut k = Checks::new();
    k.eq("B's ids (from inside)", b.ids(zdtm::sabotaged()), want_b);
    k.eq("C's ids (from inside)", c.ids(false), want_c);
    let mut kids = vec![b.pid, c.pid];
    kids.sort_unstable();
    k.eq("the root's children", children(root), kids);
    k.check(!exists(s), || format!("a task with pid {s} (the exited session leader) exists"));
    let mut st = 0;
    // SAFETY: waitpid gets a valid out-pointer.
    let w = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
    k.eq("waitpid(-1, WNOHANG) in the root (a dead child left?)", w, 0);
    let (bp, cp) = (b.pid, c.pid);
    k.check(b.finish(), || format!("B {bp} did not exit cleanly"));
    k.check(c.finish(), || format!("C {cp} did not exit cleanly"));
    k.finish()
}
