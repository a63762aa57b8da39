//! signalfd00: a signalfd for SIGUSR2 (blocked) with one signal pending:
//! the mask survives, and the pending SIGUSR2 is read through it after.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    // SAFETY: plain syscalls on our own sets and fd.
    let fd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK);
        libc::kill(libc::getpid(), libc::SIGUSR2);
        fd
    };
    zdtm::test_daemon();
    zdtm::test_waitsig();
    // SAFETY: signalfd_siginfo is plain integers: all zeroes is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    if zdtm::sabotaged() {
        // SAFETY: consuming the pending signal early.
        unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), std::mem::size_of::<libc::signalfd_siginfo>()) };
    }
    // SAFETY: reading one siginfo into our struct.
    let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), std::mem::size_of::<libc::signalfd_siginfo>()) };
    let mut c = Checks::new();
    c.eq("read", n, std::mem::size_of::<libc::signalfd_siginfo>() as isize);
    c.eq("signal", info.ssi_signo, libc::SIGUSR2 as u32);
    c.finish()
}
