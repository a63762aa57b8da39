//! Target program for tests/kill.rs (compiled by the test with rustc; not a
//! cargo target). Usage: `kill_target DIR`.
//!
//! Sets up a counter file (DIR/counter, rewritten in place), a pipe, a
//! socketpair, a 1 MiB pattern buffer and a signal mask with SIGUSR2,
//! SIGWINCH and SIGRTMIN+3 blocked; a SIGUSR1 handler (SA_RESTART) asks for
//! a report; two threads (the same mask) that sleep 2 ms at a time, any
//! failure of theirs also written to DIR/fail. Then, forever: count, pwrite the count, send 8 bytes through
//! the pipe and the socketpair and read them back, sleep 1 ms. Any failed
//! or wrong syscall result writes DIR/fail (what and errno) and exits 3;
//! an EINTR from the sleep is tolerated (it sleeps on). A report request
//! writes DIR/report (`count=N sum=S`, S the buffer's checksum, through a
//! rename). DIR/ready appears once set up. Nothing allocates after set-up,
//! so the maps stay as they are.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};

#[repr(C)]
struct SigAction {
    handler: usize,
    mask: [u64; 16],
    flags: i32,
    restorer: usize,
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn sigaction(sig: i32, act: *const SigAction, old: *mut SigAction) -> i32;
    fn sigprocmask(how: i32, set: *const [u64; 16], old: *mut [u64; 16]) -> i32;
    fn open(path: *const i8, flags: i32, mode: u32) -> i32;
    fn close(fd: i32) -> i32;
    fn pwrite(fd: i32, buf: *const u8, n: usize, off: i64) -> isize;
    fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    fn read(fd: i32, buf: *mut u8, n: usize) -> isize;
    fn pipe(fds: *mut i32) -> i32;
    fn socketpair(d: i32, t: i32, p: i32, fds: *mut i32) -> i32;
    fn nanosleep(req: *const Timespec, rem: *mut Timespec) -> i32;
    fn rename(from: *const i8, to: *const i8) -> i32;
    fn __errno_location() -> *mut i32;
    fn _exit(code: i32) -> !;
}

const O_WRONLY: i32 = 1;
const O_CREAT: i32 = 0o100;
const O_TRUNC: i32 = 0o1000;
const SA_RESTART: i32 = 0x1000_0000;
const EINTR: i32 = 4;
const BUF_LEN: usize = 1 << 20;

static ASKED: AtomicBool = AtomicBool::new(false);
/// Threads running their loop (their start-up, which blocks every signal
/// for a moment, is over).
static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn on_usr1(_: i32) {
    ASKED.store(true, Ordering::Relaxed);
}

fn errno() -> i32 {
    // SAFETY: glibc's thread-local errno.
    unsafe { *__errno_location() }
}

/// Decimal digits of `n` into `out`; the count written.
fn digits(mut n: u64, out: &mut [u8]) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = 0;
    loop {
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        i += 1;
        if n == 0 {
            break;
        }
    }
    for k in 0..i {
        out[k] = tmp[i - 1 - k];
    }
    i
}

struct Paths {
    fail: CString,
    report: CString,
    report_tmp: CString,
}

fn fail(p: &Paths, what: &[u8], e: i32) -> ! {
    let mut line = [0u8; 96];
    let n = what.len().min(60);
    line[..n].copy_from_slice(&what[..n]);
    line[n] = b' ';
    let k = digits(e as u64, &mut line[n + 1..]);
    // SAFETY: a path string and a stack buffer.
    unsafe {
        let fd = open(p.fail.as_ptr(), O_WRONLY | O_CREAT | O_TRUNC, 0o644);
        write(fd, line.as_ptr(), n + 1 + k);
        _exit(3);
    }
}

