//! lease00: file leases (F_SETLEASE), dumped with --file-locks: a read
//! lease on a file open read-only, a write lease on a file open
//! read-write; a third file has none. After restore F_GETLEASE and fdinfo
//! show each lease as it was, and a helper process finds them in force: a
//! reader of the read-leased file gets in, a writer does not, nor does a
//! reader of the write-leased one (which starts breaking it: checked last).

use zdtm::locks;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    // A lease break sends SIGIO to the lease holder.
    // SAFETY: ignoring a signal.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    let (pr, r) = locks::create("read-lease", libc::O_RDONLY);
    let (pw, w) = locks::create("write-lease", libc::O_RDWR);
    let (_pn, n) = locks::create("no-lease", libc::O_RDONLY);
    locks::set_lease(r, libc::F_RDLCK);
    locks::set_lease(w, libc::F_WRLCK);
    let me = std::process::id();

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        locks::set_lease(w, libc::F_UNLCK);
    }

    let mut ck = Checks::new();
    ck.eq("F_GETLEASE of the read lease", locks::lease(r), libc::F_RDLCK);
    ck.eq("F_GETLEASE of the write lease", locks::lease(w), libc::F_WRLCK);
    ck.eq("F_GETLEASE of the file without one", locks::lease(n), libc::F_UNLCK);
    let lines = |fd| locks::fdinfo_locks(fd).iter().map(|l| l.split(' ').take(4).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
    ck.eq("fdinfo of the read lease", lines(r), vec![format!("LEASE ACTIVE READ {me}")]);
    ck.eq("fdinfo of the write lease", lines(w), vec![format!("LEASE ACTIVE WRITE {me}")]);
    let seen = locks::in_helper(move || {
        let nb = libc::O_NONBLOCK;
        let r1 = locks::try_open(&pr, libc::O_RDONLY | nb).map(locks::close);
        let r2 = locks::try_open(&pr, libc::O_WRONLY | nb).map(locks::close);
        let r3 = locks::try_open(&pw, libc::O_RDONLY | nb).map(locks::close);
        format!("{r1:?} {r2:?} {r3:?}")
    });
    let wb = libc::EWOULDBLOCK;
    ck.eq("a helper's opens: read-leased for reading, for writing; write-leased for reading", seen, format!("Ok(()) Err({wb}) Err({wb})"));
    ck.finish()
}
