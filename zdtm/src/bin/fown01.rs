//! fown01: I/O signal owners that are not simply the process:
//! - a socketpair end owned by a second thread (F_OWNER_TID), SIGRTMIN+2:
//!   after the restore a write from the peer signals that thread, which
//!   takes it with sigtimedwait and sees si_fd;
//! - a pipe's read end owned by the process group (F_OWNER_PGRP),
//!   SIGRTMIN+3: a write signals the group (this process).
//!
//! The signals stay blocked in both threads.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use zdtm::Checks;

const F_SETSIG: libc::c_int = 10;
const F_GETSIG: libc::c_int = 11;
const F_SETOWN_EX: libc::c_int = 15;
const F_GETOWN_EX: libc::c_int = 16;
const F_OWNER_TID: libc::c_int = 0;
const F_OWNER_PGRP: libc::c_int = 2;

#[repr(C)]
#[derive(Debug, PartialEq, Clone, Copy)]
struct OwnerEx {
    kind: libc::c_int,
    pid: libc::c_int,
}

static TID: AtomicI32 = AtomicI32::new(0);
static GO: AtomicU32 = AtomicU32::new(0);
/// What the thread's sigtimedwait saw: si_fd, or -1 (nothing).
static GOT_FD: AtomicI32 = AtomicI32::new(-2);

fn owner(fd: i32) -> OwnerEx {
    let mut o = OwnerEx { kind: -1, pid: -1 };
    // SAFETY: F_GETOWN_EX writes one f_owner_ex.
    unsafe { libc::fcntl(fd, F_GETOWN_EX, &mut o as *mut OwnerEx) };
    o
}

fn set_owner(fd: i32, o: OwnerEx, sig: i32) {
    // SAFETY: fcntl on our fd with a live f_owner_ex.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if libc::fcntl(fd, F_SETOWN_EX, &o as *const OwnerEx) != 0
            || libc::fcntl(fd, F_SETSIG, sig) != 0
            || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_ASYNC) != 0
        {
            zdtm::fail(&format!("owner of fd {fd}: {}", zdtm::last_err()));
        }
    }
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: building a sigset of ours.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// `sig` (blocked) within 2 s: its si_fd.
fn wait_fd(sig: i32) -> Option<i32> {
    let set = sigset(&[sig]);
    // SAFETY: a siginfo of ours; si_fd sits at byte 24 of a SIGPOLL siginfo.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let ts = libc::timespec { tv_sec: 2, tv_nsec: 0 };
        if libc::sigtimedwait(&set, &mut info, &ts) != sig {
            return None;
        }
        let raw: &[u8; 128] = &*(&info as *const libc::siginfo_t).cast();
        Some(i32::from_ne_bytes(raw[24..28].try_into().unwrap_or([0; 4])))
    }
}

fn main() {
    zdtm::test_init();
    let (rt_thread, rt_group) = (libc::SIGRTMIN() + 2, libc::SIGRTMIN() + 3);
    // Blocked before the thread exists: it inherits the mask.
    // SAFETY: setting our own mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &sigset(&[rt_thread, rt_group]), std::ptr::null_mut()) };
    let worker = std::thread::spawn(move || {
        // SAFETY: gettid takes nothing.
        TID.store(unsafe { libc::gettid() }, Ordering::SeqCst);
        while GO.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        GOT_FD.store(wait_fd(rt_thread).unwrap_or(-1), Ordering::SeqCst);
    });
    while TID.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let tid = TID.load(Ordering::SeqCst);
    let mut sk = [0; 2];
    let mut p = [0; 2];
    // SAFETY: socketpair and pipe2 each write two ints into a live
    // [i32; 2] (`sk`, `p`).
    unsafe {
        if libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0, sk.as_mut_ptr()) != 0
            || libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) != 0
        {
            zdtm::fail("socketpair/pipe");
        }
    }
    // SAFETY: getpgrp takes nothing.
    let pgrp = unsafe { libc::getpgrp() };
    set_owner(sk[0], OwnerEx { kind: F_OWNER_TID, pid: tid }, rt_thread);
    set_owner(p[0], OwnerEx { kind: F_OWNER_PGRP, pid: pgrp }, rt_group);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: fcntl on our fd.
        unsafe { libc::fcntl(sk[0], libc::F_SETOWN, 0) };
    }
    let mut c = Checks::new();
    c.eq("socket: owner", owner(sk[0]), OwnerEx { kind: F_OWNER_TID, pid: tid });
    c.eq("pipe: owner", owner(p[0]), OwnerEx { kind: F_OWNER_PGRP, pid: pgrp });
    // SAFETY: fcntl queries.
    c.eq("signals", unsafe { (libc::fcntl(sk[0], F_GETSIG), libc::fcntl(p[0], F_GETSIG)) }, (rt_thread, rt_group));

    // SAFETY: a byte into each of our own pipe and socket.
    unsafe {
        libc::write(p[1], b"x".as_ptr().cast(), 1);
        libc::write(sk[1], b"y".as_ptr().cast(), 1);
    }
    c.eq("pipe: the group's signal (si_fd)", wait_fd(rt_group), Some(p[0]));
    GO.store(1, Ordering::SeqCst);
    let _ = worker.join();
    c.eq("socket: the thread's signal (si_fd)", GOT_FD.load(Ordering::SeqCst), sk[0]);
    c.finish()
}
