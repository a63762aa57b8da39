//! tty00: a session leader whose controlling terminal is a pty it holds
//! both ends of, with an fd on /dev/tty (O_NONBLOCK) and bytes written
//! through it still queued for the master. After restore the fd is still
//! /dev/tty standing for that pty (TIOCGDEV), with its flags, the
//! session's terminal (TIOCGSID), the settings set through it, and bytes
//! go both ways between it and the master.

use zdtm::Checks;

const QUEUED: &[u8] = b"written through /dev/tty";

fn ioctl_int(fd: libc::c_int, req: libc::c_ulong) -> libc::c_int {
    let mut v: libc::c_int = -1;
    // SAFETY: the request writes one int into `v`.
    if unsafe { libc::ioctl(fd, req, &mut v) } < 0 {
        return -1;
    }
    v
}

/// The device /dev/tty stands for (TIOCGDEV), as (major, minor).
fn real_dev(fd: libc::c_int) -> (u32, u32) {
    let mut v: libc::c_uint = 0;
    // SAFETY: TIOCGDEV writes one unsigned int.
    if unsafe { libc::ioctl(fd, libc::TIOCGDEV, &mut v) } < 0 {
        return (0, 0);
    }
    ((v & 0xfff00) >> 8, (v & 0xff) | ((v >> 12) & 0xfff00))
}

fn termios(fd: libc::c_int) -> libc::termios {
    // SAFETY: a zeroed termios filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr into our buffer.
    unsafe { libc::tcgetattr(fd, &mut t) };
    t
}

fn write_all(fd: libc::c_int, b: &[u8]) {
    // SAFETY: writing our buffer.
    if unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) } != b.len() as isize {
        zdtm::fail(&format!("short write into fd {fd}: {}", zdtm::last_err()));
    }
}

/// Read up to `max` bytes from `fd`, waiting up to 2 s for them.
fn read_waiting(fd: libc::c_int, max: usize) -> Vec<u8> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd of ours.
    unsafe { libc::poll(&mut p, 1, 2000) };
    zdtm::read_some(fd, max)
}

fn main() {
    zdtm::test_init();
    let me = zdtm::pty::session_leader_or_skip();
    let (master, slave, index) = zdtm::pty::openpty(0);
    zdtm::pty::make_ctty(slave);
    let tty = zdtm::open_or_fail(std::path::Path::new("/dev/tty"), libc::O_RDWR | libc::O_NONBLOCK);
    // Raw, through /dev/tty: the bytes are what was written. An odd
    // interrupt character to recognize the settings by.
    let mut t = termios(tty);
    t.c_lflag &= !(libc::ECHO | libc::ICANON | libc::ISIG);
    t.c_oflag &= !libc::OPOST;
    t.c_cc[libc::VINTR] = 0x07;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: tcsetattr from our buffer.
    if unsafe { libc::tcsetattr(tty, libc::TCSANOW, &t) } != 0 {
        zdtm::fail(&format!("tcsetattr on /dev/tty: {}", zdtm::last_err()));
    }
    write_all(tty, QUEUED);
    let slave_dev = (136 + index / 256, index % 256);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // The fd becomes the slave itself: the same terminal, not /dev/tty.
        let s = zdtm::open_or_fail(std::path::Path::new(&format!("/dev/pts/{index}")), libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK);
        // SAFETY: dup2 over our own fd.
        unsafe { libc::dup2(s, tty) };
    }
    let mut ck = Checks::new();
    let st = zdtm::fstat_or_fail(tty);
    ck.eq("the fd's device", (libc::major(st.st_rdev), libc::minor(st.st_rdev)), (5, 0));
    ck.eq("the terminal /dev/tty stands for", real_dev(tty), slave_dev);
    // SAFETY: F_GETFL on our fd.
    let fl = unsafe { libc::fcntl(tty, libc::F_GETFL) };
    ck.eq("status flags", fl & (libc::O_ACCMODE | libc::O_NONBLOCK), libc::O_RDWR | libc::O_NONBLOCK);
    ck.eq("the session of the terminal", ioctl_int(tty, libc::TIOCGSID), me);
    // SAFETY: plain getter.
    ck.eq("our session", unsafe { libc::getsid(0) }, me);
    ck.eq("the interrupt character", termios(tty).c_cc[libc::VINTR], 0x07);
    ck.eq("queued for the master", read_waiting(master, 256), QUEUED.to_vec());
    write_all(tty, b"ping");
    ck.eq("/dev/tty to the master after restore", read_waiting(master, 16), b"ping".to_vec());
    write_all(master, b"pong");
    ck.eq("the master to /dev/tty after restore", read_waiting(tty, 16), b"pong".to_vec());
    ck.finish()
}
