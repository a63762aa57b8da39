//! seccomp_strict00: a child process in SECCOMP_MODE_STRICT survives, still
//! strict, and so does a strict thread of the test process itself (strict
//! mode is per thread). Each fills nothing new after entering strict mode
//! and serves one-byte requests on its pipes with raw read/write syscalls
//! only: `c` checks a buffer and a counter and answers `P` or `F`, `i`
//! bumps the counter (the sabotage), `x` makes a syscall strict mode
//! forbids (getpid), which must kill it (the child with SIGKILL; the
//! thread alone, which otherwise answers `A`). After the restore the test
//! checks each one's Seccomp mode in /proc, its answer to `c`, and that
//! `x` kills it: the mode is enforced from inside.

use std::arch::asm;
use zdtm::Checks;

const LEN: usize = 64 * 1024;
const SECCOMP_MODE_STRICT: libc::c_ulong = 1;

/// A raw syscall with three arguments (no libc: strict mode allows only
/// read, write, exit and rt_sigreturn).
fn raw3(nr: i64, a: usize, b: usize, c: usize) -> i64 {
    let ret: i64;
    // SAFETY: a plain syscall instruction; the kernel clobbers rcx and r11.
    unsafe {
        asm!("syscall", inlateout("rax") nr => ret, in("rdi") a, in("rsi") b, in("rdx") c,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
}

/// Strict mode for the calling thread, then requests until EOF; `thread`:
/// a thread of the test process (it exits alone, saying `A` first if a
/// forbidden syscall let it live).
fn serve(req: i32, rep: i32, buf: &[u8], sum: u64, thread: bool) -> ! {
    // No signal handler may run here (SIGTERM's calls futex): block them all.
    // SAFETY: a filled set for our own mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) } != 0 {
        raw3(libc::SYS_exit, 2, 0, 0);
    }
    let mut counter: u64 = 7;
    loop {
        let mut b = [0u8; 1];
        let n = raw3(libc::SYS_read, req as usize, b.as_mut_ptr() as usize, 1);
        if n == -(libc::EINTR as i64) {
            continue;
        }
        if n != 1 {
            break;
        }
        match b[0] {
            b'c' => {
                let ok = std::hint::black_box(checksum(buf)) == sum && counter == 7;
                let a = [if ok { b'P' } else { b'F' }];
                raw3(libc::SYS_write, rep as usize, a.as_ptr() as usize, 1);
            }
            b'i' => counter += 1,
            b'x' => {
                raw3(libc::SYS_getpid, 0, 0, 0);
                // Still alive: strict mode is gone.
                if thread {
                    raw3(libc::SYS_write, rep as usize, b"A".as_ptr() as usize, 1);
                }
                raw3(libc::SYS_exit, 3, 0, 0);
            }
            _ => {}
        }
    }
    raw3(libc::SYS_exit, 0, 0, 0);
    loop {
        std::hint::spin_loop();
    }
}

/// One byte from `fd` within 10 s.
fn recv(fd: i32) -> Option<u8> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let mut b = [0u8; 1];
    // SAFETY: one valid pollfd, then a one-byte buffer.
    let ok = unsafe { libc::poll(&mut p, 1, 10_000) == 1 && libc::read(fd, b.as_mut_ptr().cast(), 1) == 1 };
    ok.then_some(b[0])
}

fn send(fd: i32, b: u8) -> bool {
    // SAFETY: a one-byte buffer.
    unsafe { libc::write(fd, [b].as_ptr().cast(), 1) == 1 }
}

fn seccomp_of(pid: i32) -> String {
    seccomp_of_path(&format!("/proc/{pid}/status"))
}

fn seccomp_of_path(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string())))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    zdtm::test_init();
    let mut buf = vec![0u8; LEN];
    zdtm::datagen(&mut buf, 0x5ecc);
    let sum = checksum(&buf);
    // The child only serves (raw syscalls, no allocation after strict mode
    // is on).
    let (pid, req_w, rep_r) = zdtm::fork_server(|req, rep| serve(req, rep, &buf, sum, false));
    // A strict thread of ours, on its own pipes.
    let (treq_r, treq_w) = zdtm::pipe_or_fail();
    let (trep_r, trep_w) = zdtm::pipe_or_fail();
    let (tx, rx) = std::sync::mpsc::channel();
    let tbuf = buf.clone();
    let th = std::thread::spawn(move || {
        // SAFETY: gettid takes no arguments and touches no memory of ours.
        let _ = tx.send(unsafe { libc::syscall(libc::SYS_gettid) } as i32);
        drop(tx);
        serve(treq_r, trep_w, &tbuf, sum, true)
    });
    let tid = rx.recv().unwrap_or_else(|_| zdtm::fail("the strict thread died"));
    let me = std::process::id();
    // Wait until both are strict.
    let t0 = std::time::Instant::now();
    while seccomp_of(pid) != "1" || seccomp_of_path(&format!("/proc/{me}/task/{tid}/status")) != "1" {
        if t0.elapsed().as_secs() > 10 {
            zdtm::fail(&format!("the child {pid} or the thread {tid} never entered strict mode"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c = Checks::new();
    c.eq("Seccomp of the child", seccomp_of(pid), "1".to_string());
    c.eq("Seccomp of the thread", seccomp_of_path(&format!("/proc/{me}/task/{tid}/status")), "1".to_string());
    if zdtm::sabotaged() && !(send(req_w, b'i') && send(treq_w, b'i')) {
        c.check(false, || "sabotage: a pipe is broken".into());
    }
    let answer = if send(treq_w, b'c') { recv(trep_r) } else { None };
    c.eq("the thread's answer to its own check", answer.map(char::from), Some('P'));
    c.check(send(treq_w, b'x'), || "can't ask the thread for a forbidden syscall".into());
    // It never returns to Rust: wait for it to be gone from /proc instead.
    std::mem::forget(th);
    let t0 = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{me}/task/{tid}")).exists() && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    c.check(!std::path::Path::new(&format!("/proc/{me}/task/{tid}")).exists(), || {
        format!("the thread {tid} is still there after a forbidden syscall")
    });
    let mut said = [0u8; 1];
    // SAFETY: plain fcntl, then a one-byte read that must find nothing.
    let n = unsafe {
        libc::fcntl(trep_r, libc::F_SETFL, libc::O_NONBLOCK);
        libc::read(trep_r, said.as_mut_ptr().cast(), 1)
    };
    c.check(n != 1, || "the thread lived on after a forbidden syscall: it is not strict".into());
    let answer = if send(req_w, b'c') { recv(rep_r) } else { None };
    c.eq("the child's answer to its own check", answer.map(char::from), Some('P'));
    c.check(send(req_w, b'x'), || "can't ask the child for a forbidden syscall".into());
    let mut st = 0;
    // SAFETY: a valid out-pointer; our own child.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    c.check(r == pid, || format!("waitpid({pid}): {}", zdtm::last_err()));
    c.check(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL, || {
        format!("a forbidden syscall in the child ended it with status {st:#x}, not SIGKILL")
    });
    c.finish()
}
