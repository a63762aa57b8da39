//! pidfd01: a pidfd of a process outside the dumped tree (our parent, the
//! runner). Its pid would name another process after a restore: the dump
//! must refuse it by name and leave us running, the pidfd still ours.

use zdtm::Checks;

fn fdinfo_pid(fd: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("Pid:")).map(|v| v.trim().to_string()).unwrap_or_else(|| "none".into())
}

fn main() {
    zdtm::test_init();
    // SAFETY: plain query.
    let parent = unsafe { libc::getppid() };
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) } as i32;
    if fd < 0 {
        let e = zdtm::last_err();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            zdtm::skip("no pidfd_open in this kernel");
        }
        zdtm::fail(&format!("pidfd_open({parent}): {e}"));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
    }
    let mut ck = Checks::new();
    ck.eq("fdinfo Pid of the parent's pidfd", fdinfo_pid(fd), parent.to_string());
    // SAFETY: signal 0 through our pidfd, a null siginfo.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd, 0, std::ptr::null::<libc::siginfo_t>(), 0) };
    ck.eq("signal 0 through it", if r == 0 { Ok(()) } else { Err(zdtm::last_err().to_string()) }, Ok(()));
    ck.finish()
}
