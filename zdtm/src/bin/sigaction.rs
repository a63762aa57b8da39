//! sigaction: signal dispositions survive: handlers, flags (SA_SIGINFO,
//! SA_RESTART, SA_ONSTACK, SA_NODEFER, SA_RESETHAND), masks, SIG_IGN and the
//! alternate signal stack; a SIGTRAP handler too (criu's own traps must
//! not reset it). Checked by querying sigaction()/sigaltstack()
//! after, and by delivering each signal: the right handler runs, with the
//! right mask, on the right stack, and SA_RESETHAND resets; SIGTRAP comes
//! from an `int3` (a forced, kernel-sent trap).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use zdtm::Checks;

const ALT_SIZE: usize = 256 * 1024;

static H1_CALLS: AtomicUsize = AtomicUsize::new(0);
static H1_LAST: AtomicUsize = AtomicUsize::new(0);
static H1_CODE: AtomicUsize = AtomicUsize::new(0);
static H1_MASK: AtomicU64 = AtomicU64::new(0);
static H2_CALLS: AtomicUsize = AtomicUsize::new(0);
static H2_SP: AtomicUsize = AtomicUsize::new(0);
static H2_MASK: AtomicU64 = AtomicU64::new(0);

fn rtmin(n: i32) -> i32 {
    libc::SIGRTMIN() + n
}

/// The current blocked mask as a 64-bit word (bit n-1 = signal n).
fn cur_mask() -> u64 {
    // SAFETY: sigset out-buffer; no change.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut s);
        set_bits(&s)
    }
}

fn set_bits(s: &libc::sigset_t) -> u64 {
    // SAFETY: sigismember on a valid set.
    (1..=64)
        .filter(|&n| unsafe { libc::sigismember(s, n) } == 1)
        .fold(0, |m, n| m | 1 << (n - 1))
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

extern "C" fn h1(sig: libc::c_int, info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    H1_CALLS.fetch_add(1, Ordering::SeqCst);
    H1_LAST.store(sig as usize, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
    H1_CODE.store(unsafe { (*info).si_code } as usize, Ordering::SeqCst);
    H1_MASK.store(cur_mask(), Ordering::SeqCst);
}

extern "C" fn h2(_sig: libc::c_int) {
    let local = 0u8;
    H2_SP.store(
        std::hint::black_box(&local) as *const u8 as usize,
        Ordering::SeqCst,
    );
    H2_MASK.store(cur_mask(), Ordering::SeqCst);
    H2_CALLS.fetch_add(1, Ordering::SeqCst);
}

#[derive(Debug, PartialEq, Clone)]
struct Disp {
    handler: usize,
    flags: i32,
    mask: u64,
}

fn query(sig: i32) -> Disp {
    // SAFETY: out-buffer query.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut sa);
        Disp {
            handler: sa.sa_sigaction,
            flags: sa.sa_flags,
            mask: set_bits(&sa.sa_mask),
        }
    }
}

fn set(sig: i32, handler: usize, flags: i32, mask: &[i32]) {
    // SAFETY: a zeroed sigaction filled in; handler is an extern "C" fn or SIG_*.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        for &s in mask {
            libc::sigaddset(&mut sa.sa_mask, s);
        }
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            zdtm::fail(&format!("sigaction({sig}): {}", zdtm::last_err()));
        }
    }
}

