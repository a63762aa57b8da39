//! Target program for tests/compel.rs (compiled by the test with rustc; not
//! a cargo target). Modes:
//! - `sleep MS strict|lenient`: umask 027, a SIGUSR1 handler (SA_RESTART,
//!   mask {USR2, TERM}), SIGUSR2 ignored, a page-aligned pattern buffer; then
//!   forever: clock_nanosleep(MS) through a raw syscall with marker values
//!   in xmm8/xmm15 and callee-saved registers, checking they survive and the
//!   sleep was not cut short; prints `tick N`. strict: EINTR or a short
//!   sleep prints `ERR ...` and exits 3; lenient: EINTR sleeps the rest
//!   and prints `eintr`.
//! - `pause`: a raw pause() loop (never prints unless pause returns).
//! - `seccomp`: `sleep 200 strict` under a seccomp filter that kills the
//!   process on getppid(2).
//!
//! Both first print `ready handler=0x.. buf=0x.. len=N`.

use std::arch::asm;
use std::io::Write;
use std::time::{Duration, Instant};

#[repr(C)]
struct SigAction {
    handler: usize,
    mask: [u64; 16],
    flags: i32,
    restorer: usize,
}

unsafe extern "C" {
    fn umask(m: u32) -> u32;
    fn sigaction(sig: i32, act: *const SigAction, old: *mut SigAction) -> i32;
    fn prctl(op: i32, a: usize, b: usize, c: usize, d: usize) -> i32;
}

#[repr(C)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// Kill the process on getppid (110), allow everything else.
fn install_seccomp() {
    let prog = [
        SockFilter { code: 0x20, jt: 0, jf: 0, k: 0 },
        SockFilter { code: 0x15, jt: 0, jf: 1, k: 110 },
        SockFilter { code: 0x06, jt: 0, jf: 0, k: 0x8000_0000 },
        SockFilter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 },
    ];
    let fprog = SockFprog { len: prog.len() as u16, filter: prog.as_ptr() };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integers; PR_SET_SECCOMP reads
    // `fprog` and the `prog` array it points to, both alive across the call
    // (the kernel copies the filter).
    unsafe {
        assert_eq!(prctl(38, 1, 0, 0, 0), 0, "PR_SET_NO_NEW_PRIVS");
        assert_eq!(prctl(22, 2, &fprog as *const SockFprog as usize, 0, 0), 0, "PR_SET_SECCOMP");
    }
}

#[repr(C, align(4096))]
struct Buf([u8; 4 * 4096]);
static mut BUF: Buf = Buf([0; 4 * 4096]);

extern "C" fn on_usr1(_: i32) {}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

/// clock_nanosleep(CLOCK_MONOTONIC, relative) with markers in registers that
/// must survive: returns (syscall result, markers intact).
fn sleep_raw(req: &Timespec, rem: &mut Timespec) -> (i64, bool) {
    let ret: i64;
    let (x8, x15): (u64, u64);
    let pat: u64 = 0x5a5a_1234_cafe_f00d;
    // SAFETY: clock_nanosleep (230) reads `req` and writes `rem`, both live
    // references; every register the asm changes is declared (rax, rcx,
    // r11 by the syscall, xmm8/xmm15 by us).
    unsafe {
        asm!(
            "movq xmm8, {pat}",
            "movq xmm15, {pat}",
            "syscall",
            "movq {x8}, xmm8",
            "movq {x15}, xmm15",
            pat = in(reg) pat,
            x8 = lateout(reg) x8,
            x15 = lateout(reg) x15,
            inlateout("rax") 230i64 => ret,
            in("rdi") 1i64,
            in("rsi") 0i64,
            in("rdx") req as *const Timespec,
            in("r10") rem as *mut Timespec,
            lateout("rcx") _,
            lateout("r11") _,
            out("xmm8") _,
            out("xmm15") _,
        );
    }
    (ret, x8 == pat && x15 == pat)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut mode = args.get(1).map(String::as_str).unwrap_or("pause");
    if mode == "seccomp" {
        install_seccomp();
        mode = "sleep";
    }
    // SAFETY: umask takes an integer; sigaction reads a SigAction laid out
    // as glibc's struct sigaction, with a handler that is an extern "C"
    // fn(i32) (or SIG_IGN); BUF is written only here, before any thread or
    // handler could look at it.
    unsafe {
        umask(0o027);
        let act = SigAction { handler: on_usr1 as *const () as usize, mask: [(1 << 11) | (1 << 14), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], flags: 0x1000_0000, restorer: 0 };
        sigaction(10, &act, std::ptr::null_mut());
        let ign = SigAction { handler: 1, mask: [0; 16], flags: 0, restorer: 0 };
        sigaction(12, &ign, std::ptr::null_mut());
        // SIGHUP at its default whatever we inherited (nohup ignores it):
        // the test checks the parasite reads a default disposition.
        let dfl = SigAction { handler: 0, mask: [0; 16], flags: 0, restorer: 0 };
        sigaction(1, &dfl, std::ptr::null_mut());
        let buf = &raw mut BUF;
        for (i, b) in (*buf).0.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
    }
    let out = std::io::stdout();
    writeln!(out.lock(), "ready handler={:#x} buf={:#x} len={}", on_usr1 as *const () as usize, &raw const BUF as usize, 4 * 4096).unwrap();
    if mode == "pause" {
        loop {
            let r: i64;
            // SAFETY: pause (34) takes no arguments; the asm declares the
            // registers the syscall changes.
            unsafe { asm!("syscall", inlateout("rax") 34i64 => r, lateout("rcx") _, lateout("r11") _) };
            writeln!(out.lock(), "pause returned {r}").unwrap();
        }
    }
    let ms: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let strict = args.get(3).map(String::as_str) != Some("lenient");
    let want = Duration::from_millis(ms);
    for n in 0.. {
        let t0 = Instant::now();
        let mut req = Timespec { sec: (ms / 1000) as i64, nsec: ((ms % 1000) * 1_000_000) as i64 };
        loop {
            let mut rem = Timespec { sec: 0, nsec: 0 };
            let (r, intact) = sleep_raw(&req, &mut rem);
            if !intact {
                writeln!(out.lock(), "ERR registers clobbered").unwrap();
                std::process::exit(5);
            }
            if r == 0 {
                break;
            }
            if r == -4 && !strict {
                writeln!(out.lock(), "eintr").unwrap();
                req = rem;
                continue;
            }
            writeln!(out.lock(), "ERR sleep returned {r}").unwrap();
            std::process::exit(3);
        }
        let dt = t0.elapsed();
        if dt < want {
            writeln!(out.lock(), "ERR short sleep {dt:?}").unwrap();
            std::process::exit(4);
        }
        writeln!(out.lock(), "tick {n}").unwrap();
    }
}
