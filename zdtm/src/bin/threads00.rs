//! threads00: a process of 1 + 4 threads, each with state of its own that
//! must come back on the right thread: its tid, a counter in thread-local
//! storage, a blocked-signal mask that differs per thread, a name (comm),
//! a sigaltstack (thread 1), a private pending signal (thread 2: SIGUSR1
//! queued to it with rt_tgsigqueueinfo
//! while blocked, with a value), its robust futex list, and FPU state
//! (xmm0-15 and MXCSR with a rounding mode per thread, held in registers
//! across the wait by one inline-asm block that waits with raw futex
//! calls). After the check each thread keeps counting, and the main
//! thread joins them all (which needs each thread's clear_tid address).

use std::cell::Cell;
use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;

use zdtm::Checks;

const N: usize = 4;
/// Set (and futex-woken) by the main thread once SIGTERM came.
static GO: AtomicU32 = AtomicU32::new(0);

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

#[repr(C, align(16))]
struct Fpu {
    vin: [u8; 256],
    vout: [u8; 256],
    mx_in: u32,
    mx_out: u32,
    mx_saved: u32,
}

const VIN: usize = offset_of!(Fpu, vin);
const VOUT: usize = offset_of!(Fpu, vout);
const MXIN: usize = offset_of!(Fpu, mx_in);
const MXOUT: usize = offset_of!(Fpu, mx_out);
const MXSAVE: usize = offset_of!(Fpu, mx_saved);

macro_rules! xmm16 {
    (load; $($n:literal)*) => {
        concat!($("movdqu xmm", $n, ", xmmword ptr [{b} + {vin} + 16 * ", $n, "]\n",)*)
    };
    (store; $($n:literal)*) => {
        concat!($("movdqu xmmword ptr [{b} + {vout} + 16 * ", $n, "], xmm", $n, "\n",)*)
    };
}

/// Plant `f.vin` in xmm0-15 and `f.mx_in` in MXCSR, wait (raw futex calls
/// only) until `*go` is non-zero, then store them to `f.vout`/`f.mx_out`.
fn fpu_wait(f: &mut Fpu, go: *const u32) {
    // SAFETY: f is a valid Fpu; every register the block touches is
    // declared; MXCSR is put back before the block ends.
    unsafe {
        std::arch::asm!(
            "stmxcsr dword ptr [{b} + {mxsave}]",
            "ldmxcsr dword ptr [{b} + {mxin}]",
            xmm16!(load; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15),
            "2:",
            "mov eax, dword ptr [rdi]",
            "test eax, eax",
            "jnz 3f",
            "mov eax, 202", // SYS_futex
            "mov esi, 128", // FUTEX_WAIT | FUTEX_PRIVATE_FLAG
            "xor edx, edx",
            "xor r10d, r10d",
            "syscall",
            "jmp 2b",
            "3:",
            xmm16!(store; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15),
            "stmxcsr dword ptr [{b} + {mxout}]",
            "ldmxcsr dword ptr [{b} + {mxsave}]",
            b = in(reg) f as *mut Fpu,
            vin = const VIN, vout = const VOUT, mxin = const MXIN, mxout = const MXOUT, mxsave = const MXSAVE,
            in("rdi") go,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("r10") _, out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _, out("xmm4") _, out("xmm5") _,
            out("xmm6") _, out("xmm7") _, out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        );
    }
}

fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

fn blocked() -> Vec<i32> {
    // SAFETY: query only, into a zeroed set.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut s);
        (1..=64).filter(|&n| libc::sigismember(&s, n) == 1).collect()
    }
}

fn block(sigs: &[i32]) {
    // SAFETY: a set built with sigaddset.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        for &n in sigs {
            libc::sigaddset(&mut s, n);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut());
    }
}

fn altstack() -> (usize, usize, i32) {
    // SAFETY: stack_t is plain data (all zeroes is valid); sigaltstack with
    // a null new stack only writes the current one into `ss`.
    unsafe {
        let mut ss: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut ss);
        (ss.ss_sp as usize, ss.ss_size, ss.ss_flags)
    }
}

fn robust_list() -> (usize, usize) {
    let (mut head, mut len) = (0usize, 0usize);
    // SAFETY: two valid out-pointers.
    unsafe { libc::syscall(libc::SYS_get_robust_list, 0, &mut head, &mut len) };
    (head, len)
}

fn comm(tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default().trim().to_string()
}

/// The value the pending SIGUSR1 of thread 2 carries.
const SIGVAL: u64 = 0x5eed_4242;

/// (signo, code, pid, value) of a raw siginfo (the _rt layout).
fn siginfo_fields(b: &[u8; 128]) -> (i32, i32, i32, u64) {
    let i32_at = |o: usize| i32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    (i32_at(0), i32_at(8), i32_at(16), u64::from_le_bytes(b[24..32].try_into().unwrap()))
}

/// Queue SIGUSR1 with SI_QUEUE and [`SIGVAL`] to our thread `tid`.
fn queue_usr1(tid: i32) -> std::io::Result<()> {
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&libc::SIGUSR1.to_le_bytes());
    b[8..12].copy_from_slice(&libc::SI_QUEUE.to_le_bytes());
    b[16..20].copy_from_slice(&(std::process::id() as i32).to_le_bytes());
    // SAFETY: getuid has no preconditions.
    b[20..24].copy_from_slice(&unsafe { libc::getuid() }.to_le_bytes());
    b[24..32].copy_from_slice(&SIGVAL.to_le_bytes());
    // SAFETY: a 128-byte siginfo for our own thread.
    let r = unsafe {
        libc::syscall(libc::SYS_rt_tgsigqueueinfo, std::process::id(), tid, libc::SIGUSR1, b.as_ptr())
    };
    if r != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// What a thread saw before the dump.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    tid: i32,
    mask: Vec<i32>,
    sas: (usize, usize, i32),
    robust: (usize, usize),
    comm: String,
}

