//! Target program for tests/vdso.rs (compiled by the test with rustc; not a
//! cargo target). `vdso_target DIR`: forever, every 10 ms, calls libc's
//! clock_gettime (five clocks), gettimeofday, time and getcpu — glibc
//! sends each to the vDSO — and checks each against the raw system call
//! (getcpu after pinning itself to one allowed CPU, a different one each
//! round, when the pin still holds after the calls). It rewrites DIR/status with `ok N bad M` and the last mismatch;
//! DIR/ready appears after the first good round.

use std::arch::asm;
use std::path::Path;
use std::time::Duration;

const NR_GETTIMEOFDAY: u64 = 96;
const NR_TIME: u64 = 201;
const NR_SCHED_SETAFFINITY: u64 = 203;
const NR_SCHED_GETAFFINITY: u64 = 204;
const NR_CLOCK_GETTIME: u64 = 228;
const NR_GETCPU: u64 = 309;

unsafe extern "C" {
    fn clock_gettime(clk: i32, ts: *mut [i64; 2]) -> i32;
    fn gettimeofday(tv: *mut [i64; 2], tz: *mut u8) -> i32;
    fn time(t: *mut i64) -> i64;
    fn getcpu(cpu: *mut u32, node: *mut u32) -> i32;
}

fn sys(n: u64, a: u64, b: u64, c: u64) -> i64 {
    let r: i64;
    // SAFETY: plain syscalls with integer or valid pointer arguments.
    unsafe {
        asm!("syscall", inlateout("rax") n as i64 => r, in("rdi") a, in("rsi") b, in("rdx") c,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

fn ns(t: [i64; 2]) -> i128 {
    t[0] as i128 * 1_000_000_000 + t[1] as i128
}

/// The CPUs we may run on.
fn allowed_cpus() -> Vec<u32> {
    let mut mask = [0u64; 16];
    let n = sys(NR_SCHED_GETAFFINITY, 0, std::mem::size_of_val(&mask) as u64, mask.as_mut_ptr() as u64);
    if n <= 0 {
        return Vec::new();
    }
    (0..(n as u32 * 8)).filter(|c| mask[(*c / 64) as usize] & (1 << (c % 64)) != 0).collect()
}

fn pin(cpu: u32) -> bool {
    let mut mask = [0u64; 16];
    mask[(cpu / 64) as usize] |= 1 << (cpu % 64);
    sys(NR_SCHED_SETAFFINITY, 0, std::mem::size_of_val(&mask) as u64, mask.as_ptr() as u64) == 0
}

/// One round of checks: the mismatches found.
fn round(cpus: &[u32], i: usize) -> Vec<String> {
    let mut bad = Vec::new();
    const TOL: i128 = 50_000_000;
    // REALTIME, MONOTONIC, REALTIME_COARSE, MONOTONIC_COARSE, BOOTTIME.
    for clk in [0, 1, 5, 6, 7] {
        let (mut v, mut s) = ([0i64; 2], [0i64; 2]);
        // SAFETY: valid out-pointer.
        let r = unsafe { clock_gettime(clk, &mut v) };
        let rs = sys(NR_CLOCK_GETTIME, clk as u64, &mut s as *mut _ as u64, 0);
        if r != 0 || rs != 0 || (ns(v) - ns(s)).abs() > TOL {
            bad.push(format!("clock_gettime({clk}): libc {r} {v:?} vs syscall {rs} {s:?}"));
        }
    }
    let (mut v, mut s) = ([0i64; 2], [0i64; 2]);
    // SAFETY: valid out-pointer, no timezone.
    let r = unsafe { gettimeofday(&mut v, std::ptr::null_mut()) };
    let rs = sys(NR_GETTIMEOFDAY, &mut s as *mut _ as u64, 0, 0);
    let us = |t: [i64; 2]| t[0] as i128 * 1_000_000 + t[1] as i128;
    if r != 0 || rs != 0 || (us(v) - us(s)).abs() > TOL / 1000 {
        bad.push(format!("gettimeofday: libc {r} {v:?} vs syscall {rs} {s:?}"));
    }
    // SAFETY: a null out-pointer is allowed.
    let t = unsafe { time(std::ptr::null_mut()) };
    let ts = sys(NR_TIME, 0, 0, 0);
    if (t - ts).abs() > 1 {
        bad.push(format!("time: libc {t} vs syscall {ts}"));
    }
    if !cpus.is_empty() {
        let want = cpus[i % cpus.len()];
        if pin(want) {
            let (mut c, mut node, mut sc) = (u32::MAX, u32::MAX, u32::MAX);
            // SAFETY: valid out-pointers.
            let r = unsafe { getcpu(&mut c, &mut node) };
            let rs = sys(NR_GETCPU, &mut sc as *mut u32 as u64, 0, 0);
            // A restore between the pin and here gives us criu's affinity
            // (it is not part of the image): no answer to check then.
            let still_pinned = allowed_cpus() == [want];
            if still_pinned && (r != 0 || rs != 0 || c != want || sc != want) {
                bad.push(format!("getcpu: pinned to {want}, libc {r} cpu {c}, syscall {rs} cpu {sc}"));
            }
        }
    }
    bad
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: vdso_target DIR");
    let dir = Path::new(&dir);
    let cpus = allowed_cpus();
    assert!(!cpus.is_empty(), "sched_getaffinity failed");
    let (mut ok, mut bad, mut last) = (0u64, 0u64, String::new());
    for i in 0.. {
        let b = round(&cpus, i);
        if b.is_empty() {
            ok += 1;
        } else {
            bad += 1;
            last = b.join("; ");
        }
        let _ = std::fs::write(dir.join("status.tmp"), format!("ok {ok} bad {bad}\n{last}\n"));
        let _ = std::fs::rename(dir.join("status.tmp"), dir.join("status"));
        if ok == 1 && bad == 0 {
            let _ = std::fs::write(dir.join("ready"), "");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
