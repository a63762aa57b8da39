//! file_locks00: flock()s, dumped with --file-locks. This task holds a
//! shared flock on one file; its child holds an exclusive one on a file
//! whose description both share (opened here, inherited), and a shared one
//! on a file of its own. After restore each lock is there again (a new
//! description can't take what conflicts, can take what doesn't), set by
//! the same task as before (fdinfo's lock line), and a file nobody locked
//! is free.

use zdtm::locks::{self, flock_free};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (pa, a) = locks::create("shared-ex", libc::O_RDWR);
    let (pb, b) = locks::create("parent-sh", libc::O_RDONLY);
    let (pc, _c) = locks::create("free", libc::O_RDWR);
    let pd = zdtm::dirname().join("child-sh");
    if let Err(e) = std::fs::write(&pd, b"d") {
        zdtm::fail(&format!("write {}: {e}", pd.display()));
    }
    if locks::flock(b, libc::LOCK_SH) != 0 {
        zdtm::fail("flock LOCK_SH");
    }
    let child = locks::child(|| {
        let d = locks::open(&pd, libc::O_RDONLY);
        if locks::flock(a, libc::LOCK_EX) != 0 || locks::flock(d, libc::LOCK_SH) != 0 {
            zdtm::fail("the child's flock");
        }
    });
    let me = std::process::id();

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // Through the shared description: the child's lock goes.
        locks::flock(a, libc::LOCK_UN);
    }

    let mut ck = Checks::new();
    ck.eq("shared-ex: LOCK_SH from another description", flock_free(&pa, libc::LOCK_SH), false);
    ck.eq("shared-ex: LOCK_EX from another description", flock_free(&pa, libc::LOCK_EX), false);
    ck.eq("parent-sh: LOCK_SH from another description", flock_free(&pb, libc::LOCK_SH), true);
    ck.eq("parent-sh: LOCK_EX from another description", flock_free(&pb, libc::LOCK_EX), false);
    ck.eq("child-sh: LOCK_SH from another description", flock_free(&pd, libc::LOCK_SH), true);
    ck.eq("child-sh: LOCK_EX from another description", flock_free(&pd, libc::LOCK_EX), false);
    ck.eq("free: LOCK_EX from another description", flock_free(&pc, libc::LOCK_EX), true);
    let who = |fd| locks::fdinfo_locks(fd).iter().map(|l| l.split(' ').take(4).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
    ck.eq("shared-ex: fdinfo", who(a), vec![format!("FLOCK ADVISORY WRITE {child}")]);
    ck.eq("parent-sh: fdinfo", who(b), vec![format!("FLOCK ADVISORY READ {me}")]);
    locks::reap(child);
    ck.finish()
}