fn main() {
    zdtm::test_init();
    // SAFETY: a fresh anonymous mapping for the alternate stack.
    let alt = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALT_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if alt == libc::MAP_FAILED {
        zdtm::fail("mmap");
    }
    let ss = libc::stack_t {
        ss_sp: alt,
        ss_flags: 0,
        ss_size: ALT_SIZE,
    };
    // SAFETY: a valid stack_t.
    if unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) } != 0 {
        zdtm::fail("sigaltstack");
    }
    let h1p = h1 as *const () as usize;
    let h2p = h2 as *const () as usize;
    set(
        libc::SIGUSR1,
        h1p,
        libc::SA_SIGINFO | libc::SA_RESTART,
        &[libc::SIGUSR2, libc::SIGHUP],
    );
    set(
        libc::SIGUSR2,
        h2p,
        libc::SA_ONSTACK | libc::SA_NODEFER | libc::SA_RESETHAND,
        &[libc::SIGQUIT],
    );
    set(libc::SIGHUP, libc::SIG_IGN, 0, &[]);
    set(
        libc::SIGPIPE,
        h1p,
        libc::SA_SIGINFO,
        &(1..=31)
            .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP && s != libc::SIGTERM)
            .collect::<Vec<_>>(),
    );
    set(
        rtmin(5),
        h1p,
        libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_NOCLDSTOP,
        &[rtmin(6)],
    );
    set(
        libc::SIGTRAP,
        h1p,
        libc::SA_SIGINFO | libc::SA_RESTART,
        &[libc::SIGUSR1, rtmin(1)],
    );
    let sigs = [
        libc::SIGTRAP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGHUP,
        libc::SIGPIPE,
        libc::SIGWINCH,
        libc::SIGCHLD,
        rtmin(5),
    ];
    let before: Vec<Disp> = sigs.iter().map(|&s| query(s)).collect();
    let alt_before = altstack();

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        set(
            libc::SIGUSR1,
            h1p,
            libc::SA_SIGINFO | libc::SA_RESTART,
            &[libc::SIGUSR2],
        );
        set(libc::SIGTRAP, h1p, libc::SA_SIGINFO | libc::SA_RESTART, &[libc::SIGUSR1]);
    }
    let mut c = Checks::new();
    for (i, &s) in sigs.iter().enumerate() {
        c.eq(&format!("sigaction({s})"), query(s), before[i].clone());
    }
    c.eq("sigaltstack", altstack(), alt_before);

    let base = cur_mask();
    // SIGUSR1: h1 with SA_SIGINFO, SIGUSR2|SIGHUP (and itself) blocked inside.
    // SAFETY: raise on ourselves.
    unsafe { libc::raise(libc::SIGUSR1) };
    c.eq("SIGUSR1: h1 calls", H1_CALLS.load(Ordering::SeqCst), 1);
    c.eq(
        "SIGUSR1: h1 got",
        H1_LAST.load(Ordering::SeqCst),
        libc::SIGUSR1 as usize,
    );
    c.eq(
        "SIGUSR1: si_code",
        H1_CODE.load(Ordering::SeqCst) as i32,
        libc::SI_TKILL,
    );
    c.eq(
        "SIGUSR1: mask inside",
        H1_MASK.load(Ordering::SeqCst),
        base | bit(libc::SIGUSR1) | bit(libc::SIGUSR2) | bit(libc::SIGHUP),
    );
    // SIGUSR2: h2 on the alternate stack, not blocking itself, then reset.
    // SAFETY: raise on ourselves.
    unsafe { libc::raise(libc::SIGUSR2) };
    c.eq("SIGUSR2: h2 calls", H2_CALLS.load(Ordering::SeqCst), 1);
    let sp = H2_SP.load(Ordering::SeqCst);
    c.check(
        (alt as usize..alt as usize + ALT_SIZE).contains(&sp),
        || format!("SIGUSR2 handler ran at {sp:#x}, not on the alternate stack"),
    );
    c.eq(
        "SIGUSR2: mask inside",
        H2_MASK.load(Ordering::SeqCst),
        base | bit(libc::SIGQUIT),
    );
    c.eq(
        "SIGUSR2: reset to SIG_DFL",
        query(libc::SIGUSR2).handler,
        libc::SIG_DFL,
    );
    // SIGHUP is ignored: we live on.
    // SAFETY: raise on ourselves.
    unsafe { libc::raise(libc::SIGHUP) };
    // SIGPIPE: h1 with (almost) everything blocked inside.
    // SAFETY: raise on ourselves.
    unsafe { libc::raise(libc::SIGPIPE) };
    c.eq("SIGPIPE: h1 calls", H1_CALLS.load(Ordering::SeqCst), 2);
    c.eq(
        "SIGPIPE: h1 got",
        H1_LAST.load(Ordering::SeqCst),
        libc::SIGPIPE as usize,
    );
    let want = (1..=31)
        .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP && s != libc::SIGTERM)
        .fold(base, |m, s| m | bit(s));
    c.eq("SIGPIPE: mask inside", H1_MASK.load(Ordering::SeqCst), want);
    // SAFETY: raise on ourselves.
    unsafe { libc::raise(rtmin(5)) };
    c.eq("SIGRTMIN+5: h1 calls", H1_CALLS.load(Ordering::SeqCst), 3);
    c.eq(
        "SIGRTMIN+5: mask inside",
        H1_MASK.load(Ordering::SeqCst),
        base | bit(rtmin(5)) | bit(rtmin(6)),
    );
    // SIGTRAP from the CPU: h1, with SIGUSR1 and SIGRTMIN+1 blocked inside.
    // SAFETY: a breakpoint trap; the handler returns past the int3.
    unsafe { std::arch::asm!("int3") };
    c.eq("SIGTRAP: h1 calls", H1_CALLS.load(Ordering::SeqCst), 4);
    c.eq(
        "SIGTRAP: h1 got",
        H1_LAST.load(Ordering::SeqCst),
        libc::SIGTRAP as usize,
    );
    c.eq(
        "SIGTRAP: si_code",
        H1_CODE.load(Ordering::SeqCst) as i32,
        libc::SI_KERNEL,
    );
    c.eq(
        "SIGTRAP: mask inside",
        H1_MASK.load(Ordering::SeqCst),
        base | bit(libc::SIGTRAP) | bit(libc::SIGUSR1) | bit(rtmin(1)),
    );
    c.finish()
}

fn altstack() -> (usize, i32, usize) {
    // SAFETY: out-buffer query.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut old);
        (old.ss_sp as usize, old.ss_flags, old.ss_size)
    }
}