fn checksum(buf: &[u8]) -> u64 {
    buf.chunks_exact(8).fold(0u64, |s, c| s.rotate_left(5) ^ u64::from_le_bytes(c.try_into().unwrap()))
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: kill_target DIR");
    let path = |n: &str| CString::new(format!("{dir}/{n}")).unwrap();
    let p = Paths { fail: path("fail"), report: path("report"), report_tmp: path("report.tmp") };
    let counter_path = path("counter");
    let ready = path("ready");

    let mut buf = vec![0u8; BUF_LEN];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for c in buf.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
    let mut pipefd = [0i32; 2];
    let mut sp = [0i32; 2];
    let mut line = [0u8; 64];
    // SAFETY: plain libc calls on locals that outlive them.
    unsafe {
        let act = SigAction { handler: on_usr1 as *const () as usize, mask: [0; 16], flags: SA_RESTART, restorer: 0 };
        if sigaction(libc_sigusr1(), &act, std::ptr::null_mut()) != 0 {
            fail(&p, b"sigaction", errno());
        }
        let mut set = [0u64; 16];
        set[0] = (1 << (12 - 1)) | (1 << (28 - 1)) | (1u64 << (34 + 3 - 1));
        if sigprocmask(0, &set, std::ptr::null_mut()) != 0 {
            fail(&p, b"sigprocmask", errno());
        }
        if pipe(pipefd.as_mut_ptr()) != 0 {
            fail(&p, b"pipe", errno());
        }
        if socketpair(1, 1, 0, sp.as_mut_ptr()) != 0 {
            fail(&p, b"socketpair", errno());
        }
    }
    for _ in 0..2 {
        let fail_path = p.fail.clone();
        std::thread::spawn(move || {
            let p = Paths { fail: fail_path, report: CString::default(), report_tmp: CString::default() };
            STARTED.fetch_add(1, Ordering::SeqCst);
            loop {
                let mut req = Timespec { sec: 0, nsec: 2_000_000 };
                let mut rem = Timespec { sec: 0, nsec: 0 };
                // SAFETY: stack structs.
                while unsafe { nanosleep(&req, &mut rem) } != 0 {
                    if errno() != EINTR {
                        fail(&p, b"thread nanosleep", errno());
                    }
                    req = Timespec { sec: rem.sec, nsec: rem.nsec };
                }
            }
        });
    }
    // SAFETY: a path string.
    let counter = unsafe { open(counter_path.as_ptr(), O_WRONLY | O_CREAT | O_TRUNC, 0o644) };
    if counter < 0 {
        fail(&p, b"open counter", errno());
    }
    while STARTED.load(Ordering::SeqCst) < 2 {
        std::thread::yield_now();
    }
    // SAFETY: a path string.
    unsafe { close(open(ready.as_ptr(), O_WRONLY | O_CREAT | O_TRUNC, 0o644)) };

    let mut count = 0u64;
    loop {
        count += 1;
        let mut num = [b' '; 20];
        digits(count, &mut num);
        // SAFETY: stack buffers; fds opened above.
        unsafe {
            if pwrite(counter, num.as_ptr(), num.len(), 0) != num.len() as isize {
                fail(&p, b"pwrite counter", errno());
            }
            for (what, w, r) in [(&b"pipe"[..], pipefd[1], pipefd[0]), (&b"socketpair"[..], sp[0], sp[1])] {
                let msg = count.to_le_bytes();
                if write(w, msg.as_ptr(), 8) != 8 {
                    fail(&p, what, errno());
                }
                let mut got = [0u8; 8];
                if read(r, got.as_mut_ptr(), 8) != 8 {
                    fail(&p, what, errno());
                }
                if got != msg {
                    fail(&p, b"data mismatch", 0);
                }
            }
            let mut req = Timespec { sec: 0, nsec: 1_000_000 };
            let mut rem = Timespec { sec: 0, nsec: 0 };
            while nanosleep(&req, &mut rem) != 0 {
                if errno() != EINTR {
                    fail(&p, b"nanosleep", errno());
                }
                req = Timespec { sec: rem.sec, nsec: rem.nsec };
            }
        }
        if ASKED.swap(false, Ordering::Relaxed) {
            let mut n = 0;
            for part in [&b"count="[..]] {
                line[n..n + part.len()].copy_from_slice(part);
                n += part.len();
            }
            n += digits(count, &mut line[n..]);
            line[n..n + 5].copy_from_slice(b" sum=");
            n += 5;
            n += digits(checksum(&buf), &mut line[n..]);
            // SAFETY: path strings and a stack buffer.
            unsafe {
                let fd = open(p.report_tmp.as_ptr(), O_WRONLY | O_CREAT | O_TRUNC, 0o644);
                if fd < 0 || write(fd, line.as_ptr(), n) != n as isize {
                    fail(&p, b"report", errno());
                }
                close(fd);
                if rename(p.report_tmp.as_ptr(), p.report.as_ptr()) != 0 {
                    fail(&p, b"rename report", errno());
                }
            }
        }
    }
}

fn libc_sigusr1() -> i32 {
    10
}
