//! This CPU as CRIU 4.2 describes it (compel's CPUID walk: vendor, family,
//! model, stepping, the 19 capability words, the XSAVE feature mask and
//! sizes), the comparisons `--cpu-cap` selects between an image's CPU and
//! this one (fpu, ins, cpu), and the XSAVE features a task's saved FPU
//! state needs against this CPU's XCR0, named.

use crate::opts::cpu_cap;

/// Capability words of the current cpuinfo format (capability_ver 2).
pub const NCAPINTS: usize = 19;
/// Capability words of capability_ver 1 images.
pub const NCAPINTS_V1: usize = 12;

/// Feature bit `bit` of capability word `word`.
const fn f(word: u32, bit: u32) -> u32 {
    word * 32 + bit
}

// Capability words (CRIU's cpuid_leafs order: part of the image format).
const W_1_EDX: usize = 0;
const W_8000_0001_EDX: usize = 1;
const W_LNX_1: usize = 3;
const W_1_ECX: usize = 4;
const W_8000_0001_ECX: usize = 6;
const W_7_0_EBX: usize = 9;
const W_D_1_EAX: usize = 10;
const W_7_0_ECX: usize = 11;
const W_F_1_EDX: usize = 12;
const W_8000_0008_EBX: usize = 13;
const W_6_EAX: usize = 14;
const W_8000_000A_EDX: usize = 15;
const W_F_0_EDX: usize = 16;
const W_8000_0007_EBX: usize = 17;
const W_7_0_EDX: usize = 18;

// The feature bits these checks look at.
const FPU: u32 = f(0, 0);
const FXSR: u32 = f(0, 24);
const XMM: u32 = f(0, 25);
const REP_GOOD: u32 = f(3, 16);
const NOPL: u32 = f(3, 20);
const CPUID: u32 = f(3, 25);
const XSAVE: u32 = f(4, 26);
const OSXSAVE: u32 = f(4, 27);
const AVX: u32 = f(4, 28);
const MPX: u32 = f(9, 14);
const AVX512F: u32 = f(9, 16);
const ERMS: u32 = f(9, 9);
const INTEL_PT: u32 = f(9, 25);
const XSAVES: u32 = f(10, 3);
const PKU: u32 = f(11, 3);
const HDC: u32 = f(14, 13);
const CQM_LLC: u32 = f(16, 1);

/// Per capability word, the bits that name instruction-set extensions:
/// what `--cpu-cap=ins` requires of the restoring CPU.
const INS_MASK: [u32; NCAPINTS] = {
    let mut m = [0u32; NCAPINTS];
    // fpu tsc cx8 sep cmov clflush mmx fxsr sse sse2
    m[W_1_EDX] = bits(&[0, 4, 8, 11, 15, 19, 23, 24, 25, 26]);
    // syscall mmxext rdtscp 3dnowext 3dnow
    m[W_8000_0001_EDX] = bits(&[11, 22, 27, 30, 31]);
    // rep_good nopl
    m[W_LNX_1] = bits(&[16, 20]);
    // sse3 pclmulqdq monitor ssse3 cx16 sse4.1 sse4.2 movbe popcnt aes xsave osxsave avx f16c rdrand
    m[W_1_ECX] = bits(&[0, 1, 3, 9, 13, 19, 20, 22, 23, 25, 26, 27, 28, 29, 30]);
    // abm sse4a misalignsse 3dnowprefetch xop fma4 tbm
    m[W_8000_0001_ECX] = bits(&[5, 6, 7, 8, 11, 16, 21]);
    // fsgsbase bmi1 hle avx2 bmi2 erms rtm mpx avx512f avx512dq rdseed adx
    // clflushopt avx512pf avx512er avx512cd sha avx512bw avx512vl
    m[W_7_0_EBX] = bits(&[0, 3, 4, 5, 8, 9, 11, 14, 16, 17, 18, 19, 23, 26, 27, 28, 29, 30, 31]);
    // xsaveopt xsavec xgetbv1
    m[W_D_1_EAX] = bits(&[0, 1, 2]);
    // avx512vbmi avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg
    // tme avx512_vpopcntdq rdpid
    m[W_7_0_ECX] = bits(&[1, 6, 8, 9, 10, 11, 12, 13, 14, 22]);
    // clzero
    m[W_8000_0008_EBX] = bits(&[0]);
    // avx512_4vnniw avx512_4fmaps
    m[W_7_0_EDX] = bits(&[2, 3]);
    m
};

const fn bits(list: &[u32]) -> u32 {
    let mut v = 0;
    let mut i = 0;
    while i < list.len() {
        v |= 1 << list[i];
        i += 1;
    }
    v
}

