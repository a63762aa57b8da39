//! fown00: file owners and I/O signals (F_SETOWN_EX, F_SETSIG, O_ASYNC):
//! - a pipe's read end: O_ASYNC, owner this process, SIGRTMIN+1: a write
//!   after the restore queues SIGRTMIN+1 with si_fd the read end and POLLIN
//!   in si_band;
//! - a socketpair end: O_ASYNC, owner this process by F_SETOWN, plain
//!   SIGIO: a write from the peer raises SIGIO;
//! - an eventfd with F_SETSIG(SIGUSR2) and no owner: the signal is kept.
//!
//! Both signals stay blocked and are taken with sigtimedwait.


use zdtm::Checks;

const F_SETSIG: libc::c_int = 10;
const F_GETSIG: libc::c_int = 11;
const F_SETOWN_EX: libc::c_int = 15;
const F_GETOWN_EX: libc::c_int = 16;
const F_OWNER_PID: libc::c_int = 1;

#[repr(C)]
#[derive(Debug, PartialEq, Clone, Copy)]
struct OwnerEx {
    kind: libc::c_int,
    pid: libc::c_int,
}

fn owner(fd: i32) -> OwnerEx {
    let mut o = OwnerEx { kind: -1, pid: -1 };
    // SAFETY: F_GETOWN_EX writes one f_owner_ex.
    unsafe { libc::fcntl(fd, F_GETOWN_EX, &mut o as *mut OwnerEx) };
    o
}

fn getsig(fd: i32) -> i32 {
    // SAFETY: fcntl query.
    unsafe { libc::fcntl(fd, F_GETSIG) }
}

fn setfl_async(fd: i32) {
    // SAFETY: fcntl on our fd.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if libc::fcntl(fd, libc::F_SETFL, fl | libc::O_ASYNC) != 0 {
            zdtm::fail(&format!("O_ASYNC on fd {fd}: {}", zdtm::last_err()));
        }
    }
}

/// Wait for `sig` (blocked) for up to 2 s.
fn wait_sig(sig: i32) -> Option<libc::siginfo_t> {
    // SAFETY: a sigset and a siginfo of ours.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let ts = libc::timespec { tv_sec: 2, tv_nsec: 0 };
        (libc::sigtimedwait(&set, &mut info, &ts) == sig).then_some(info)
    }
}

/// si_band and si_fd of a SIGPOLL siginfo (after si_signo, si_errno, si_code and padding).
fn band_fd(info: &libc::siginfo_t) -> (i64, i32) {
    // SAFETY: siginfo_t is 128 bytes; the poll fields sit at offset 16.
    let raw: &[u8; 128] = unsafe { &*(info as *const libc::siginfo_t).cast() };
    let band = i64::from_ne_bytes(raw[16..24].try_into().unwrap_or([0; 8]));
    let fd = i32::from_ne_bytes(raw[24..28].try_into().unwrap_or([0; 4]));
    (band, fd)
}

fn main() {
    zdtm::test_init();
    let me = std::process::id() as i32;
    let rt = libc::SIGRTMIN() + 1;
    // SAFETY: plain syscalls on our own fds and a sigset of ours.
    let (pipe, sk, efd) = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, rt);
        libc::sigaddset(&mut set, libc::SIGIO);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut p = [0; 2];
        let mut s = [0; 2];
        if libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) != 0
            || libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0, s.as_mut_ptr()) != 0
        {
            zdtm::fail("pipe/socketpair");
        }
        let efd = libc::eventfd(0, libc::EFD_NONBLOCK);
        let o = OwnerEx { kind: F_OWNER_PID, pid: me };
        if libc::fcntl(p[0], F_SETOWN_EX, &o as *const OwnerEx) != 0
            || libc::fcntl(p[0], F_SETSIG, rt) != 0
            || libc::fcntl(s[0], libc::F_SETOWN, me) != 0
            || libc::fcntl(efd, F_SETSIG, libc::SIGUSR2) != 0
        {
            zdtm::fail(&format!("F_SETOWN/F_SETSIG: {}", zdtm::last_err()));
        }
        (p, s, efd)
    };
    setfl_async(pipe[0]);
    setfl_async(sk[0]);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: fcntl on our fd.
        unsafe { libc::fcntl(pipe[0], F_SETSIG, 0) };
    }
    let mut c = Checks::new();
    c.eq("pipe: owner", owner(pipe[0]), OwnerEx { kind: F_OWNER_PID, pid: me });
    c.eq("pipe: signal", getsig(pipe[0]), rt);
    c.eq("socket: owner", owner(sk[0]), OwnerEx { kind: F_OWNER_PID, pid: me });
    c.eq("socket: signal", getsig(sk[0]), 0);
    c.eq("eventfd: owner", owner(efd).pid, 0);
    c.eq("eventfd: signal", getsig(efd), libc::SIGUSR2);
    // SAFETY: fcntl queries.
    let async_fl = |fd: i32| unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_ASYNC;
    c.eq("pipe: O_ASYNC", async_fl(pipe[0]), libc::O_ASYNC);
    c.eq("socket: O_ASYNC", async_fl(sk[0]), libc::O_ASYNC);

    // SAFETY: writing a byte to our own pipe.
    unsafe { libc::write(pipe[1], b"x".as_ptr().cast(), 1) };
    match wait_sig(rt) {
        None => c.check(false, || "no SIGRTMIN+1 after a write to the pipe".into()),
        Some(info) => {
            let (band, fd) = band_fd(&info);
            c.eq("pipe: si_fd", fd, pipe[0]);
            c.check(band & libc::POLLIN as i64 != 0, || format!("pipe: si_band {band:#x} has no POLLIN"));
        }
    }
    // SAFETY: writing a byte to our own socket.
    unsafe { libc::write(sk[1], b"y".as_ptr().cast(), 1) };
    c.check(wait_sig(libc::SIGIO).is_some(), || "no SIGIO after a write to the socket".into());
    c.finish()
}
