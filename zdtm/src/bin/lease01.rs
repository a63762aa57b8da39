//! lease01: leases that are breaking when dumped (--file-locks): a write
//! lease a helper's O_WRONLY open broke (it is going: target F_UNLCK), a
//! write lease a helper's O_RDONLY open broke (dropping to a read lease),
//! and a read lease a helper's O_WRONLY open broke. After restore each is
//! breaking again towards its target (F_GETLEASE, fdinfo "BREAKING").
//! The kernel ends a break after fs.lease-break-time seconds: skipped
//! when that is too short for a dump and a restore.

use zdtm::locks;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let secs: u64 = std::fs::read_to_string("/proc/sys/fs/lease-break-time").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    if secs < 30 {
        zdtm::skip(&format!("fs.lease-break-time is {secs}s: a break would end before the restore"));
    }
    // A lease break sends SIGIO to the lease holder.
    // SAFETY: ignoring a signal.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    let (p1, w1) = locks::create("write-to-none", libc::O_RDWR);
    let (p2, w2) = locks::create("write-to-read", libc::O_RDWR);
    let (p3, r3) = locks::create("read-to-none", libc::O_RDONLY);
    locks::set_lease(w1, libc::F_WRLCK);
    locks::set_lease(w2, libc::F_WRLCK);
    locks::set_lease(r3, libc::F_RDLCK);
    let broke = locks::in_helper(move || {
        let nb = libc::O_NONBLOCK;
        let a = locks::try_open(&p1, libc::O_WRONLY | nb).map(locks::close);
        let b = locks::try_open(&p2, libc::O_RDONLY | nb).map(locks::close);
        let c = locks::try_open(&p3, libc::O_WRONLY | nb).map(locks::close);
        format!("{a:?} {b:?} {c:?}")
    });
    let wb = libc::EWOULDBLOCK;
    if broke != format!("Err({wb}) Err({wb}) Err({wb})") {
        zdtm::fail(&format!("the helper's opens did not start the breaks: {broke}"));
    }
    let me = std::process::id();

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        locks::set_lease(w1, libc::F_UNLCK);
    }

    let mut ck = Checks::new();
    ck.eq("F_GETLEASE of the write lease going", locks::lease(w1), libc::F_UNLCK);
    ck.eq("F_GETLEASE of the write lease dropping to read", locks::lease(w2), libc::F_RDLCK);
    ck.eq("F_GETLEASE of the read lease going", locks::lease(r3), libc::F_UNLCK);
    let lines = |fd| locks::fdinfo_locks(fd).iter().map(|l| l.split(' ').take(4).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
    ck.eq("fdinfo of the write lease going", lines(w1), vec![format!("LEASE BREAKING UNLCK {me}")]);
    ck.eq("fdinfo of the write lease dropping to read", lines(w2), vec![format!("LEASE BREAKING READ {me}")]);
    ck.eq("fdinfo of the read lease going", lines(r3), vec![format!("LEASE BREAKING UNLCK {me}")]);
    ck.finish()
}
