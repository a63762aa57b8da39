//! file_locks01: POSIX record locks (fcntl F_SETLK) of two tasks, dumped
//! with --file-locks: this task holds a write lock on bytes 10-29 and a
//! read lock from 50 to the end of a file; its child, on its own
//! description of that file, a write lock on 30-34, and on a file of its
//! own a write lock on byte 0. After restore a helper process asks
//! F_GETLK over each range and between them: each lock is there with its
//! type, range and owner, and nothing else is locked.

use zdtm::locks;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (pp, p) = locks::create("posix", libc::O_RDWR);
    let (pq, _q) = locks::create("child-own", libc::O_RDWR);
    locks::setlk(p, libc::F_SETLK, libc::F_WRLCK, 10, 20);
    locks::setlk(p, libc::F_SETLK, libc::F_RDLCK, 50, 0);
    let child = locks::child(|| {
        let own = locks::open(&pp, libc::O_RDWR);
        locks::setlk(own, libc::F_SETLK, libc::F_WRLCK, 30, 5);
        let q = locks::open(&pq, libc::O_RDWR);
        locks::setlk(q, libc::F_SETLK, libc::F_WRLCK, 0, 1);
    });
    let me = std::process::id() as i32;

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        locks::setlk(p, libc::F_SETLK, libc::F_UNLCK, 10, 20);
    }

    let (pp2, pq2) = (pp.clone(), pq.clone());
    let seen = locks::in_helper(move || {
        let f = locks::open(&pp2, libc::O_RDWR);
        let g = locks::open(&pq2, libc::O_RDWR);
        let q = |fd, ty, s, l| format!("{:?}", locks::getlk(fd, libc::F_GETLK, ty, s, l));
        [
            q(f, libc::F_WRLCK, 10, 20),
            q(f, libc::F_WRLCK, 30, 5),
            q(f, libc::F_WRLCK, 50, 10),
            q(f, libc::F_RDLCK, 50, 10),
            q(f, libc::F_WRLCK, 0, 10),
            q(f, libc::F_WRLCK, 35, 15),
            q(g, libc::F_WRLCK, 0, 1),
            q(g, libc::F_WRLCK, 1, 0),
        ]
        .join("\n")
    });
    let un = (libc::F_UNLCK, 0i64, 0i64, 0i32);
    let want = [
        (libc::F_WRLCK, 10, 20, me),
        (libc::F_WRLCK, 30, 5, child),
        (libc::F_RDLCK, 50, 0, me),
        un,
        un,
        un,
        (libc::F_WRLCK, 0, 1, child),
        un,
    ]
    .map(|w| format!("{w:?}"))
    .join("\n");
    let mut ck = Checks::new();
    ck.eq("F_GETLK (type, start, len, pid) over the ranges", seen, want);
    locks::reap(child);
    ck.finish()
}
