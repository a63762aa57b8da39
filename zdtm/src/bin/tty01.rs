//! tty01: a session leader opened /dev/tty while pty A was its controlling
//! terminal, then gave A up (TIOCNOTTY) and took pty B (it holds both
//! ends of both). Its /dev/tty fd still stands for A, but a restore opens
//! /dev/tty again as the session's terminal, B: the dump is refused by fd
//! (crfail), and the task runs on with its fd standing for A.

use zdtm::Checks;

fn real_dev(fd: libc::c_int) -> (u32, u32) {
    let mut v: libc::c_uint = 0;
    // SAFETY: TIOCGDEV writes one unsigned int.
    if unsafe { libc::ioctl(fd, libc::TIOCGDEV, &mut v) } < 0 {
        return (0, 0);
    }
    ((v & 0xfff00) >> 8, (v & 0xff) | ((v >> 12) & 0xfff00))
}

fn main() {
    zdtm::test_init();
    zdtm::pty::session_leader_or_skip();
    // Giving up a terminal hangs up its foreground group: ours.
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let (_ma, sa, a) = zdtm::pty::openpty(0);
    let (_mb, sb, b) = zdtm::pty::openpty(0);
    // SAFETY: TIOCSCTTY / TIOCNOTTY on our own terminals.
    if unsafe { libc::ioctl(sa, libc::TIOCSCTTY, 0) } != 0 {
        zdtm::fail(&format!("TIOCSCTTY on pty {a}: {}", zdtm::last_err()));
    }
    let tty = zdtm::open_or_fail(std::path::Path::new("/dev/tty"), libc::O_RDWR);
    // SAFETY: as above.
    if unsafe { libc::ioctl(sa, libc::TIOCNOTTY) } != 0 || unsafe { libc::ioctl(sb, libc::TIOCSCTTY, 0) } != 0 {
        zdtm::fail(&format!("moving to pty {b}: {}", zdtm::last_err()));
    }
    let dev = |i: u32| (136 + i / 256, i % 256);
    let mut ck = Checks::new();
    ck.eq("/dev/tty before", real_dev(tty), dev(a));
    let fresh = zdtm::open_or_fail(std::path::Path::new("/dev/tty"), libc::O_RDWR);
    ck.eq("a new /dev/tty before", real_dev(fresh), dev(b));
    // SAFETY: closing our own fd.
    unsafe { libc::close(fresh) };

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let s = zdtm::open_or_fail(std::path::Path::new("/dev/tty"), libc::O_RDWR);
        // SAFETY: dup2 over our own fd.
        unsafe { libc::dup2(s, tty) };
    }
    ck.eq("the terminal /dev/tty stands for", real_dev(tty), dev(a));
    let st = zdtm::fstat_or_fail(tty);
    ck.eq("the fd's device", (libc::major(st.st_rdev), libc::minor(st.st_rdev)), (5, 0));
    ck.finish()
}
