//! vt00: fds on two virtual terminals, /dev/tty9 (O_RDWR | O_NONBLOCK)
//! and /dev/tty10 (O_RDONLY), both with an odd interrupt character and no
//! echo (CRIU keeps one record for all vts: their settings must agree).
//! After restore each fd is its vt again with its flags and those
//! settings. Skipped where the vts can't be opened (no VT support, or not
//! root).

use zdtm::Checks;

const VTS: [(u32, libc::c_int); 2] = [(9, libc::O_RDWR | libc::O_NONBLOCK), (10, libc::O_RDONLY)];

fn termios(fd: libc::c_int) -> libc::termios {
    // SAFETY: a zeroed termios filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr into our buffer.
    unsafe { libc::tcgetattr(fd, &mut t) };
    t
}

fn main() {
    zdtm::test_init();
    let mut fds = Vec::new();
    let mut orig = Vec::new();
    for (n, flags) in VTS {
        let path = format!("/dev/tty{n}");
        // SAFETY: a valid C string.
        let fd = unsafe { libc::open(zdtm::cpath(std::path::Path::new(&path)).as_ptr(), flags | libc::O_NOCTTY) };
        if fd < 0 {
            zdtm::skip(&format!("can't open {path} here: {}", zdtm::last_err()));
        }
        let mut t = termios(fd);
        orig.push(t);
        t.c_cc[libc::VINTR] = 0x07;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: tcsetattr from our buffer.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
            zdtm::fail(&format!("tcsetattr on {path}: {}", zdtm::last_err()));
        }
        fds.push(fd);
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // The second fd becomes the first vt.
        // SAFETY: dup2 between our own fds.
        unsafe { libc::dup2(fds[0], fds[1]) };
    }
    let mut ck = Checks::new();
    for ((n, flags), fd) in VTS.iter().zip(&fds) {
        let st = zdtm::fstat_or_fail(*fd);
        ck.eq(&format!("the device of /dev/tty{n}'s fd"), (libc::major(st.st_rdev), libc::minor(st.st_rdev)), (4, *n));
        // SAFETY: F_GETFL on our fd.
        let fl = unsafe { libc::fcntl(*fd, libc::F_GETFL) };
        ck.eq(&format!("status flags of /dev/tty{n}"), fl & (libc::O_ACCMODE | libc::O_NONBLOCK), *flags);
        let t = termios(*fd);
        ck.eq(&format!("interrupt character of /dev/tty{n}"), t.c_cc[libc::VINTR], 0x07);
        ck.eq(&format!("echo on /dev/tty{n}"), t.c_lflag & libc::ECHO, 0);
    }
    // The vts outlive the test: their settings as they were.
    for (fd, t) in fds.iter().zip(&orig) {
        // SAFETY: tcsetattr from our buffer.
        unsafe { libc::tcsetattr(*fd, libc::TCSANOW, t) };
    }
    ck.finish()
}
