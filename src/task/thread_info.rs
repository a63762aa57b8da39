//! x86_64 registers as CRIU's thread_info_x86 record: general registers,
//! the FXSAVE area, the XSAVE components this CPU has (YMM, MPX, AVX-512
//! opmask/ZMM, PKRU) and the GDT TLS entries.

#![cfg(target_arch = "x86_64")]

use anyhow::{bail, Result};

use crate::images::pb::{
    ThreadInfoX86, UserDescT, UserX86CetEntry, UserX86FpregsEntry, UserX86RegsEntry, UserX86RegsMode, UserX86XsaveEntry,
};
use crate::sys::x86::UserDesc;

/// (offset, size) of XSAVE component `i` in the standard (non-compacted)
/// layout, from CPUID leaf 0xD.
fn xsave_component(i: u32) -> (u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(0xd, i);
    (r.ebx, r.eax)
}

/// XSAVE feature bits.
mod xfeature {
    pub const YMM: u32 = 2;
    pub const BNDREGS: u32 = 3;
    pub const BNDCSR: u32 = 4;
    pub const OPMASK: u32 = 5;
    pub const ZMM_HI256: u32 = 6;
    pub const HI16_ZMM: u32 = 7;
    pub const PKRU: u32 = 9;
}

/// Where the kernel puts the enabled-features mask (XCR0) in the FXSAVE
/// software-reserved bytes of a ptrace NT_X86_XSTATE buffer (the first 8
/// bytes; signal frames use that area differently).
const SW_XFEATURES_OFFSET: usize = 464;

/// The CPU can do CET shadow stacks (CPUID.(EAX=7,ECX=0):ECX[7]). CRIU 4.2
/// then records a `cet` entry for every thread: the shadow-stack features
/// enabled in it and its shadow-stack pointer (0 and 0 without one).
fn cpu_has_shstk() -> bool {
    core::arch::x86_64::__cpuid_count(7, 0).ecx & (1 << 7) != 0
}

/// `ARCH_SHSTK_SHSTK`: the shadow-stack-enabled bit of a `cet` entry.
const ARCH_SHSTK_SHSTK: u64 = 1;

/// Refuse, by name, registers we would not put back: a thread that ran on
/// a CET shadow stack (its `cet` entry says so).
pub fn check_restorable(ti: &ThreadInfoX86, tid: u32) -> Result<()> {
    if let Some(c) = ti.fpregs.xsave.as_ref().and_then(|x| x.cet.as_ref()).filter(|c| c.cet & ARCH_SHSTK_SHSTK != 0) {
        bail!("core-{tid}.img: thread {tid} uses a CET shadow stack (ssp {:#x}); restoring shadow stacks is not supported", c.ssp);
    }
    Ok(())
}

/// General registers as the image stores them.
pub fn gpregs(r: &crate::arch::Regs) -> UserX86RegsEntry {
    UserX86RegsEntry {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        bp: r.rbp,
        bx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        ax: r.rax,
        cx: r.rcx,
        dx: r.rdx,
        si: r.rsi,
        di: r.rdi,
        orig_ax: r.orig_rax,
        ip: r.rip,
        cs: r.cs,
        flags: r.eflags,
        sp: r.rsp,
        ss: r.ss,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
        mode: Some(UserX86RegsMode::Native as i32),
    }
}

fn u16_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 2).map(|s| u32::from(u16::from_le_bytes([s[0], s[1]]))).unwrap_or(0)
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]))).unwrap_or(0)
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]))).unwrap_or(0)
}
fn words32(b: &[u8], o: usize, n: usize) -> Vec<u32> {
    (0..n).map(|i| u32_at(b, o + 4 * i)).collect()
}
fn words64(b: &[u8], o: usize, n: usize) -> Vec<u64> {
    (0..n).map(|i| u64_at(b, o + 8 * i)).collect()
}

