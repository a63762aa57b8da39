//! pty00: a pty pair in one task (master from /dev/ptmx, slave
//! /dev/pts/N), raw settings and an odd control character on the slave,
//! a window size, and bytes queued both ways. After restore the pair has
//! the same index, settings and size, each end reads what was queued for
//! it, and the ends still talk.

use zdtm::Checks;

const TO_SLAVE: &[u8] = b"queued for the slave: 0123456789";
const TO_MASTER: &[u8] = b"queued for the master: abcdefghij";

fn ioctl_int(fd: libc::c_int, req: libc::c_ulong) -> libc::c_int {
    let mut v: libc::c_int = -1;
    // SAFETY: the request writes one int into `v`.
    if unsafe { libc::ioctl(fd, req, &mut v) } < 0 {
        return -1;
    }
    v
}

fn termios(fd: libc::c_int) -> libc::termios {
    // SAFETY: a zeroed termios filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr into our buffer.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        zdtm::fail(&format!("tcgetattr {fd}: {}", zdtm::last_err()));
    }
    t
}

fn settings(t: &libc::termios) -> (u32, u32, u32, u32, Vec<u8>) {
    (t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, t.c_cc[..19].to_vec())
}

fn winsize(fd: libc::c_int) -> (u16, u16, u16, u16) {
    // SAFETY: a zeroed winsize filled by TIOCGWINSZ.
    let mut w: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ into our buffer.
    unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut w) };
    (w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel)
}

fn write_all(fd: libc::c_int, b: &[u8]) {
    // SAFETY: writing our buffer.
    if unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) } != b.len() as isize {
        zdtm::fail(&format!("short write into fd {fd}: {}", zdtm::last_err()));
    }
}

fn main() {
    zdtm::test_init();
    let master = zdtm::open_or_fail(std::path::Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY);
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int.
    if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) } != 0 {
        zdtm::fail(&format!("unlockpt: {}", zdtm::last_err()));
    }
    let index = ioctl_int(master, libc::TIOCGPTN);
    let slave_path = format!("/dev/pts/{index}");
    let slave = zdtm::open_or_fail(std::path::Path::new(&slave_path), libc::O_RDWR | libc::O_NOCTTY);
    // Raw both ways (no echo, no line editing, no output processing): the
    // queued bytes are what was written. An odd interrupt character too.
    let mut t = termios(slave);
    t.c_lflag &= !(libc::ECHO | libc::ICANON | libc::ISIG);
    t.c_oflag &= !libc::OPOST;
    t.c_cc[libc::VINTR] = 0x07;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: tcsetattr from our buffer.
    if unsafe { libc::tcsetattr(slave, libc::TCSANOW, &t) } != 0 {
        zdtm::fail(&format!("tcsetattr: {}", zdtm::last_err()));
    }
    let ws = libc::winsize { ws_row: 33, ws_col: 77, ws_xpixel: 5, ws_ypixel: 6 };
    // SAFETY: TIOCSWINSZ reads one winsize.
    if unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) } != 0 {
        zdtm::fail(&format!("TIOCSWINSZ: {}", zdtm::last_err()));
    }
    write_all(master, TO_SLAVE);
    write_all(slave, TO_MASTER);
    let want = settings(&termios(slave));

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        zdtm::read_some(slave, 1);
    }
    let mut ck = Checks::new();
    ck.eq("pty index", ioctl_int(master, libc::TIOCGPTN), index);
    // SAFETY: a zeroed stat buffer filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat into our buffer.
    unsafe { libc::fstat(slave, &mut st) };
    ck.eq("slave device", (libc::major(st.st_rdev), libc::minor(st.st_rdev)), (136 + index as u32 / 256, index as u32 % 256));
    ck.eq("slave settings", settings(&termios(slave)), want.clone());
    ck.eq("settings through the master", settings(&termios(master)), want);
    ck.eq("window size", winsize(slave), (33, 77, 5, 6));
    ck.eq("packet mode", ioctl_int(master, libc::TIOCGPKT), 0);
    ck.eq("locked", ioctl_int(master, libc::TIOCGPTLCK), 0);
    ck.eq("queued for the slave", zdtm::read_some(slave, 256), TO_SLAVE.to_vec());
    ck.eq("queued for the master", zdtm::read_some(master, 256), TO_MASTER.to_vec());
    write_all(master, b"ping");
    ck.eq("master to slave after restore", zdtm::read_some(slave, 16), b"ping".to_vec());
    write_all(slave, b"pong");
    ck.eq("slave to master after restore", zdtm::read_some(master, 16), b"pong".to_vec());
    ck.finish()
}
