//! pty02: a pty slave whose master was closed (hung up: reads give EOF,
//! writes and terminal ioctls EIO). After restore the fd is a slave of the
//! same index, hung up the same way.

use zdtm::Checks;

fn errno_of(r: isize) -> i32 {
    if r < 0 { zdtm::last_err().raw_os_error().unwrap_or(0) } else { 0 }
}

/// (read result, write errno, TCGETS errno) on `fd`.
fn behaviour(fd: libc::c_int) -> (isize, i32, i32) {
    let mut b = [0u8; 8];
    // SAFETY: reading into our buffer.
    let r = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
    // SAFETY: writing a literal.
    let w = errno_of(unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) });
    // SAFETY: a zeroed termios filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr into our buffer.
    let g = errno_of(unsafe { libc::tcgetattr(fd, &mut t) } as isize);
    (r, w, g)
}

fn rdev(fd: libc::c_int) -> (u32, u32) {
    // SAFETY: a zeroed stat buffer filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat into our buffer.
    unsafe { libc::fstat(fd, &mut st) };
    (libc::major(st.st_rdev), libc::minor(st.st_rdev))
}

fn main() {
    zdtm::test_init();
    let (master, slave, _) = zdtm::pty::openpty(0);
    // SAFETY: closing our own fd.
    unsafe { libc::close(master) };
    let want = behaviour(slave);
    if want != (0, libc::EIO, libc::EIO) {
        zdtm::skip(&format!("a slave whose master closed behaves as {want:?} here, not (EOF, EIO, EIO)"));
    }
    let dev = rdev(slave);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let null = zdtm::open_or_fail(std::path::Path::new("/dev/null"), libc::O_RDWR);
        // SAFETY: replacing our own fd.
        unsafe { libc::dup2(null, slave) };
    }
    let mut ck = Checks::new();
    ck.eq("slave device", rdev(slave), dev);
    ck.eq("hung up: read, write, tcgetattr", behaviour(slave), want);
    ck.finish()
}