/// XSAVE feature bits compel accepts as user state (x87, SSE, AVX, MPX,
/// AVX-512, PKRU).
const XFEATURE_MASK_USER: u64 = 0b10_1111_1111;
/// What compel strips as "supervisor" state. Its definition ORs the
/// Processor Trace mask with HDC's feature *number* (10), so it also
/// strips SSE (bit 1) and MPX bound registers (bit 3): CRIU 4.2 images
/// carry the mask with those bits clear, and so do ours.
const XFEATURE_MASK_SUPERVISOR: u64 = (1 << 8) | 10;
/// The CPUID feature each of the first XSAVE components depends on.
const XSAVE_CPUID_FEATURES: [u32; 11] = [FPU, XMM, AVX, MPX, MPX, AVX512F, AVX512F, AVX512F, INTEL_PT, PKU, HDC];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
}

/// A CPU's description, as cpuinfo.img carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    pub vendor: Vendor,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub caps: [u32; NCAPINTS],
    /// The brand string, leading blanks removed (empty when the CPU has none).
    pub model_id: String,
    pub xfeatures_mask: u64,
    pub xsave_size: u32,
    pub xsave_size_max: u32,
}

impl CpuInfo {
    pub fn has(&self, feature: u32) -> bool {
        let (w, b) = ((feature / 32) as usize, feature % 32);
        w < NCAPINTS && self.caps[w] & (1 << b) != 0
    }

    fn set(&mut self, feature: u32, on: bool) {
        let (w, b) = ((feature / 32) as usize, feature % 32);
        if on {
            self.caps[w] |= 1 << b;
        } else {
            self.caps[w] &= !(1 << b);
        }
    }

    /// This CPU.
    pub fn probe() -> Result<CpuInfo, String> {
        CpuInfo::from_cpuid(|leaf, sub| {
            let r = core::arch::x86_64::__cpuid_count(leaf, sub);
            [r.eax, r.ebx, r.ecx, r.edx]
        })
    }

