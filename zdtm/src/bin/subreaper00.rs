//! subreaper00: the root is a child subreaper (PR_SET_CHILD_SUBREAPER).
//! Before the dump, its child A1 forked G1 and exited: G1 is the root's
//! child already. Its child A2 forked G2 and waits on a pipe. After the
//! restore the root checks it is still a subreaper, that G1's parent is
//! the root, then lets A2 exit: the orphaned G2 must be reparented to the
//! root (not to pid 1 or whatever reaper is above the tree), which reaps
//! both grandchildren itself.
//!
//! `--sabotage check`: the root stops being a subreaper before A2 exits.

use std::time::{Duration, Instant};

use zdtm::Checks;

fn fork() -> i32 {
    // SAFETY: we are single-threaded; the child runs only this program's
    // code and leaves with _exit.
    let p = unsafe { libc::fork() };
    if p < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    p
}

fn exit_now(code: i32) -> ! {
    // SAFETY: _exit leaves at once.
    unsafe { libc::_exit(code) }
}

/// A grandchild: sleep until killed (SIGTERM at its default, not the
/// root's handler).
fn grandchild() -> ! {
    // SAFETY: resetting a disposition; pause only waits.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        loop {
            libc::pause();
        }
    }
}

fn ppid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

fn subreaper() -> i32 {
    let mut v: libc::c_int = -1;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int.
    unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int) };
    v
}

fn until(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    ok()
}

/// waitpid(pid, flags): (returned pid, status).
fn wait(pid: i32, flags: libc::c_int) -> (i32, i32) {
    let mut st = 0;
    // SAFETY: a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut st, flags) };
    (r, st)
}

fn main() {
    zdtm::test_init();
    let root = std::process::id() as i32;
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        zdtm::fail(&format!("PR_SET_CHILD_SUBREAPER: {}", zdtm::last_err()));
    }
    let mut gpipe = [0; 2]; // grandchild pids, from A1 and A2
    let mut go = [0; 2]; // the root tells A2 to exit
    // SAFETY: pipe fills our arrays.
    if unsafe { libc::pipe(gpipe.as_mut_ptr()) } != 0 || unsafe { libc::pipe(go.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let report = |fd: i32, pid: i32| {
        // SAFETY: 4 bytes from our stack to our pipe.
        unsafe { libc::write(fd, (&pid as *const i32).cast(), 4) };
    };
    let read_pid = || -> i32 {
        let mut pid = 0i32;
        // SAFETY: 4 bytes into our stack variable.
        let n = unsafe { libc::read(gpipe[0], (&mut pid as *mut i32).cast(), 4) };
        if n != 4 {
            zdtm::fail("reading a grandchild's pid");
        }
        pid
    };

    // A1: fork G1, leave.
    let a1 = fork();
    if a1 == 0 {
        // G1 is born with SIGTERM at its default: the runner may look at
        // it as soon as A1 has reported it, before G1 runs at all.
        // SAFETY: resetting a disposition.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
        let g = fork();
        if g == 0 {
            grandchild();
        }
        report(gpipe[1], g);
        exit_now(0);
    }
    let g1 = read_pid();
    let (r, st) = wait(a1, 0);
    if r != a1 || !libc::WIFEXITED(st) {
        zdtm::fail(&format!("A1 {a1}: waitpid {r}, status {st:#x}"));
    }
    if !until(10, || ppid_of(g1) == Some(root)) {
        zdtm::fail(&format!("G1 {g1} was not reparented to us before the dump (parent {:?})", ppid_of(g1)));
    }

    // A2: fork G2, wait for the root's word, leave.
    let a2 = fork();
    if a2 == 0 {
        // SAFETY: closing our copy of the write end; reset SIGTERM.
        unsafe {
            libc::close(go[1]);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        }
        let g = fork();
        if g == 0 {
            grandchild();
        }
        report(gpipe[1], g);
        let mut b = [0u8; 1];
        // SAFETY: one byte into our buffer (EOF or the word: leave).
        unsafe { libc::read(go[0], b.as_mut_ptr().cast(), 1) };
        exit_now(0);
    }
    let g2 = read_pid();
    // SAFETY: our copy of the read end is A2's business.
    unsafe { libc::close(go[0]) };
    if !until(10, || ppid_of(g2) == Some(a2)) {
        zdtm::fail(&format!("G2 {g2} is not A2's child (parent {:?})", ppid_of(g2)));
    }
    zdtm::test_msg!("subreaper {root}: G1 {g1} (orphaned already), A2 {a2} with G2 {g2}");

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut k = Checks::new();
    if zdtm::sabotaged() {
        // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    }
    k.eq("PR_GET_CHILD_SUBREAPER", subreaper(), 1);
    k.eq("G1's parent", ppid_of(g1), Some(root));
    k.eq("G2's parent before A2 exits", ppid_of(g2), Some(a2));

    // A2 goes: G2 is an orphan now.
    // SAFETY: one byte from our stack to our pipe.
    unsafe { libc::write(go[1], b"x".as_ptr().cast(), 1) };
    let (r, st) = wait(a2, 0);
    k.check(r == a2 && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, || format!("A2 {a2}: waitpid {r}, status {st:#x}"));
    until(5, || ppid_of(g2) != Some(a2));
    k.eq("orphaned G2's new parent", ppid_of(g2), Some(root));

    // We reap both grandchildren: they are ours.
    for g in [g1, g2] {
        let (r, _) = wait(g, libc::WNOHANG);
        k.check(r == 0, || format!("waitpid({g}, WNOHANG) returned {r} ({}): not our running child", zdtm::last_err()));
        // SAFETY: kill takes only integer arguments and touches no memory of ours.
        unsafe { libc::kill(g, libc::SIGKILL) };
        let (r, st) = wait(g, 0);
        k.check(r == g && libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL, || {
            format!("reaping grandchild {g}: waitpid {r}, status {st:#x}")
        });
    }
    k.finish()
}
