//! seccomp_strict00: a child process in SECCOMP_MODE_STRICT survives, still
//! strict. The child fills a buffer, enters strict mode and then serves
//! one-byte requests on a pipe with raw read/write syscalls only: `c`
//! checks its buffer and a counter and answers `P` or `F`, `i` bumps the
//! counter (the sabotage), `x` makes a syscall strict mode forbids
//! (getpid), which must kill it with SIGKILL. After the restore the test
//! checks the child's Seccomp mode in /proc, its answer to `c`, and that
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

/// The child's life after fork: strict mode, then requests until EOF.
fn child(req: i32, rep: i32, buf: &[u8], sum: u64) -> ! {
    // SAFETY: plain prctl.
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) } != 0 {
        // SAFETY: exit without running atexit handlers.
        unsafe { libc::_exit(2) };
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

fn pipe() -> (i32, i32) {
    let mut p = [0i32; 2];
    // SAFETY: a valid out-array of two ints.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        zdtm::fail(&format!("pipe: {}", zdtm::last_err()));
    }
    (p[0], p[1])
}

fn send(fd: i32, b: u8) -> bool {
    // SAFETY: a one-byte buffer.
    unsafe { libc::write(fd, [b].as_ptr().cast(), 1) == 1 }
}

fn seccomp_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string())))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    zdtm::test_init();
    let mut buf = vec![0u8; LEN];
    zdtm::datagen(&mut buf, 0x5ecc);
    let sum = checksum(&buf);
    let (req_r, req_w) = pipe();
    let (rep_r, rep_w) = pipe();
    // SAFETY: the child only runs `child` (raw syscalls, no allocation
    // after strict mode is on).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if pid == 0 {
        // SAFETY: closing our copies of the parent's ends.
        unsafe {
            libc::close(req_w);
            libc::close(rep_r);
        }
        child(req_r, rep_w, &buf, sum);
    }
    // SAFETY: closing the child's ends.
    unsafe {
        libc::close(req_r);
        libc::close(rep_w);
    }
    // Wait until the child is strict.
    let t0 = std::time::Instant::now();
    while seccomp_of(pid) != "1" {
        if t0.elapsed().as_secs() > 10 {
            zdtm::fail(&format!("the child {pid} never entered strict mode (Seccomp: {})", seccomp_of(pid)));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c = Checks::new();
    c.eq("Seccomp of the child", seccomp_of(pid), "1".to_string());
    if zdtm::sabotaged() && !send(req_w, b'i') {
        c.check(false, || "sabotage: the child's pipe is broken".into());
    }
    let mut answer = [0u8; 1];
    let ok = send(req_w, b'c')
        // SAFETY: a one-byte buffer.
        && unsafe { libc::read(rep_r, answer.as_mut_ptr().cast(), 1) } == 1;
    c.check(ok, || "the child did not answer".into());
    c.eq("the child's own check", answer[0] as char, 'P');
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
