//! file_locks04: a POSIX lock on a file the task also maps. A restore
//! closes the fds it maps files through, and a task loses its POSIX locks
//! on a file when it closes any fd of it: the dump (--file-locks) refuses
//! this by name (crfail) and the task runs on with its lock, which a
//! helper's F_GETLK finds.

use zdtm::locks;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (pp, p) = locks::create("mapped", libc::O_RDWR);
    // SAFETY: a fresh shared mapping of our own file, kept for the program's life.
    let m = unsafe { libc::mmap(std::ptr::null_mut(), 100, libc::PROT_READ, libc::MAP_SHARED, p, 0) };
    if m == libc::MAP_FAILED {
        zdtm::fail(&format!("mmap: {}", zdtm::last_err()));
    }
    locks::setlk(p, libc::F_SETLK, libc::F_WRLCK, 0, 10);
    let me = std::process::id() as i32;

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        locks::setlk(p, libc::F_SETLK, libc::F_UNLCK, 0, 10);
    }

    let seen = locks::in_helper(move || {
        let f = locks::open(&pp, libc::O_RDWR);
        format!("{:?}", locks::getlk(f, libc::F_GETLK, libc::F_WRLCK, 0, 0))
    });
    let mut ck = Checks::new();
    ck.eq("F_GETLK (type, start, len, pid)", seen, format!("{:?}", (libc::F_WRLCK, 0i64, 10i64, me)));
    ck.finish()
}
