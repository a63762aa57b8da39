//! vdso01: time through the vDSO is sane after. Before the dump we look up
//! __vdso_clock_gettime/__vdso_gettimeofday/__vdso_time in the vDSO's own
//! ELF symbol table; after, those saved addresses (the vDSO must still be
//! in its old place) and libc's wrappers must agree with the raw syscalls,
//! CLOCK_MONOTONIC must not have gone backwards across the wait and must
//! stay monotonic over many calls, and [vdso] / AT_SYSINFO_EHDR are where
//! they were.

use zdtm::Checks;

fn ns(t: libc::timespec) -> i128 {
    t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
}

fn vdso_clock(clk: libc::clockid_t) -> i128 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; glibc calls the vDSO.
    unsafe { libc::clock_gettime(clk, &mut t) };
    ns(t)
}

fn sys_clock(clk: libc::clockid_t) -> i128 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the raw syscall with a valid out-pointer.
    unsafe { libc::syscall(libc::SYS_clock_gettime, clk, &mut t) };
    ns(t)
}

fn vdso_range() -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let l = maps.lines().find(|l| l.ends_with("[vdso]"))?;
    let (a, b) = l.split_whitespace().next()?.split_once('-')?;
    Some((
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    ))
}

type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;
type Gettimeofday = unsafe extern "C" fn(*mut libc::timeval, *mut libc::c_void) -> libc::c_int;
type Time = unsafe extern "C" fn(*mut libc::time_t) -> libc::time_t;

fn rd<T: Copy>(base: usize, off: usize) -> T {
    // SAFETY: callers stay within the mapped vDSO image (checked by `within`).
    unsafe { std::ptr::read_unaligned((base + off) as *const T) }
}

/// Look `names` up in the dynamic symbol table of the ELF image mapped at
/// base..base+len (the vDSO). Returns their run-time addresses.
fn vdso_symbols(base: usize, len: usize, names: &[&str]) -> Vec<Option<usize>> {
    let within = |off: usize, n: usize| off.checked_add(n).is_some_and(|e| e <= len);
    if !within(0, 64) || rd::<[u8; 4]>(base, 0) != *b"\x7fELF" {
        zdtm::fail("the vDSO is not an ELF image");
    }
    let (phoff, phentsize, phnum) = (
        rd::<u64>(base, 0x20) as usize,
        rd::<u16>(base, 0x36) as usize,
        rd::<u16>(base, 0x38) as usize,
    );
    let (shoff, shentsize, shnum) = (
        rd::<u64>(base, 0x28) as usize,
        rd::<u16>(base, 0x3a) as usize,
        rd::<u16>(base, 0x3c) as usize,
    );
    let load_vaddr = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&o| within(o, 56))
        .find(|&o| rd::<u32>(base, o) == 1) // PT_LOAD
        .map(|o| rd::<u64>(base, o + 16) as usize)
        .unwrap_or_else(|| zdtm::fail("no PT_LOAD in the vDSO"));
    let mut out = vec![None; names.len()];
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        if !within(sh, 64) || rd::<u32>(base, sh + 4) != 11 {
            continue; // SHT_DYNSYM only
        }
        let (symoff, symsize, link) = (
            rd::<u64>(base, sh + 24) as usize,
            rd::<u64>(base, sh + 32) as usize,
            rd::<u32>(base, sh + 40) as usize,
        );
        let strsh = shoff + link * shentsize;
        if !within(strsh, 64) {
            continue;
        }
        let stroff = rd::<u64>(base, strsh + 24) as usize;
        for s in (symoff..symoff + symsize).step_by(24) {
            if !within(s, 24) {
                break;
            }
            let (name_off, value) = (rd::<u32>(base, s) as usize, rd::<u64>(base, s + 8) as usize);
            let mut name = Vec::new();
            let mut p = stroff + name_off;
            while within(p, 1) && rd::<u8>(base, p) != 0 && name.len() < 64 {
                name.push(rd::<u8>(base, p));
                p += 1;
            }
            if let Some(k) = names
                .iter()
                .position(|n| n.as_bytes() == name.as_slice())
                .filter(|_| value != 0)
            {
                out[k] = Some(base + value - load_vaddr);
            }
        }
    }
    out
}

