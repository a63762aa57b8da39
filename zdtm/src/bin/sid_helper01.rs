//! sid_helper01: a child of the root in a session whose leader lives. The
//! root is a child subreaper; it forks L, which calls setsid and forks M,
//! which forks G and exits: G is the root's child in L's session (and
//! group). After the restore G and L each say, from inside, their session
//! and group (L's), their parent (the root) and that they have no child
//! (the helper forked under L, with a pid of its own, is gone and reaped);
//! the root that its children are L and G and it has no dead child.
//!
//! `--sabotage check`: G leaves its group before it answers.

use zdtm::Checks;
use zdtm::idcheck::{children, fork, Ids, Pipes};

fn main() {
    zdtm::test_init();
    let root = std::process::id() as i32;
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        zdtm::fail(&format!("PR_SET_CHILD_SUBREAPER: {}", zdtm::last_err()));
    }
    let (pl, pg) = (Pipes::new(), Pipes::new());
    let mut p = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let l = fork();
    if l == 0 {
        // SAFETY: setsid takes nothing.
        if unsafe { libc::setsid() } < 0 {
            zdtm::fail(&format!("setsid: {}", zdtm::last_err()));
        }
        let m = fork();
        if m == 0 {
            let g = fork();
            if g == 0 {
                pl.close();
                pg.serve();
            }
            // SAFETY: 4 bytes from our stack to our pipe; _exit.
            unsafe {
                libc::write(p[1], (&g as *const i32).cast(), 4);
                libc::_exit(0);
            }
        }
        let mut st = 0;
        // SAFETY: waitpid gets a valid out-pointer.
        unsafe { libc::waitpid(m, &mut st, 0) };
        pg.close();
        pl.serve();
    }
    let mut g = 0i32;
    // SAFETY: 4 bytes into our variable.
    if unsafe { libc::read(p[0], (&mut g as *mut i32).cast(), 4) } != 4 {
        zdtm::fail("reading G's pid");
    }
    let (l, g) = (pl.member(l), pg.member(g));
    let want_l = Ids { ppid: root, pgid: l.pid, sid: l.pid, wait: -1, wait_errno: libc::ECHILD };
    let want_g = Ids { ppid: root, pgid: l.pid, sid: l.pid, wait: -1, wait_errno: libc::ECHILD };
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while g.ids(false).ppid != root || l.ids(false) != want_l {
        if std::time::Instant::now() > end {
            zdtm::fail(&format!("G {} was not reparented to the root, or L {} did not reap M", g.pid, l.pid));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let got = g.ids(false);
    if got != want_g {
        zdtm::fail(&format!("before the dump G {} says {got:?}, want {want_g:?}", g.pid));
    }
    zdtm::test_msg!("root {root}: L {} leads its session; G {} (in it) is the root's child", l.pid, g.pid);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut k = Checks::new();
    k.eq("G's ids (from inside)", g.ids(zdtm::sabotaged()), want_g);
    k.eq("L's ids (from inside)", l.ids(false), want_l);
    let mut kids = vec![l.pid, g.pid];
    kids.sort_unstable();
    k.eq("the root's children", children(root), kids);
    let mut st = 0;
    // SAFETY: waitpid gets a valid out-pointer.
    let w = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
    k.eq("waitpid(-1, WNOHANG) in the root (a dead child left?)", w, 0);
    let (lp, gp) = (l.pid, g.pid);
    k.check(g.finish(), || format!("G {gp} did not exit cleanly"));
    k.check(l.finish(), || format!("L {lp} did not exit cleanly"));
    k.finish()
}