fn seen() -> Seen {
    let tid = gettid();
    Seen { tid, mask: blocked(), sas: altstack(), robust: robust_list(), comm: comm(tid) }
}

/// Thread `i`'s blocked signals, sorted (SIGWINCH comes from the main thread).
fn mask_of(i: usize) -> Vec<i32> {
    let mut m = vec![libc::SIGWINCH, libc::SIGTERM, libc::SIGRTMIN() + i as i32];
    if i.is_multiple_of(2) {
        m.push(libc::SIGUSR2);
    }
    if i == 2 {
        m.push(libc::SIGUSR1);
    }
    m.sort_unstable();
    m
}

fn worker(i: usize, ready: mpsc::Sender<Seen>) -> Vec<String> {
    let name = std::ffi::CString::new(format!("thr-{i}")).unwrap();
    // SAFETY: a NUL-terminated name of at most 15 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    block(&mask_of(i));
    if i == 1 {
        let stack: &'static mut [u8] = Vec::leak(vec![0u8; 64 * 1024]);
        let ss = libc::stack_t { ss_sp: stack.as_mut_ptr().cast(), ss_flags: 0, ss_size: stack.len() };
        // SAFETY: a leaked buffer that lives as long as the thread.
        if unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) } != 0 {
            return vec![format!("thread {i}: sigaltstack: {}", std::io::Error::last_os_error())];
        }
    }
    let base = 1000 * (i as u64 + 1);
    for _ in 0..base + 7 {
        COUNTER.with(|c| c.set(c.get() + 1));
    }
    let mut f = Fpu { vin: [0; 256], vout: [0; 256], mx_in: 0x1f80 | ((i as u32 % 4) << 13) | 0x40, mx_out: 0, mx_saved: 0 };
    for (k, b) in f.vin.iter_mut().enumerate() {
        *b = (i * 37 + k * 11 + 5) as u8;
    }
    let before = seen();
    let _ = ready.send(before.clone());
    drop(ready);

    fpu_wait(&mut f, GO.as_ptr());

    let mut errs = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            errs.push(format!("thread {i}: {what}"));
        }
    };
    if zdtm::sabotaged() && i == 0 {
        COUNTER.with(|c| c.set(c.get() + 1));
    }
    let after = seen();
    check(after == before, format!("state {after:?}, was {before:?}"));
    check(f.vout == f.vin, "xmm0-15 changed".into());
    check(f.mx_out == f.mx_in, format!("MXCSR {:#x}, was {:#x}", f.mx_out, f.mx_in));
    let n = COUNTER.with(Cell::get);
    check(n == base + 7, format!("TLS counter {n}, want {}", base + 7));
    if i == 2 {
        // SAFETY: plain queries on valid sets; the siginfo is read as the
        // bytes the kernel wrote.
        let (pending, info) = unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut s);
            let pending = libc::sigismember(&s, libc::SIGUSR1) == 1;
            let mut only: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut only);
            libc::sigaddset(&mut only, libc::SIGUSR1);
            let mut info = [0u8; 128];
            let ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            libc::sigtimedwait(&only, info.as_mut_ptr().cast(), &ts);
            (pending, info)
        };
        check(pending, "SIGUSR1 is no longer pending".into());
        let got = siginfo_fields(&info);
        let want = (libc::SIGUSR1, libc::SI_QUEUE, std::process::id() as i32, SIGVAL);
        check(got == want, format!("pending SIGUSR1 (signo, code, pid, value) {got:?}, want {want:?}"));
    }
    // And it keeps working.
    for _ in 0..1000 {
        COUNTER.with(|c| c.set(c.get() + 1));
    }
    let n = COUNTER.with(Cell::get);
    check(n == base + 1007, format!("TLS counter after more work {n}, want {}", base + 1007));
    errs
}

fn main() {
    zdtm::test_init();
    block(&[libc::SIGWINCH]);
    let main_before = seen();

    let mut handles = Vec::new();
    let mut tids = Vec::new();
    for i in 0..N {
        let (tx, rx) = mpsc::channel();
        handles.push(std::thread::Builder::new().name(format!("thr-{i}")).spawn(move || worker(i, tx)).expect("spawn"));
        let s = rx.recv().unwrap_or_else(|_| zdtm::fail(&format!("thread {i} died before it was ready")));
        if s.mask != mask_of(i) {
            zdtm::fail(&format!("thread {i}: blocked {:?}, asked for {:?}", s.mask, mask_of(i)));
        }
        tids.push(s.tid);
    }
    // A private signal for thread 2, pending (blocked there).
    if let Err(e) = queue_usr1(tids[2]) {
        zdtm::fail(&format!("rt_tgsigqueueinfo: {e}"));
    }
    zdtm::test_msg!("threads {tids:?} ready");

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c = Checks::new();
    c.eq("main thread state", seen(), main_before);
    GO.store(1, Ordering::SeqCst);
    // SAFETY: futex wake on a valid, static u32.
    unsafe { libc::syscall(libc::SYS_futex, GO.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX) };
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(errs) => {
                for e in errs {
                    c.check(false, || e);
                }
            }
            Err(_) => c.check(false, || format!("thread {i} panicked")),
        }
    }
    c.finish()
}
