//! pty01: a session leader whose controlling terminal is a pty it holds
//! both ends of, and a child in its own process group that is the
//! terminal's foreground group. After restore the slave is the leader's
//! controlling terminal again (TIOCGSID through it names the leader's
//! session), the child's group is the foreground one, and the child (its
//! terminal inherited) sees the same.

use zdtm::Checks;

fn ioctl_int(fd: libc::c_int, req: libc::c_ulong) -> libc::c_int {
    let mut v: libc::c_int = -1;
    // SAFETY: the request writes one int into `v`.
    if unsafe { libc::ioctl(fd, req, &mut v) } < 0 {
        return -1;
    }
    v
}

/// What the terminal says: (its session, its foreground group), read
/// through /dev/tty (the caller's controlling terminal) and through `slave`.
fn view(slave: libc::c_int) -> (i32, i32, i32) {
    let tty = zdtm::open_or_fail(std::path::Path::new("/dev/tty"), libc::O_RDWR | libc::O_NOCTTY);
    let v = (ioctl_int(slave, libc::TIOCGSID), ioctl_int(slave, libc::TIOCGPGRP), ioctl_int(tty, libc::TIOCGPGRP));
    // SAFETY: closing our own fd.
    unsafe { libc::close(tty) };
    v
}

fn main() {
    zdtm::test_init();
    let me = zdtm::pty::session_leader_or_skip();
    let sid = me;
    let (_master, slave, _) = zdtm::pty::openpty(0);
    zdtm::pty::make_ctty(slave);
    // The child: its own group, made the foreground one; it checks its view
    // after restore and reports through a pipe.
    let mut to_child = [0; 2];
    let mut from_child = [0; 2];
    // SAFETY: pipes into our arrays.
    if unsafe { libc::pipe(to_child.as_mut_ptr()) } != 0 || unsafe { libc::pipe(from_child.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    // SAFETY: fork; the child only makes syscalls and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: the child's own syscalls.
        unsafe {
            libc::setpgid(0, 0);
            libc::close(to_child[1]);
            libc::close(from_child[0]);
            let mut b = [0u8; 1];
            libc::write(from_child[1], b"r".as_ptr().cast(), 1);
            libc::read(to_child[0], b.as_mut_ptr().cast(), 1);
            let me = libc::getpid();
            let v = view(slave);
            let ok = v == (sid, me, me) && libc::getsid(0) == sid;
            libc::write(from_child[1], if ok { b"y" } else { b"n" }.as_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    // SAFETY: our ends, and the child's group (set on both sides: no race).
    unsafe {
        libc::setpgid(child, child);
        libc::close(to_child[0]);
        libc::close(from_child[1]);
    }
    zdtm::read_some(from_child[0], 1);
    // SAFETY: TIOCSPGRP reads one int.
    if unsafe { libc::ioctl(slave, libc::TIOCSPGRP, &child) } != 0 {
        zdtm::fail(&format!("TIOCSPGRP {child}: {}", zdtm::last_err()));
    }
    let want = view(slave);
    if want != (sid, child, child) {
        zdtm::fail(&format!("before the dump the terminal says {want:?}, want ({sid}, {child}, {child})"));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: SIGTTOU ignored (we are a background group now), then
        // TIOCSPGRP reads one int: our own group takes the foreground.
        unsafe {
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::ioctl(slave, libc::TIOCSPGRP, &me);
        }
    }
    let mut ck = Checks::new();
    ck.eq("session and foreground group (slave, /dev/tty)", view(slave), want);
    // SAFETY: writing a literal to our pipe.
    unsafe { libc::write(to_child[1], b"g".as_ptr().cast(), 1) };
    ck.eq("the child's view", zdtm::read_some(from_child[0], 1), b"y".to_vec());
    let mut st = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(child, &mut st, 0) };
    ck.finish()
}
