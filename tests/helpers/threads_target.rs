//! Target program for tests/threads.rs (compiled by the test with rustc;
//! not a cargo target). Modes:
//! - `work DIR N`: N worker threads besides the main one. Worker i names
//!   itself `worker-i`, blocks its own signals (SIGRTMIN+6+i, and SIGUSR1
//!   when i is odd; the main thread blocks SIGUSR2, which they inherit),
//!   worker 0 has a sigaltstack, worker 3 credentials of its own (its
//!   supplementary groups are [4242] and CAP_SYS_NICE is out of its
//!   effective set: raw syscalls change only the calling thread), writes
//!   the size of its sigaltstack to DIR/sas-i and its tid to DIR/tid-i, then
//!   forever: bumps a counter in thread-local storage and writes it to
//!   DIR/count-i, and sleeps 20 ms through a raw nanosleep with a marker
//!   of its own in xmm15 (and in r12-r15), checking after the syscall that
//!   it is still there (else it writes DIR/err-i and exits 3). DIR/ready
//!   appears once every worker is set up.
//! - `bomb DIR`: a spawner thread starts short-lived threads four at a
//!   time forever and writes how many so far to DIR/spawned; DIR/ready
//!   appears after the first hundred.

use std::arch::asm;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const NR_RT_SIGPROCMASK: u64 = 14;
const NR_SIGALTSTACK: u64 = 131;
const NR_PRCTL: u64 = 157;
const NR_GETTID: u64 = 186;
const NR_NANOSLEEP: u64 = 35;
const PR_SET_NAME: u64 = 15;
const NR_SETGROUPS: u64 = 116;
const NR_CAPGET: u64 = 125;
const NR_CAPSET: u64 = 126;
const CAP_SYS_NICE: u32 = 23;
const SIG_BLOCK: u64 = 0;

fn sys(n: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
    let r: i64;
    // SAFETY: plain syscalls with integer or valid pointer arguments.
    unsafe {
        asm!("syscall", inlateout("rax") n as i64 => r, in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

fn block(sigs: &[u32]) {
    let set: u64 = sigs.iter().fold(0, |m, s| m | 1 << (s - 1));
    sys(NR_RT_SIGPROCMASK, SIG_BLOCK, &set as *const u64 as u64, 0, 8);
}

/// Sleep 20 ms in a raw nanosleep with `marker` in xmm15 and r12-r15;
/// whether they all still hold it after.
fn marked_sleep(marker: u64) -> bool {
    let ts: [i64; 2] = [0, 20_000_000];
    let (x, a, b, c, d): (u64, u64, u64, u64, u64);
    // SAFETY: nanosleep on a valid timespec; every register touched is declared.
    unsafe {
        asm!(
            "movq xmm15, {m}",
            "mov r12, {m}",
            "mov r13, {m}",
            "mov r14, {m}",
            "mov r15, {m}",
            "syscall",
            "movq {x}, xmm15",
            m = in(reg) marker,
            x = lateout(reg) x,
            inlateout("rax") NR_NANOSLEEP => _,
            in("rdi") ts.as_ptr(),
            in("rsi") 0u64,
            lateout("rcx") _, lateout("r11") _,
            out("r12") a, out("r13") b, out("r14") c, out("r15") d,
            out("xmm15") _,
        );
    }
    [x, a, b, c, d].iter().all(|v| *v == marker)
}

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

fn worker(dir: PathBuf, i: u32) -> ! {
    let name = format!("worker-{i}\0");
    sys(NR_PRCTL, PR_SET_NAME, name.as_ptr() as u64, 0, 0);
    let mut sigs = vec![34 + 6 + i];
    if i % 2 == 1 {
        sigs.push(10);
    }
    block(&sigs);
    if i == 0 {
        let stack: &'static mut [u8] = Vec::leak(vec![0u8; 64 * 1024]);
        // stack_t: ss_sp, ss_flags (int, padded), ss_size.
        let ss: [u64; 3] = [stack.as_mut_ptr() as u64, 0, stack.len() as u64];
        sys(NR_SIGALTSTACK, &ss as *const [u64; 3] as u64, 0, 0, 0);
    }
    if i == 3 {
        let groups: [u32; 1] = [4242];
        assert_eq!(sys(NR_SETGROUPS, 1, groups.as_ptr() as u64, 0, 0), 0);
        // _LINUX_CAPABILITY_VERSION_3: a header and two {eff, prm, inh}.
        let hdr: [u32; 2] = [0x2008_0522, 0];
        let mut data = [0u32; 6];
        assert_eq!(sys(NR_CAPGET, hdr.as_ptr() as u64, data.as_mut_ptr() as u64, 0, 0), 0);
        data[0] &= !(1 << CAP_SYS_NICE);
        assert_eq!(sys(NR_CAPSET, hdr.as_ptr() as u64, data.as_ptr() as u64, 0, 0), 0);
    }
    // The sigaltstack as the kernel has it (Rust's runtime gives every
    // thread one sized from the CPU's xsave area, so it differs by machine).
    let mut old = [0u64; 3];
    sys(NR_SIGALTSTACK, 0, old.as_mut_ptr() as u64, 0, 0);
    std::fs::write(dir.join(format!("sas-{i}")), old[2].to_string()).unwrap();
    let tid = sys(NR_GETTID, 0, 0, 0, 0);
    std::fs::write(dir.join(format!("tid-{i}")), tid.to_string()).unwrap();
    let marker = 0x5eed_0000_0000_0000 | (u64::from(i) << 32) | tid as u64;
    loop {
        let n = COUNTER.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        std::fs::write(dir.join(format!("count-{i}")), n.to_string()).unwrap();
        if !marked_sleep(marker) {
            std::fs::write(dir.join(format!("err-{i}")), "registers changed").unwrap();
            std::process::exit(3);
        }
    }
}

fn wait_for(p: &Path) {
    while !p.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn work(dir: PathBuf, n: u32) {
    block(&[12]);
    for i in 0..n {
        let d = dir.clone();
        std::thread::spawn(move || worker(d, i));
        wait_for(&dir.join(format!("tid-{i}")));
    }
    std::fs::write(dir.join("ready"), "").unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

static SPAWNED: AtomicU64 = AtomicU64::new(0);

fn bomb(dir: PathBuf) {
    let d = dir.clone();
    std::thread::spawn(move || {
        loop {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    std::thread::spawn(|| {
                        std::thread::sleep(Duration::from_micros(200));
                        SPAWNED.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for h in hs {
                let _ = h.join();
            }
            let n = SPAWNED.load(Ordering::SeqCst);
            if n.is_multiple_of(100) {
                std::fs::write(d.join("spawned"), n.to_string()).unwrap();
                if n == 100 {
                    std::fs::write(d.join("ready"), "").unwrap();
                }
            }
        }
    });
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(&args[2]);
    match args[1].as_str() {
        "work" => work(dir, args[3].parse().unwrap()),
        "bomb" => bomb(dir),
        m => panic!("unknown mode {m}"),
    }
}
