//! rseq00: a thread dumped inside an rseq critical section resumes as the
//! kernel would have it resume: at the section's abort handler, never
//! inside the section with its `rseq->rseq_cs` gone. A second thread spins
//! in one inline-asm critical section (glibc's rseq registration, the
//! descriptor built in place): each lap inside the section checks that
//! `rseq->rseq_cs` still points at its descriptor (the kernel only clears
//! it once the thread is outside, or moving it to the abort handler). A
//! restore that puts the thread back inside the section without it armed
//! shows as a violation. `--sabotage check` clears the pointer from inside
//! the section, which is that bug.

use std::sync::atomic::{AtomicU32, Ordering};

use zdtm::Checks;

unsafe extern "C" {
    /// glibc's rseq area: at the thread pointer plus this offset.
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

/// struct rseq_cs.
#[repr(C, align(32))]
#[derive(Default)]
struct RseqCs {
    version: u32,
    flags: u32,
    start_ip: u64,
    post_commit_offset: u64,
    abort_ip: u64,
}

/// What the spinning thread counts and is told.
#[repr(C)]
#[derive(Default)]
struct State {
    laps: u64,
    aborts: u64,
    violations: u64,
    stop: u32,
    sabotage: u32,
}

const LAPS: usize = std::mem::offset_of!(State, laps);
const ABORTS: usize = std::mem::offset_of!(State, aborts);
const VIOLATIONS: usize = std::mem::offset_of!(State, violations);
const STOP: usize = std::mem::offset_of!(State, stop);
const SABOTAGE: usize = std::mem::offset_of!(State, sabotage);

/// The calling thread's struct rseq (glibc's registration), if any.
fn my_rseq() -> Option<*mut u64> {
    // SAFETY: glibc exports both; they are constant after startup.
    let (off, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return None;
    }
    let tp: usize;
    // SAFETY: fs:0 holds the thread pointer (x86_64 TLS ABI).
    unsafe { std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly)) };
    let rseq = (tp as isize + off) as *mut u64;
    // cpu_id (second u32) is negative when the registration failed.
    // SAFETY: the thread's own rseq area, live while it runs.
    let cpu_id = unsafe { (rseq as *const i32).add(1).read_volatile() };
    (cpu_id >= 0).then_some(rseq)
}

/// Spin in the critical section until `st.stop`.
fn spin(rseq: *mut u64, cs: &mut RseqCs, st: *mut State) {
    // SAFETY: `rseq` is this thread's registered struct rseq, `cs` and
    // `st` live for the whole block; only rax and rcx are touched. The
    // 4 bytes before the abort handler are glibc's RSEQ_SIG.
    unsafe {
        std::arch::asm!(
            "lea rax, [rip + 21f]",
            "mov qword ptr [{cs} + 8], rax",
            "lea rcx, [rip + 22f]",
            "sub rcx, rax",
            "mov qword ptr [{cs} + 16], rcx",
            "lea rax, [rip + 24f]",
            "mov qword ptr [{cs} + 24], rax",
            "25:",
            "mov qword ptr [{rseq} + 8], {cs}",
            "21:",
            "inc qword ptr [{st} + {laps}]",
            "cmp dword ptr [{st} + {sab}], 0",
            "je 23f",
            "mov dword ptr [{st} + {sab}], 0",
            "mov qword ptr [{rseq} + 8], 0",
            "23:",
            "cmp qword ptr [{rseq} + 8], {cs}",
            "jne 26f",
            "pause",
            "cmp dword ptr [{st} + {stop}], 0",
            "je 21b",
            "22:",
            "mov qword ptr [{rseq} + 8], 0",
            "jmp 27f",
            "26:",
            "inc qword ptr [{st} + {viol}]",
            "jmp 25b",
            ".long 0x53053053",
            "24:",
            "inc qword ptr [{st} + {aborts}]",
            "jmp 25b",
            "27:",
            rseq = in(reg) rseq,
            cs = in(reg) cs as *mut RseqCs,
            st = in(reg) st,
            laps = const LAPS,
            aborts = const ABORTS,
            viol = const VIOLATIONS,
            stop = const STOP,
            sab = const SABOTAGE,
            out("rax") _,
            out("rcx") _,
        );
    }
}

struct Shared(*mut State);
// SAFETY: the State is leaked and only touched through volatile/atomic
// accesses from the two threads.
unsafe impl Send for Shared {}

fn main() {
    zdtm::test_init();
    if my_rseq().is_none() {
        zdtm::skip("glibc did not register rseq for this program (no rseq support, or disabled by its tunable)");
    }
    let st: *mut State = Box::leak(Box::default());
    let ready = std::sync::Arc::new(AtomicU32::new(0));
    let r2 = ready.clone();
    let shared = Shared(st);
    let h = std::thread::spawn(move || {
        let shared = shared;
        let Some(rseq) = my_rseq() else { return false };
        let mut cs = RseqCs::default();
        r2.store(1, Ordering::SeqCst);
        spin(rseq, &mut cs, shared.0);
        true
    });
    let laps = move || {
        // SAFETY: st is leaked and valid; the other thread writes it.
        unsafe { std::ptr::addr_of!((*st).laps).read_volatile() }
    };
    while ready.load(Ordering::SeqCst) == 0 || laps() == 0 {
        std::thread::yield_now();
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let seen = laps();
    if zdtm::sabotaged() {
        // SAFETY: `st` is leaked, so valid for the whole run; a volatile
        // write of one field the other thread polls.
        unsafe { std::ptr::addr_of_mut!((*st).sabotage).write_volatile(1) };
        // SAFETY: `st` is leaked, so valid for the whole run; a volatile
        // read of a field the other thread clears.
        while unsafe { std::ptr::addr_of!((*st).sabotage).read_volatile() } != 0 {
            std::thread::yield_now();
        }
    }
    // Let it run a while after the restore, then stop it.
    while laps() < seen + 1000 {
        std::thread::yield_now();
    }
    // SAFETY: `st` is leaked, so valid for the whole run; a volatile
    // write of one field the other thread only reads.
    unsafe { std::ptr::addr_of_mut!((*st).stop).write_volatile(1) };
    let spun = h.join().unwrap_or(false);
    let mut c = Checks::new();
    c.check(spun, || "the spinning thread lost its rseq registration".into());
    // SAFETY: the thread has ended.
    let s = unsafe { &*st };
    c.eq("laps inside the critical section with rseq->rseq_cs gone", s.violations, 0);
    zdtm::test_msg!("laps {}, aborts {}", s.laps, s.aborts);
    c.finish()
}