/// The FPU state from a PTRACE_GETREGSET(NT_X86_XSTATE) buffer.
pub fn fpregs(xs: &[u8]) -> UserX86FpregsEntry {
    let features = u64_at(xs, SW_XFEATURES_OFFSET);
    let has = |bit: u32| features & (1u64 << bit) != 0;
    let comp = |bit: u32| xsave_component(bit);
    let mut x = UserX86XsaveEntry { xstate_bv: u64_at(xs, 512), ..Default::default() };
    if xs.len() > 576 {
        if has(xfeature::YMM) {
            x.ymmh_space = words32(xs, comp(xfeature::YMM).0 as usize, 64);
        }
        if has(xfeature::BNDREGS) {
            x.bndreg_state = words64(xs, comp(xfeature::BNDREGS).0 as usize, 8);
        }
        if has(xfeature::BNDCSR) {
            x.bndcsr_state = words64(xs, comp(xfeature::BNDCSR).0 as usize, 8);
        }
        if has(xfeature::OPMASK) {
            x.opmask_reg = words64(xs, comp(xfeature::OPMASK).0 as usize, 8);
        }
        if has(xfeature::ZMM_HI256) {
            x.zmm_upper = words64(xs, comp(xfeature::ZMM_HI256).0 as usize, 64);
        }
        if has(xfeature::HI16_ZMM) {
            x.hi16_zmm = words64(xs, comp(xfeature::HI16_ZMM).0 as usize, 128);
        }
        if has(xfeature::PKRU) {
            x.pkru = words32(xs, comp(xfeature::PKRU).0 as usize, 2);
        }
        // Threads on a shadow stack are not dumped (no parasite runs there),
        // so what is recorded is "no shadow stack".
        if cpu_has_shstk() {
            x.cet = Some(UserX86CetEntry { cet: 0, ssp: 0 });
        }
    }
    UserX86FpregsEntry {
        cwd: u16_at(xs, 0),
        swd: u16_at(xs, 2),
        twd: u16_at(xs, 4) & 0xff,
        fop: u16_at(xs, 6),
        rip: u64_at(xs, 8),
        rdp: u64_at(xs, 16),
        mxcsr: u32_at(xs, 24),
        mxcsr_mask: u32_at(xs, 28),
        st_space: words32(xs, 32, 32),
        xmm_space: words32(xs, 160, 64),
        padding: Vec::new(),
        xsave: (xs.len() > 576).then_some(x),
    }
}

/// A GDT TLS entry as the image stores it.
pub fn tls_entry(d: &UserDesc) -> UserDescT {
    let bit = |n: u32| d.flags & (1 << n) != 0;
    UserDescT {
        entry_number: d.entry_number,
        base_addr: d.base_addr,
        limit: d.limit,
        seg_32bit: bit(0),
        contents_h: bit(2),
        contents_l: bit(1),
        read_exec_only: bit(3),
        limit_in_pages: bit(4),
        seg_not_present: bit(5),
        usable: bit(6),
    }
}

/// The GDT TLS entries a restore sets (`restorer_proto::Args::tls`), as
/// struct user_desc in two words each: the present ones, and the empty
/// ones that are present in `inherited` (a thread is cloned with the
/// leader's slots; the kernel clears a slot given the empty descriptor).
/// A task without GDT TLS entries makes no call (set_thread_area needs
/// the 32-bit syscall entry, which a kernel may lack).
pub fn tls_words(tls: &[UserDescT], inherited: &[UserDescT]) -> [u64; 6] {
    let present = |d: &UserDescT| d.entry_number != 0 && !d.seg_not_present;
    let needed = |d: &&UserDescT| present(d) || inherited.iter().any(|i| i.entry_number == d.entry_number && present(i));
    let mut w = [0u64; 6];
    for (i, d) in tls.iter().filter(needed).take(3).enumerate() {
        let flags = [d.seg_32bit, d.contents_l, d.contents_h, d.read_exec_only, d.limit_in_pages, d.seg_not_present, d.usable]
            .iter()
            .enumerate()
            .fold(0u32, |f, (n, b)| f | (u32::from(*b) << n));
        w[2 * i] = u64::from(d.entry_number) | u64::from(d.base_addr) << 32;
        w[2 * i + 1] = u64::from(d.limit) | u64::from(flags) << 32;
    }
    w
}

