//! pty03: a pty master whose slave was opened and closed again: reads on
//! the master give EIO and poll reports a hang-up. After restore the
//! master has the same index and is still hung up that way (the restore
//! opens its slave and closes it again), and the slave's node has the
//! same owner and mode (suid: devpts makes it root's, as the restore's).

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (master, slave, index) = zdtm::pty::openpty(libc::O_NONBLOCK);
    // SAFETY: closing our own fd.
    unsafe { libc::close(slave) };
    let read_errno = || {
        let mut b = [0u8; 8];
        // SAFETY: reading into our buffer.
        let r = unsafe { libc::read(master, b.as_mut_ptr().cast(), b.len()) };
        if r < 0 { zdtm::last_err().raw_os_error().unwrap_or(0) } else { 0 }
    };
    let want = read_errno();
    let node = || {
        let mut st: libc::stat = unsafe_stat_zeroed();
        let p = zdtm::cpath(std::path::Path::new(&format!("/dev/pts/{index}")));
        // SAFETY: stat of a C string into our buffer.
        if unsafe { libc::stat(p.as_ptr(), &mut st) } != 0 {
            return (u32::MAX, u32::MAX, 0);
        }
        (st.st_uid, st.st_gid, st.st_mode)
    };
    let want_node = node();

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let s = zdtm::open_or_fail(std::path::Path::new(&format!("/dev/pts/{index}")), libc::O_RDWR | libc::O_NOCTTY);
        // SAFETY: writing a literal into our own slave fd (the master can read it now).
        unsafe { libc::write(s, b"x".as_ptr().cast(), 1) };
    }
    let mut ck = Checks::new();
    let mut got: libc::c_int = -1;
    // SAFETY: TIOCGPTN writes one int.
    unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut got) };
    ck.eq("pty index", got, index as i32);
    let mut p = libc::pollfd { fd: master, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd of ours, no wait.
    unsafe { libc::poll(&mut p, 1, 0) };
    ck.eq("poll on the master (its slave closed)", p.revents & (libc::POLLHUP | libc::POLLIN), libc::POLLHUP);
    ck.eq("read on the master (its slave closed)", read_errno(), want);
    ck.eq("that read's error", want, libc::EIO);
    ck.eq("the slave's node (owner, group, mode)", node(), want_node);
    ck.finish()
}

fn unsafe_stat_zeroed() -> libc::stat {
    // SAFETY: a zeroed stat is a valid buffer for stat(2) to fill.
    unsafe { std::mem::zeroed() }
}
