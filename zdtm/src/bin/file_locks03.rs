//! file_locks03: POSIX locks of two tasks through one description (opened
//! here, inherited by the child), dumped with --file-locks: this task
//! holds a read lock on bytes 0-9, the child a write lock on 20-29. After
//! restore a helper's F_GETLK finds both, each with its owner, and
//! nothing else.

use zdtm::locks;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (pp, p) = locks::create("posix-shared", libc::O_RDWR);
    locks::setlk(p, libc::F_SETLK, libc::F_RDLCK, 0, 10);
    let child = locks::child(|| locks::setlk(p, libc::F_SETLK, libc::F_WRLCK, 20, 10));
    let me = std::process::id() as i32;

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        locks::setlk(p, libc::F_SETLK, libc::F_UNLCK, 0, 10);
    }

    let seen = locks::in_helper(move || {
        let f = locks::open(&pp, libc::O_RDWR);
        let q = |ty, s, l| format!("{:?}", locks::getlk(f, libc::F_GETLK, ty, s, l));
        [q(libc::F_WRLCK, 0, 10), q(libc::F_WRLCK, 20, 10), q(libc::F_WRLCK, 10, 10), q(libc::F_WRLCK, 30, 0)].join("\n")
    });
    let un = (libc::F_UNLCK, 0i64, 0i64, 0i32);
    let want = [(libc::F_RDLCK, 0, 10, me), (libc::F_WRLCK, 20, 10, child), un, un].map(|w| format!("{w:?}")).join("\n");
    let mut ck = Checks::new();
    ck.eq("F_GETLK (type, start, len, pid) over the ranges", seen, want);
    locks::reap(child);
    ck.finish()
}