/// The whole thread_info record.
pub fn thread_info(regs: &crate::arch::Regs, xstate: &[u8], clear_tid_addr: u64, tls: &[UserDesc]) -> ThreadInfoX86 {
    ThreadInfoX86 {
        clear_tid_addr,
        gpregs: gpregs(regs),
        fpregs: fpregs(xstate),
        tls: tls.iter().map(tls_entry).collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_tls_slot_reads_like_criu() {
        // An unused slot: read_exec_only and seg_not_present set.
        let d = crate::sys::x86::UserDesc { entry_number: 12, base_addr: 0, limit: 0, flags: (1 << 3) | (1 << 5) };
        let t = super::tls_entry(&d);
        assert!(t.read_exec_only && t.seg_not_present && !t.usable && !t.seg_32bit);
    }

    #[test]
    fn tls_words_carry_present_and_inherited_slots() {
        // A 32-bit data segment in slot 13 (seg_32bit, usable, limit in pages).
        let d = crate::sys::x86::UserDesc { entry_number: 13, base_addr: 0x1234_5000, limit: 0xfffff, flags: 1 | (1 << 4) | (1 << 6) };
        let empty = |n| crate::sys::x86::UserDesc { entry_number: n, base_addr: 0, limit: 0, flags: (1 << 3) | (1 << 5) };
        let img: Vec<_> = [empty(12), d, empty(14)].iter().map(super::tls_entry).collect();
        let w = super::tls_words(&img, &[]);
        assert_eq!(w[0], 13 | 0x1234_5000u64 << 32);
        assert_eq!(w[1], 0xfffff | u64::from(d.flags) << 32);
        assert_eq!(w[2..], [0; 4]);
        // A thread whose slot 13 is empty but the leader's is not: cleared.
        let other: Vec<_> = [empty(12), empty(13), empty(14)].iter().map(super::tls_entry).collect();
        let w = super::tls_words(&other, &img);
        assert_eq!((w[0], w[1]), (13, 0x28u64 << 32));
        assert_eq!(w[2..], [0; 4]);
        // No TLS entries anywhere: no call.
        assert_eq!(super::tls_words(&other, &other), [0; 6]);
        assert_eq!(super::tls_words(&[], &[]), [0; 6]);
    }

    #[test]
    fn fxsave_fields() {
        let mut xs = vec![0u8; 4096];
        xs[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
        xs[24..28].copy_from_slice(&0x1fa0u32.to_le_bytes());
        xs[512..520].copy_from_slice(&163u64.to_le_bytes());
        xs[super::SW_XFEATURES_OFFSET..super::SW_XFEATURES_OFFSET + 8].copy_from_slice(&0xe7u64.to_le_bytes());
        let f = super::fpregs(&xs);
        assert_eq!((f.cwd, f.mxcsr), (895, 8096));
        let x = f.xsave.unwrap();
        assert_eq!(x.xstate_bv, 163);
        assert_eq!((x.ymmh_space.len(), x.opmask_reg.len(), x.zmm_upper.len(), x.hi16_zmm.len()), (64, 8, 64, 128));
        assert!(x.bndreg_state.is_empty() && x.pkru.is_empty());
    }
}

/// The general registers of an image.
pub fn regs_from_image(g: &UserX86RegsEntry) -> crate::arch::Regs {
    crate::arch::Regs {
        r15: g.r15,
        r14: g.r14,
        r13: g.r13,
        r12: g.r12,
        rbp: g.bp,
        rbx: g.bx,
        r11: g.r11,
        r10: g.r10,
        r9: g.r9,
        r8: g.r8,
        rax: g.ax,
        rcx: g.cx,
        rdx: g.dx,
        rsi: g.si,
        rdi: g.di,
        orig_rax: g.orig_ax,
        rip: g.ip,
        cs: g.cs,
        eflags: g.flags,
        rsp: g.sp,
        ss: g.ss,
        fs_base: g.fs_base,
        gs_base: g.gs_base,
        ds: g.ds,
        es: g.es,
        fs: g.fs,
        gs: g.gs,
    }
}

fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// The XSAVE area (ptrace's NT_X86_XSTATE layout) of an image's FPU state.
/// Components the image lacks, or this CPU lacks, stay in their init state.
pub fn fpu_from_image(f: &UserX86FpregsEntry) -> crate::arch::FpuState {
    let size = (xsave_component(0).0 as usize).max(576);
    let mut b = vec![0u8; size];
    b[0..2].copy_from_slice(&(f.cwd as u16).to_le_bytes());
    b[2..4].copy_from_slice(&(f.swd as u16).to_le_bytes());
    b[4] = f.twd as u8;
    b[6..8].copy_from_slice(&(f.fop as u16).to_le_bytes());
    put64(&mut b, 8, f.rip);
    put64(&mut b, 16, f.rdp);
    put32(&mut b, 24, f.mxcsr);
    put32(&mut b, 28, f.mxcsr_mask);
    for (i, w) in f.st_space.iter().take(32).enumerate() {
        put32(&mut b, 32 + 4 * i, *w);
    }
    for (i, w) in f.xmm_space.iter().take(64).enumerate() {
        put32(&mut b, 160 + 4 * i, *w);
    }
    let mut features: u64 = 0b11;
    let mut bv = 0b11u64;
    if let Some(x) = &f.xsave {
        bv = x.xstate_bv;
        let mut comp32 = |bit: u32, words: &[u32]| {
            let (off, len) = xsave_component(bit);
            if !words.is_empty() && off != 0 && (off + len) as usize <= b.len() {
                for (i, w) in words.iter().take(len as usize / 4).enumerate() {
                    put32(&mut b, off as usize + 4 * i, *w);
                }
                features |= 1 << bit;
            }
        };
        comp32(xfeature::YMM, &x.ymmh_space);
        comp32(xfeature::PKRU, &x.pkru);
        let mut comp64 = |bit: u32, words: &[u64]| {
            let (off, len) = xsave_component(bit);
            if !words.is_empty() && off != 0 && (off + len) as usize <= b.len() {
                for (i, w) in words.iter().take(len as usize / 8).enumerate() {
                    put64(&mut b, off as usize + 8 * i, *w);
                }
                features |= 1 << bit;
            }
        };
        comp64(xfeature::BNDREGS, &x.bndreg_state);
        comp64(xfeature::BNDCSR, &x.bndcsr_state);
        comp64(xfeature::OPMASK, &x.opmask_reg);
        comp64(xfeature::ZMM_HI256, &x.zmm_upper);
        comp64(xfeature::HI16_ZMM, &x.hi16_zmm);
    }
    // The enabled-features word, as the kernel fills it in a ptrace buffer.
    put64(&mut b, SW_XFEATURES_OFFSET, features);
    put64(&mut b, 512, bv & features);
    crate::arch::FpuState(b)
}

#[cfg(test)]
mod roundtrip {
    #[test]
    fn fpu_survives_image_and_back() {
        let dir = crate::images::ImageDir::open(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/criu-4.2/python-timer"
        )))
        .unwrap();
        let core: crate::images::pb::CoreEntry =
            crate::images::ImageReader::open_kind(&dir, "core-30151.img", crate::images::kind::kinds::core()).unwrap().expect().unwrap();
        let ti = core.thread_info.unwrap();
        let fpu = super::fpu_from_image(&ti.fpregs);
        let mut back = super::fpregs(&fpu.0);
        // The cet entry depends on this CPU (written, zeroed, where it has
        // shadow stacks, as CRIU does); the fixture's CPU had none.
        if let Some(x) = back.xsave.as_mut().filter(|_| ti.fpregs.xsave.as_ref().is_some_and(|x| x.cet.is_none())) {
            assert_eq!(x.cet.take().map(|c| (c.cet, c.ssp)).unwrap_or_default(), (0, 0));
        }
        assert_eq!(back, ti.fpregs);
        let regs = super::regs_from_image(&ti.gpregs);
        assert_eq!(super::gpregs(&regs), ti.gpregs);
    }
}
