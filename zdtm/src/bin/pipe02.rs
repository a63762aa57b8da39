//! pipe02: a pipe whose read end is closed, its write end enlarged to
//! 256 KiB with 3000 bytes left in it: the size and the byte count
//! (FIONREAD on the write end) survive, and a write still fails with EPIPE.

use zdtm::Checks;

const SIZE: libc::c_int = 256 * 1024;

fn main() {
    zdtm::test_init();
    let mut p = [0; 2];
    // SAFETY: plain syscalls on our own fds and buffers; SIGPIPE ignored
    // so a write to the readerless pipe returns EPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        if libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) != 0 {
            zdtm::fail("pipe");
        }
        if libc::fcntl(p[1], libc::F_SETPIPE_SZ, SIZE) < 0 {
            zdtm::skip(&format!("F_SETPIPE_SZ: {}", zdtm::last_err()));
        }
        let data = [3u8; 3000];
        libc::write(p[1], data.as_ptr().cast(), data.len());
        libc::close(p[0]);
    }
    let w = p[1];

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: fcntl on our fd.
        unsafe { libc::fcntl(w, libc::F_SETPIPE_SZ, 65536) };
    }
    let mut c = Checks::new();
    // SAFETY: fcntl query and a write to our fd.
    unsafe {
        c.eq("size", libc::fcntl(w, libc::F_GETPIPE_SZ), SIZE);
        let mut n: libc::c_int = 0;
        libc::ioctl(w, libc::FIONREAD, &mut n);
        c.eq("FIONREAD", n, 3000);
        let n = libc::write(w, b"x".as_ptr().cast(), 1);
        c.check(n == -1 && zdtm::last_err().raw_os_error() == Some(libc::EPIPE), || format!("write gave {n}, not EPIPE"));
    }
    c.finish()
}