    /// The description compel derives from `cpuid(leaf, subleaf) -> [eax,
    /// ebx, ecx, edx]`.
    pub fn from_cpuid(cpuid: impl Fn(u32, u32) -> [u32; 4]) -> Result<CpuInfo, String> {
        let [level, b, c, d] = cpuid(0, 0);
        let mut vendor_id = Vec::with_capacity(12);
        for w in [b, d, c] {
            vendor_id.extend_from_slice(&w.to_le_bytes());
        }
        let vendor = match &vendor_id[..] {
            b"GenuineIntel" => Vendor::Intel,
            b"AuthenticAMD" | b"HygonGenuine" => Vendor::Amd,
            other => return Err(format!("cpu: Unsupported CPU vendor {}", String::from_utf8_lossy(other))),
        };
        let mut ci = CpuInfo {
            vendor,
            family: 4,
            model: 0,
            stepping: 0,
            caps: [0; NCAPINTS],
            model_id: String::new(),
            xfeatures_mask: 0,
            xsave_size: 0,
            xsave_size_max: 0,
        };
        let sig = if level >= 1 { cpuid(1, 0)[0] } else { 0 };
        if level >= 1 {
            let [eax, _, ecx, edx] = cpuid(1, 0);
            ci.family = (eax >> 8) & 0xf;
            ci.model = (eax >> 4) & 0xf;
            ci.stepping = eax & 0xf;
            if ci.family == 0xf {
                ci.family += (eax >> 20) & 0xff;
            }
            if ci.family >= 6 {
                ci.model += ((eax >> 16) & 0xf) << 4;
            }
            ci.caps[W_1_EDX] = edx;
            ci.caps[W_1_ECX] = ecx;
        }
        if level >= 6 {
            ci.caps[W_6_EAX] = cpuid(6, 0)[0];
        }
        if level >= 7 {
            let [_, ebx, ecx, edx] = cpuid(7, 0);
            ci.caps[W_7_0_EBX] = ebx;
            ci.caps[W_7_0_ECX] = ecx;
            ci.caps[W_7_0_EDX] = edx;
        }
        if level >= 0xd {
            ci.caps[W_D_1_EAX] = cpuid(0xd, 1)[0];
        }
        if level >= 0xf {
            ci.caps[W_F_0_EDX] = cpuid(0xf, 0)[3];
            if ci.has(CQM_LLC) {
                ci.caps[W_F_1_EDX] = cpuid(0xf, 1)[3];
            }
        }
        let ext = cpuid(0x8000_0000, 0)[0];
        if ext & 0xffff_0000 == 0x8000_0000 && ext >= 0x8000_0001 {
            let [_, _, ecx, edx] = cpuid(0x8000_0001, 0);
            ci.caps[W_8000_0001_ECX] = ecx;
            ci.caps[W_8000_0001_EDX] = edx;
        }
        if ext >= 0x8000_0004 {
            let mut raw = Vec::with_capacity(48);
            for leaf in 0x8000_0002..=0x8000_0004 {
                for w in cpuid(leaf, 0) {
                    raw.extend_from_slice(&w.to_le_bytes());
                }
            }
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            let start = raw[..end].iter().position(|&c| c != b' ').unwrap_or(end);
            ci.model_id = String::from_utf8_lossy(&raw[start..end]).into_owned();
        }
        if ext >= 0x8000_0007 {
            ci.caps[W_8000_0007_EBX] = cpuid(0x8000_0007, 0)[1];
        }
        if ext >= 0x8000_000a {
            ci.caps[W_8000_000A_EDX] = cpuid(0x8000_000a, 0)[3];
        }
        if ext >= 0x8000_0008 {
            ci.caps[W_8000_0008_EBX] = cpuid(0x8000_0008, 0)[1];
        }
        ci.set(CPUID, true);
        ci.set(NOPL, true);
        if (level as i32) < 0xd {
            ci.set(XSAVE, false);
        }
        match vendor {
            Vendor::Intel if ci.family == 15 => {
                ci.set(REP_GOOD, false);
                ci.set(ERMS, false);
            }
            Vendor::Intel if ci.family == 6 => ci.set(REP_GOOD, true),
            Vendor::Intel => {}
            Vendor::Amd => {
                // Bit 31 of leaf 1 EDX is a nonstandard 3DNow flag on AMD.
                ci.set(f(0, 31), false);
                if ci.family >= 0x10 {
                    ci.set(REP_GOOD, true);
                }
                if ci.family == 0xf && ((0x0f48..0x0f50).contains(&sig) || sig >= 0x0f58) {
                    ci.set(REP_GOOD, true);
                }
            }
        }
        if !ci.has(FPU) {
            return Err("cpu: fpu: No FPU detected".into());
        }
        if ci.has(XSAVE) {
            let [eax, ebx, ecx, edx] = cpuid(0xd, 0);
            let mut mask = u64::from(eax) | u64::from(edx) << 32;
            if mask & 0b11 != 0b11 {
                return Err(format!("cpu: fpu: FP/SSE not present amongst the CPU's xstate features: {mask:#x}"));
            }
            for (i, feat) in XSAVE_CPUID_FEATURES.iter().enumerate() {
                if !ci.has(*feat) {
                    mask &= !(1 << i);
                }
            }
            ci.xfeatures_mask = mask & XFEATURE_MASK_USER & !XFEATURE_MASK_SUPERVISOR;
            ci.xsave_size = ebx;
            ci.xsave_size_max = ecx;
        }
        Ok(ci)
    }
}

/// The first mismatch `--cpu-cap` bits `caps` find between the CPU an image
/// was made on (`img`) and this one (`rt`), in CRIU's words (and order:
/// fpu, then ins, then cpu).
pub fn validate(img: &CpuInfo, rt: &CpuInfo, caps: u32) -> Result<(), String> {
    if caps & cpu_cap::FPU != 0 {
        let miss = |b: u32| u8::from(img.has(b) && !rt.has(b));
        let (fpu, fxsr, osxsave, xsaves) = (miss(FPU), miss(FXSR), miss(OSXSAVE), miss(XSAVES));
        if fpu + fxsr + osxsave + xsaves != 0 {
            return Err(format!(
                "cpu: FPU feature required by image is not supported on host (fpu:{fpu} fxsr:{fxsr} osxsave:{osxsave} xsaves:{xsaves})"
            ));
        }
        let m = img.xfeatures_mask & !rt.xfeatures_mask;
        if m != 0 {
            return Err(format!("cpu: CPU xfeatures has unsupported bits ({m:#x})"));
        }
        if img.xsave_size != rt.xsave_size {
            return Err(format!("cpu: CPU xsave size mismatch ({}/{})", img.xsave_size, rt.xsave_size));
        }
        if img.xsave_size_max != rt.xsave_size_max {
            return Err(format!("cpu: CPU xsave max size mismatch ({}/{})", img.xsave_size_max, rt.xsave_size_max));
        }
    }
    if caps & cpu_cap::INS != 0 {
        let lacking = (0..NCAPINTS).any(|i| img.caps[i] & INS_MASK[i] & !(rt.caps[i] & INS_MASK[i]) != 0);
        if lacking {
            return Err("cpu: CPU instruction capabilities do not match run time".into());
        }
    }
    if caps & cpu_cap::CPU != 0 && img.caps != rt.caps {
        return Err("cpu: CPU capabilities do not match run time".into());
    }
    Ok(())
}

