//! Pseudo-terminal helpers for the pty and tty tests: a new pair, the
//! session-leader check, and taking a slave as the controlling terminal.
//! Each fails (or skips) the test with the call's error.

use std::path::Path;

/// A new pty pair: (master opened with O_RDWR | O_NOCTTY | `extra`, its
/// slave opened read-write without becoming our terminal, the index N of
/// /dev/pts/N).
pub fn openpty(extra: libc::c_int) -> (libc::c_int, libc::c_int, u32) {
    let master = crate::open_or_fail(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY | extra);
    let unlock: libc::c_int = 0;
    let mut index: libc::c_int = -1;
    // SAFETY: TIOCSPTLCK reads one int, TIOCGPTN writes one.
    if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) } != 0 || unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut index) } != 0 {
        crate::fail(&format!("unlockpt/ptsname: {}", crate::last_err()));
    }
    let slave = crate::open_or_fail(Path::new(&format!("/dev/pts/{index}")), libc::O_RDWR | libc::O_NOCTTY);
    (master, slave, index as u32)
}

/// Skip unless we lead our session (the runner starts tests with setsid);
/// our pid, which is our session id.
pub fn session_leader_or_skip() -> libc::pid_t {
    // SAFETY: plain getters.
    let (me, sid) = unsafe { (libc::getpid(), libc::getsid(0)) };
    if me != sid {
        crate::skip("the test must be a session leader (the runner starts it with setsid)");
    }
    me
}

/// Make `slave` our session's controlling terminal.
pub fn make_ctty(slave: libc::c_int) {
    // SAFETY: TIOCSCTTY on our session's new terminal.
    if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } != 0 {
        crate::fail(&format!("TIOCSCTTY: {}", crate::last_err()));
    }
}
