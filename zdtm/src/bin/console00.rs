//! console00: an fd on /dev/console (O_RDWR | O_NONBLOCK, never the
//! controlling terminal). After restore it is /dev/console again, standing
//! for the same device (TIOCGDEV), with its flags, the console's settings,
//! window size and exclusive mode as they were. Skipped where the console
//! can't be opened (no /dev/console, or not root).

use zdtm::Checks;

fn real_dev(fd: libc::c_int) -> (u32, u32) {
    let mut v: libc::c_uint = 0;
    // SAFETY: TIOCGDEV writes one unsigned int.
    if unsafe { libc::ioctl(fd, libc::TIOCGDEV, &mut v) } < 0 {
        return (0, 0);
    }
    ((v & 0xfff00) >> 8, (v & 0xff) | ((v >> 12) & 0xfff00))
}

/// The settings, window size and exclusive mode of the terminal at `fd`.
fn state(fd: libc::c_int) -> (u32, u32, u32, u32, Vec<u8>, (u16, u16), libc::c_int) {
    // SAFETY: a zeroed termios, filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let mut w = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    let mut excl: libc::c_int = -1;
    // SAFETY: the calls write into our buffers.
    unsafe {
        libc::tcgetattr(fd, &mut t);
        libc::ioctl(fd, libc::TIOCGWINSZ, &mut w);
        libc::ioctl(fd, libc::TIOCGEXCL, &mut excl);
    }
    (t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, t.c_cc[..19].to_vec(), (w.ws_row, w.ws_col), excl)
}

fn main() {
    zdtm::test_init();
    let path = std::path::Path::new("/dev/console");
    // SAFETY: a valid C string.
    let con = unsafe { libc::open(zdtm::cpath(path).as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK) };
    if con < 0 {
        zdtm::skip(&format!("can't open /dev/console here: {}", zdtm::last_err()));
    }
    let dev = real_dev(con);
    let want = state(con);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let null = zdtm::open_or_fail(std::path::Path::new("/dev/null"), libc::O_RDWR | libc::O_NONBLOCK);
        // SAFETY: dup2 over our own fd.
        unsafe { libc::dup2(null, con) };
    }
    let mut ck = Checks::new();
    let st = zdtm::fstat_or_fail(con);
    ck.eq("the fd's device", (libc::major(st.st_rdev), libc::minor(st.st_rdev)), (5, 1));
    ck.eq("the console it stands for", real_dev(con), dev);
    // SAFETY: F_GETFL on our fd.
    let fl = unsafe { libc::fcntl(con, libc::F_GETFL) };
    ck.eq("status flags", fl & (libc::O_ACCMODE | libc::O_NONBLOCK), libc::O_RDWR | libc::O_NONBLOCK);
    ck.eq("settings, window size, exclusive mode", state(con), want);
    ck.finish()
}