/// The XSAVE state components by bit, grouped by the feature that brings
/// them (group, component).
const XFEATURES: &[(u32, &str, &str)] = &[
    (0, "x87", "x87"),
    (1, "sse", "sse"),
    (2, "avx", "ymm"),
    (3, "mpx", "bndregs"),
    (4, "mpx", "bndcsr"),
    (5, "avx512", "opmask"),
    (6, "avx512", "zmm_hi256"),
    (7, "avx512", "hi16_zmm"),
    (8, "pt", "pt"),
    (9, "pku", "pkru"),
    (10, "pasid", "pasid"),
    (11, "cet", "cet_user"),
    (12, "cet", "cet_kernel"),
    (13, "hdc", "hdc"),
    (14, "uintr", "uintr"),
    (15, "lbr", "lbr"),
    (16, "hwp", "hwp"),
    (17, "amx", "xtile_cfg"),
    (18, "amx", "xtile_data"),
    (19, "apx", "egpr"),
];

/// `mask`'s XSAVE features by name, grouped: "avx512 (opmask, zmm_hi256,
/// hi16_zmm)"; groups joined by "; ", unnamed bits as "xfeature N".
pub fn xfeature_names(mask: u64) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for bit in 0..64u32 {
        if mask & (1 << bit) == 0 {
            continue;
        }
        match XFEATURES.iter().find(|x| x.0 == bit) {
            Some(&(_, group, comp)) => match groups.iter_mut().find(|g| g.0 == group) {
                Some(g) => g.1.push(comp),
                None => groups.push((group.to_string(), vec![comp])),
            },
            None => groups.push((format!("xfeature {bit}"), Vec::new())),
        }
    }
    groups
        .iter()
        .map(|(g, comps)| if comps.is_empty() { g.clone() } else { format!("{g} ({})", comps.join(", ")) })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The XSAVE features a saved FPU state (`needed`) uses that a CPU whose
/// XCR0 is `xcr0` lacks (x87 and SSE are always there).
pub fn missing_xfeatures(needed: u64, xcr0: u64) -> u64 {
    needed & !(xcr0 | 0b11)
}

/// Bytes XSAVE component `bit` takes on this CPU (CPUID leaf 0xD).
pub fn xfeature_size(bit: u32) -> u32 {
    core::arch::x86_64::__cpuid_count(0xd, bit).eax
}

