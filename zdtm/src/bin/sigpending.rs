//! sigpending: signals raised while blocked are still pending after, in the
//! right queue (thread-private vs process-shared), with their siginfo
//! (si_code, si_pid, sigqueue values, RT signals queued twice in order),
//! and are delivered once unblocked.

use std::sync::Mutex;
use zdtm::Checks;

#[derive(Debug, PartialEq, Clone, Copy)]
struct Got {
    sig: i32,
    code: i32,
    value: i64,
    pid_ok: bool,
}

static LOG: Mutex<Vec<Got>> = Mutex::new(Vec::new());

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
    let (code, value, pid) = unsafe {
        (
            (*info).si_code,
            (*info).si_value().sival_ptr as i64,
            (*info).si_pid(),
        )
    };
    // Every test signal is blocked inside the handler: no nesting, so the
    // lock is never held when we get here.
    if let Ok(mut l) = LOG.try_lock() {
        l.push(Got {
            sig,
            code,
            value,
            pid_ok: pid == std::process::id() as i32,
        });
    }
}

fn set_of(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: a set built with sigaddset.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        for &n in sigs {
            libc::sigaddset(&mut s, n);
        }
        s
    }
}

fn pending() -> Vec<i32> {
    // SAFETY: out-buffer query.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut s);
        (1..=64)
            .filter(|&n| libc::sigismember(&s, n) == 1)
            .collect()
    }
}

fn queue(tid: bool, sig: i32, value: i64) {
    // SAFETY: a zeroed siginfo filled as sigqueue does; signals to ourselves.
    unsafe {
        let mut si: libc::siginfo_t = std::mem::zeroed();
        let raw = &mut si as *mut libc::siginfo_t as *mut i32;
        *raw = sig; // si_signo
        *raw.add(2) = libc::SI_QUEUE; // si_code
        *raw.add(4) = libc::getpid(); // si_pid
        *raw.add(5) = libc::getuid() as i32; // si_uid
        *(raw.add(6) as *mut i64) = value; // si_value
        let r = if tid {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                libc::getpid(),
                libc::gettid(),
                sig,
                &si,
            )
        } else {
            libc::syscall(libc::SYS_rt_sigqueueinfo, libc::getpid(), sig, &si)
        };
        if r != 0 {
            zdtm::fail(&format!("queue signal {sig}: {}", zdtm::last_err()));
        }
    }
}

fn main() {
    zdtm::test_init();
    let rt = libc::SIGRTMIN() + 2;
    let sigs = [libc::SIGUSR1, libc::SIGUSR2, rt];
    let all = set_of(&sigs);
    for &s in &sigs {
        // SAFETY: a zeroed sigaction filled in.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            sa.sa_mask = all;
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
    // SAFETY: block the test signals.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut()) };
    // SAFETY: signals to ourselves.
    unsafe {
        libc::raise(libc::SIGUSR1); // thread-private, SI_TKILL
        libc::kill(libc::getpid(), libc::SIGUSR2); // shared, SI_USER
    }
    queue(false, rt, 111); // shared, queued twice
    queue(false, rt, 222);
    queue(true, rt, 333); // thread-private
    let pend0 = pending();
    if pend0 != sigs {
        zdtm::fail(&format!("pending {pend0:?} before the dump, want {sigs:?}"));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let one = set_of(&[libc::SIGUSR2]);
        // SAFETY: consume the pending SIGUSR2.
        unsafe {
            libc::sigtimedwait(
                &one,
                std::ptr::null_mut(),
                &libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
            )
        };
    }
    let mut c = Checks::new();
    c.eq("pending", pending(), pend0);
    c.check(LOG.lock().unwrap().is_empty(), || {
        "a blocked signal was delivered".into()
    });
    // SAFETY: unblock: everything pending gets delivered now, one at a time
    // (each handler blocks all three), private queue first.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &all, std::ptr::null_mut()) };
    let got = LOG.lock().unwrap().clone();
    let g = |sig, code, value| Got {
        sig,
        code,
        value,
        pid_ok: true,
    };
    let want = vec![
        g(libc::SIGUSR1, libc::SI_TKILL, 0),
        g(rt, libc::SI_QUEUE, 333),
        g(libc::SIGUSR2, libc::SI_USER, 0),
        g(rt, libc::SI_QUEUE, 111),
        g(rt, libc::SI_QUEUE, 222),
    ];
    // si_value is meaningless for SI_TKILL/SI_USER.
    let norm = |v: Vec<Got>| {
        v.into_iter()
            .map(|x| {
                if x.code == libc::SI_QUEUE {
                    x
                } else {
                    Got { value: 0, ..x }
                }
            })
            .collect::<Vec<_>>()
    };
    c.eq(
        "delivered (signal, si_code, value, si_pid ok)",
        norm(got),
        want,
    );
    c.eq("pending after delivery", pending(), vec![]);
    c.finish()
}
