//! pidfd02: one pidfd (of the root itself) shared by the root and its
//! child H, which inherited it over fork. Each task opens its pidfds again
//! at restore, so a description shared between tasks can't come back
//! shared: the dump must refuse it by name and leave the tree running
//! (CRIU 4.2 carries it).

use zdtm::Checks;

fn fdinfo_pid(fd: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("Pid:")).map(|v| v.trim().to_string()).unwrap_or_else(|| "none".into())
}

fn main() {
    zdtm::test_init();
    let me = std::process::id() as i32;
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, me, 0) } as i32;
    if fd < 0 {
        let e = zdtm::last_err();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            zdtm::skip("no pidfd_open in this kernel");
        }
        zdtm::fail(&format!("pidfd_open({me}): {e}"));
    }
    let mut ready = [0; 2];
    // SAFETY: a valid array of two ints.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail(&format!("pipe: {}", zdtm::last_err()));
    }
    // SAFETY: single-threaded here; the child only pauses.
    let h = unsafe { libc::fork() };
    if h < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if h == 0 {
        zdtm::say_ready(ready);
        loop {
            // SAFETY: pause takes no arguments.
            unsafe { libc::pause() };
        }
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready[1]) };
    zdtm::wait_ready_closed(ready[0]);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
    }
    let mut ck = Checks::new();
    ck.eq("fdinfo Pid of our pidfd", fdinfo_pid(fd), me.to_string());
    let held = std::fs::read_link(format!("/proc/{h}/fd/{fd}")).map(|p| p.display().to_string()).unwrap_or_default();
    ck.eq("H's copy", held.as_str(), "anon_inode:[pidfd]");
    // SAFETY: kill and reap our child.
    unsafe {
        libc::kill(h, libc::SIGKILL);
        libc::waitpid(h, std::ptr::null_mut(), 0);
    }
    ck.finish()
}