/// This CPU's XCR0, or x87|SSE only when the OS has not enabled XSAVE.
pub fn xcr0() -> u64 {
    crate::sys::x86::xcr0().unwrap_or(0b11)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic CPU: `leaves` answers cpuid, anything else reads zero.
    fn cpu(leaves: &[((u32, u32), [u32; 4])]) -> Result<CpuInfo, String> {
        let t = leaves.to_vec();
        CpuInfo::from_cpuid(move |l, s| t.iter().find(|e| e.0 == (l, s)).map_or([0; 4], |e| e.1))
    }

    const AMD: [u32; 4] = [0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65];

    #[test]
    fn amd_identity_and_quirks() {
        // Family 0xf + 0xa = 25, model 0x11, stepping 1; EDX bit 31 set.
        let c = cpu(&[
            ((0, 0), AMD),
            ((1, 0), [0x00a1_0f11, 0, 1 << 26, 0x8000_0001 | 1 << 24 | 1 << 25]),
            ((0xd, 0), [0xe7, 2432, 2432, 0]),
            ((7, 0), [0, 1 << 16, 0, 0]),
            ((0x8000_0000, 0), [0x8000_0004, 0, 0, 0]),
            ((0x8000_0002, 0), [u32::from_le_bytes(*b"  AM"), u32::from_le_bytes(*b"D EP"), u32::from_le_bytes(*b"YC\0\0"), 0]),
        ])
        .unwrap();
        assert_eq!(c.vendor, Vendor::Amd);
        assert_eq!((c.family, c.model, c.stepping), (25, 17, 1));
        assert_eq!(c.caps[0] & 1 << 31, 0, "AMD's nonstandard 3DNow bit is cleared");
        assert!(c.has(REP_GOOD) && c.has(NOPL) && c.has(CPUID));
        assert_eq!(c.model_id, "AMD EPYC");
        // No AVX in leaf 1: YMM goes; SSE and BNDREGS go with compel's quirk.
        assert_eq!(c.xfeatures_mask, 0xe1);
        assert_eq!((c.xsave_size, c.xsave_size_max), (2432, 2432));
    }

    #[test]
    fn no_xsave_below_leaf_d() {
        let mut amd = AMD;
        amd[0] = 7;
        let c = cpu(&[((0, 0), amd), ((1, 0), [0x0f11, 0, 1 << 26, 1]), ((0xd, 0), [0xe7, 1, 1, 0])]).unwrap();
        assert!(!c.has(XSAVE));
        assert_eq!((c.xfeatures_mask, c.xsave_size), (0, 0));
        assert!(cpu(&[((0, 0), [1, 0, 0, 0])]).unwrap_err().contains("Unsupported CPU vendor"));
    }

    fn base() -> CpuInfo {
        let mut caps = [0; NCAPINTS];
        caps[0] = 1 | 1 << 24 | 1 << 25;
        caps[4] = 1 << 26 | 1 << 27;
        CpuInfo {
            vendor: Vendor::Intel,
            family: 6,
            model: 85,
            stepping: 4,
            caps,
            model_id: "test".into(),
            xfeatures_mask: 0xe5,
            xsave_size: 2432,
            xsave_size_max: 2432,
        }
    }

    #[test]
    fn modes_check_what_they_name() {
        let rt = base();
        let mut img = base();
        img.caps[W_7_0_EBX] |= 1 << 16; // avx512f: an instruction bit
        assert_eq!(validate(&img, &rt, cpu_cap::FPU), Ok(()));
        assert_eq!(validate(&img, &rt, cpu_cap::INS).unwrap_err(), "cpu: CPU instruction capabilities do not match run time");
        // A richer run-time CPU passes ins but not cpu.
        assert_eq!(validate(&rt, &img, cpu_cap::INS), Ok(()));
        assert_eq!(validate(&rt, &img, cpu_cap::CPU).unwrap_err(), "cpu: CPU capabilities do not match run time");
        // A non-instruction bit only matters to cpu.
        let mut img = base();
        img.caps[W_6_EAX] |= 1 << 2;
        assert_eq!(validate(&img, &rt, cpu_cap::FPU | cpu_cap::INS), Ok(()));
        assert!(validate(&img, &rt, cpu_cap::ALL).is_err());
        assert_eq!(validate(&img, &rt, cpu_cap::NONE), Ok(()));
    }

    #[test]
    fn fpu_mode_checks_bits_features_and_sizes() {
        let rt = base();
        let mut img = base();
        img.caps[W_D_1_EAX] |= 1 << 3;
        assert_eq!(
            validate(&img, &rt, cpu_cap::FPU).unwrap_err(),
            "cpu: FPU feature required by image is not supported on host (fpu:0 fxsr:0 osxsave:0 xsaves:1)"
        );
        let mut img = base();
        img.xfeatures_mask |= 0x6_0000;
        assert_eq!(validate(&img, &rt, cpu_cap::FPU).unwrap_err(), "cpu: CPU xfeatures has unsupported bits (0x60000)");
        assert_eq!(validate(&img, &rt, cpu_cap::INS), Ok(()));
        let mut img = base();
        img.xsave_size = 2696;
        assert_eq!(validate(&img, &rt, cpu_cap::FPU).unwrap_err(), "cpu: CPU xsave size mismatch (2696/2432)");
        img.xsave_size = 2432;
        img.xsave_size_max = 11008;
        assert_eq!(validate(&img, &rt, cpu_cap::FPU).unwrap_err(), "cpu: CPU xsave max size mismatch (11008/2432)");
    }

    #[test]
    fn missing_avx512_is_named() {
        // An image of an AVX-512 task on a CPU with AVX only.
        let m = missing_xfeatures(0xe7, 0x7);
        assert_eq!(m, 0xe0);
        assert_eq!(xfeature_names(m), "avx512 (opmask, zmm_hi256, hi16_zmm)");
        assert_eq!(xfeature_names(missing_xfeatures(0x6_0207, 0x7)), "pku (pkru); amx (xtile_cfg, xtile_data)");
        assert_eq!(xfeature_names(1 << 62), "xfeature 62");
    }

    #[test]
    fn subsets_need_nothing() {
        assert_eq!(missing_xfeatures(0x7, 0x2e7), 0);
        assert_eq!(missing_xfeatures(0x2e7, 0x2e7), 0);
        // x87/SSE never count as missing, even against a bare XCR0.
        assert_eq!(missing_xfeatures(0x3, 0), 0);
    }
}
