//! file_locks02: open file description locks (F_OFD_SETLK), dumped with
//! --file-locks: a description this task and its child share holds a
//! write lock on bytes 5-11 and a read lock on 30-32; the child's own
//! description of the file a read lock on 40-44. After restore
//! F_OFD_GETLK from a new description finds each lock with its type and
//! range, and nothing between them.

use zdtm::locks;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (po, o) = locks::create("ofd", libc::O_RDWR);
    locks::setlk(o, libc::F_OFD_SETLK, libc::F_WRLCK, 5, 7);
    locks::setlk(o, libc::F_OFD_SETLK, libc::F_RDLCK, 30, 3);
    let child = locks::child(|| {
        let own = locks::open(&po, libc::O_RDONLY);
        locks::setlk(own, libc::F_OFD_SETLK, libc::F_RDLCK, 40, 5);
    });

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        locks::setlk(o, libc::F_OFD_SETLK, libc::F_UNLCK, 5, 7);
    }

    let f = locks::open(&po, libc::O_RDWR);
    let q = |ty, s, l| locks::getlk(f, libc::F_OFD_GETLK, ty, s, l);
    let un = (libc::F_UNLCK, 0i64, 0i64, 0i32);
    let mut ck = Checks::new();
    ck.eq("write lock 5-11", q(libc::F_WRLCK, 5, 7), (libc::F_WRLCK, 5, 7, -1));
    ck.eq("read lock 30-32", q(libc::F_WRLCK, 30, 3), (libc::F_RDLCK, 30, 3, -1));
    ck.eq("the child's read lock 40-44", q(libc::F_WRLCK, 40, 5), (libc::F_RDLCK, 40, 5, -1));
    ck.eq("read over the read locks", q(libc::F_RDLCK, 30, 20), un);
    ck.eq("nothing on 0-4", q(libc::F_WRLCK, 0, 5), un);
    ck.eq("nothing on 12-29", q(libc::F_WRLCK, 12, 18), un);
    ck.eq("nothing from 45", q(libc::F_WRLCK, 45, 0), un);
    locks::close(f);
    locks::reap(child);
    ck.finish()
}
