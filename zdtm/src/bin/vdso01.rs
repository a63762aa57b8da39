//! vdso01: time through the vDSO is sane after: libc's clock_gettime and
//! gettimeofday (vDSO calls) agree with the raw syscalls, CLOCK_MONOTONIC
//! never went backwards across the wait and stays monotonic over many
//! calls, and the [vdso] mapping (AT_SYSINFO_EHDR) is there.

use zdtm::Checks;

fn ns(t: libc::timespec) -> i128 {
    t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
}

fn vdso_clock(clk: libc::clockid_t) -> i128 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer; glibc calls the vDSO.
    unsafe { libc::clock_gettime(clk, &mut t) };
    ns(t)
}

fn sys_clock(clk: libc::clockid_t) -> i128 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the raw syscall with a valid out-pointer.
    unsafe { libc::syscall(libc::SYS_clock_gettime, clk, &mut t) };
    ns(t)
}

fn vdso_range() -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let l = maps.lines().find(|l| l.ends_with("[vdso]"))?;
    let (a, b) = l.split_whitespace().next()?.split_once('-')?;
    Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?))
}

fn main() {
    zdtm::test_init();
    // SAFETY: plain libc call.
    let ehdr = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    let Some(vdso0) = vdso_range() else { zdtm::fail("no [vdso] mapping") };
    if ehdr != vdso0.0 {
        zdtm::fail(&format!("AT_SYSINFO_EHDR {ehdr:#x} is not the [vdso] start {:#x}", vdso0.0));
    }
    let mono0 = vdso_clock(libc::CLOCK_MONOTONIC);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // Take the vDSO away: the next clock_gettime jumps into nothing.
        // SAFETY: deliberately breaking ourselves.
        unsafe { libc::munmap(vdso0.0 as *mut libc::c_void, vdso0.1 - vdso0.0) };
    }
    let mut c = Checks::new();
    let tol = 200_000_000; // 200 ms
    for (name, clk) in [("MONOTONIC", libc::CLOCK_MONOTONIC), ("REALTIME", libc::CLOCK_REALTIME), ("BOOTTIME", libc::CLOCK_BOOTTIME)] {
        let (v, s) = (vdso_clock(clk), sys_clock(clk));
        c.check((v - s).abs() < tol, || format!("CLOCK_{name}: vDSO {v} vs syscall {s} differ by {} ns", v - s));
    }
    let mono1 = vdso_clock(libc::CLOCK_MONOTONIC);
    c.check(mono1 >= mono0, || format!("CLOCK_MONOTONIC went back across the wait: {mono0} -> {mono1}"));
    let mut last = mono1;
    let mut back = 0;
    for _ in 0..100_000 {
        let t = vdso_clock(libc::CLOCK_MONOTONIC);
        if t < last {
            back += 1;
        }
        last = t;
    }
    c.eq("CLOCK_MONOTONIC steps back in 100000 calls", back, 0);
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    // SAFETY: valid out-pointer (glibc: vDSO).
    unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) };
    let real = sys_clock(libc::CLOCK_REALTIME);
    let tod = tv.tv_sec as i128 * 1_000_000_000 + tv.tv_usec as i128 * 1000;
    c.check((real - tod).abs() < tol, || format!("gettimeofday {tod} vs CLOCK_REALTIME {real}"));
    // SAFETY: plain libc calls.
    let (t, ehdr1) = unsafe { (libc::time(std::ptr::null_mut()) as i128, libc::getauxval(libc::AT_SYSINFO_EHDR) as usize) };
    c.check((t - real / 1_000_000_000).abs() <= 1, || format!("time() {t} vs CLOCK_REALTIME {real}"));
    c.eq("[vdso]", vdso_range(), Some(vdso0));
    c.eq("AT_SYSINFO_EHDR", ehdr1, ehdr);
    c.finish()
}
