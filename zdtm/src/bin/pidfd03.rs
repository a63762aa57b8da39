//! pidfd03: a pidfd of a child D that exited with 3 and was reaped. The
//! kernel keeps how D ended (PIDFD_GET_INFO, Linux 6.15), CRIU's image
//! does not: a restore would bring D back killed by SIGKILL. The dump must
//! refuse it by name and leave us running, D's status still 3.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    // SAFETY: single-threaded here; the child leaves at once.
    let d = unsafe { libc::fork() };
    if d < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if d == 0 {
        // SAFETY: leave at once.
        unsafe { libc::_exit(3) };
    }
    // SAFETY: pidfd_open takes a pid and flags (a zombie's works).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, d, 0) } as i32;
    if fd < 0 {
        let e = zdtm::last_err();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            zdtm::skip("no pidfd_open in this kernel");
        }
        zdtm::fail(&format!("pidfd_open({d}): {e}"));
    }
    // SAFETY: reaping our child.
    if unsafe { libc::waitpid(d, std::ptr::null_mut(), 0) } != d {
        zdtm::fail(&format!("waitpid({d}): {}", zdtm::last_err()));
    }
    let Some(status) = zdtm::pidfd_exit_status(fd) else {
        zdtm::skip("this kernel keeps no exit status on pidfds (PIDFD_INFO_EXIT, Linux 6.15)");
    };
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
    }
    let mut ck = Checks::new();
    ck.eq("D's wait status through its pidfd", zdtm::pidfd_exit_status(fd), Some(status));
    ck.eq("D's wait status is exit 3", status, 3 << 8);
    ck.finish()
}
