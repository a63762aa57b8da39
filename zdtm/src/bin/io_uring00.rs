//! io_uring00: an io_uring instance (io_uring_setup). Neither CRIU 4.2 nor
//! we carry one: the dump must refuse it by name and leave us running,
//! the instance still ours and working (io_uring_enter on it answers).

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup fills our 120-byte struct io_uring_params.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8, params.as_mut_ptr()) } as i32;
    if fd < 0 {
        let e = zdtm::last_err();
        match e.raw_os_error() {
            Some(libc::ENOSYS) => zdtm::skip("no io_uring in this kernel"),
            Some(libc::EPERM) => zdtm::skip("io_uring is disabled (kernel.io_uring_disabled)"),
            _ => zdtm::fail(&format!("io_uring_setup: {e}")),
        }
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
    }
    let mut ck = Checks::new();
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|p| p.display().to_string()).unwrap_or_default();
    ck.eq("the fd", link.as_str(), "anon_inode:[io_uring]");
    // SAFETY: io_uring_enter with nothing to submit or wait for, no sigset.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_enter, fd, 0, 0, 0, std::ptr::null::<libc::sigset_t>(), 0) };
    ck.eq("io_uring_enter on it", if r == 0 { Ok(()) } else { Err(zdtm::last_err().to_string()) }, Ok(()));
    ck.finish()
}
