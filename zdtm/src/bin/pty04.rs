//! pty04: a pty master whose slave was opened, made group-writable
//! (chmod 0620 of its node) and closed again. A restore makes the slave's
//! node anew (devpts' mode), so the dump is refused by fd (crfail); the
//! task runs on with its pty unchanged: reads on the master give EIO and
//! the node keeps its mode.

use zdtm::Checks;

fn mode_of(path: &std::ffi::CStr) -> u32 {
    // SAFETY: a zeroed stat is a valid buffer for stat(2) to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: stat of a C string into our buffer.
    if unsafe { libc::stat(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.st_mode & 0o7777
}

fn main() {
    zdtm::test_init();
    let master = zdtm::open_or_fail(std::path::Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK);
    let unlock: libc::c_int = 0;
    let mut index: libc::c_int = -1;
    // SAFETY: TIOCSPTLCK reads one int, TIOCGPTN writes one.
    if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) } != 0 || unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut index) } != 0 {
        zdtm::fail(&format!("unlockpt/ptsname: {}", zdtm::last_err()));
    }
    let node = zdtm::cpath(std::path::Path::new(&format!("/dev/pts/{index}")));
    let slave = zdtm::open_or_fail(std::path::Path::new(&format!("/dev/pts/{index}")), libc::O_RDWR | libc::O_NOCTTY);
    // SAFETY: fchmod and close of our own fd.
    unsafe {
        if libc::fchmod(slave, 0o620) != 0 {
            zdtm::fail(&format!("fchmod of the slave: {}", zdtm::last_err()));
        }
        libc::close(slave);
    }
    let read_errno = || {
        let mut b = [0u8; 8];
        // SAFETY: reading into our buffer.
        let r = unsafe { libc::read(master, b.as_mut_ptr().cast(), b.len()) };
        if r < 0 { zdtm::last_err().raw_os_error().unwrap_or(0) } else { 0 }
    };

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: chmod of a C string.
        unsafe { libc::chmod(node.as_ptr(), 0o600) };
    }
    let mut ck = Checks::new();
    let mut got: libc::c_int = -1;
    // SAFETY: TIOCGPTN writes one int.
    unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut got) };
    ck.eq("pty index", got, index);
    ck.eq("read on the master (its slave closed)", read_errno(), libc::EIO);
    ck.eq("the slave's node mode", mode_of(&node), 0o620);
    ck.finish()
}