fn main() {
    zdtm::test_init();
    // SAFETY: getauxval takes only integer arguments and touches no memory of ours.
    let ehdr = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    let Some(vdso0) = vdso_range() else {
        zdtm::fail("no [vdso] mapping")
    };
    if ehdr != vdso0.0 {
        zdtm::fail(&format!(
            "AT_SYSINFO_EHDR {ehdr:#x} is not the [vdso] start {:#x}",
            vdso0.0
        ));
    }
    let syms = vdso_symbols(
        vdso0.0,
        vdso0.1 - vdso0.0,
        &["__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time"],
    );
    let [Some(cg), Some(gtod), Some(tm)] = syms[..] else {
        zdtm::fail(&format!("vDSO symbols not found: {syms:x?}"))
    };
    // SAFETY: addresses of the vDSO's exported functions, with their C signatures.
    let (cg, gtod, tm) = unsafe {
        (
            std::mem::transmute::<usize, ClockGettime>(cg),
            std::mem::transmute::<usize, Gettimeofday>(gtod),
            std::mem::transmute::<usize, Time>(tm),
        )
    };
    let direct = |clk| {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the vDSO function with a valid out-pointer.
        unsafe { cg(clk, &mut t) };
        ns(t)
    };
    if (direct(libc::CLOCK_MONOTONIC) - sys_clock(libc::CLOCK_MONOTONIC)).abs() > 200_000_000 {
        zdtm::fail("__vdso_clock_gettime disagrees with the syscall before the dump");
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
    for (name, clk) in [
        ("MONOTONIC", libc::CLOCK_MONOTONIC),
        ("REALTIME", libc::CLOCK_REALTIME),
        ("BOOTTIME", libc::CLOCK_BOOTTIME),
    ] {
        let (d, v, s) = (direct(clk), vdso_clock(clk), sys_clock(clk));
        c.check((v - s).abs() < tol, || {
            format!(
                "CLOCK_{name}: libc {v} vs syscall {s} differ by {} ns",
                v - s
            )
        });
        c.check((d - s).abs() < tol, || {
            format!(
                "CLOCK_{name}: __vdso_clock_gettime {d} vs syscall {s} differ by {} ns",
                d - s
            )
        });
    }
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: the vDSO functions with valid arguments.
    let (r, t) = unsafe {
        (
            gtod(&mut tv, std::ptr::null_mut()),
            tm(std::ptr::null_mut()),
        )
    };
    let real = sys_clock(libc::CLOCK_REALTIME) / 1_000_000_000;
    c.check(r == 0 && (tv.tv_sec as i128 - real).abs() <= 1, || {
        format!("__vdso_gettimeofday: {} vs {real}", tv.tv_sec)
    });
    c.check((t as i128 - real).abs() <= 1, || {
        format!("__vdso_time: {t} vs {real}")
    });
    let mono1 = vdso_clock(libc::CLOCK_MONOTONIC);
    c.check(mono1 >= mono0, || {
        format!("CLOCK_MONOTONIC went back across the wait: {mono0} -> {mono1}")
    });
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
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: valid out-pointer (glibc: vDSO).
    unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) };
    let real = sys_clock(libc::CLOCK_REALTIME);
    let tod = tv.tv_sec as i128 * 1_000_000_000 + tv.tv_usec as i128 * 1000;
    c.check((real - tod).abs() < tol, || {
        format!("gettimeofday {tod} vs CLOCK_REALTIME {real}")
    });
    // SAFETY: plain libc calls.
    let (t, ehdr1) = unsafe {
        (
            libc::time(std::ptr::null_mut()) as i128,
            libc::getauxval(libc::AT_SYSINFO_EHDR) as usize,
        )
    };
    c.check((t - real / 1_000_000_000).abs() <= 1, || {
        format!("time() {t} vs CLOCK_REALTIME {real}")
    });
    c.eq("[vdso]", vdso_range(), Some(vdso0));
    c.eq("AT_SYSINFO_EHDR", ehdr1, ehdr);
    c.finish()
}
