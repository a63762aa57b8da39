//! fpu00: the FPU/vector register state survives. Inside one inline-asm
//! block (so nothing can spill or clobber them) we plant random values in
//! every vector register (zmm0-31 and k1-k7 with AVX-512, else ymm0-15 with
//! AVX, else xmm0-15), a non-default MXCSR and x87 control word, and an x87
//! stack holding a division's 80-bit result; then wait for SIGTERM with raw
//! futex syscalls, and store everything back. The stored values must equal
//! those of a run of the same block that did not wait.

use std::mem::offset_of;
use std::sync::atomic::AtomicU32;
use zdtm::Checks;

#[repr(C, align(64))]
#[derive(Clone)]
struct Regs {
    vin: [u8; 2048],
    vout: [u8; 2048],
    kin: [u16; 8],
    kout: [u16; 8],
    x87in: [f64; 3],
    x87out: [u8; 32],
    mx_in: u32,
    mx_out: u32,
    mx_saved: u32,
    cw_in: u16,
    cw_out: u16,
    cw_saved: u16,
}

const VIN: usize = offset_of!(Regs, vin);
const VOUT: usize = offset_of!(Regs, vout);
const KIN: usize = offset_of!(Regs, kin);
const KOUT: usize = offset_of!(Regs, kout);
const XIN: usize = offset_of!(Regs, x87in);
const XOUT: usize = offset_of!(Regs, x87out);
const MXIN: usize = offset_of!(Regs, mx_in);
const MXOUT: usize = offset_of!(Regs, mx_out);
const MXSAVE: usize = offset_of!(Regs, mx_saved);
const CWIN: usize = offset_of!(Regs, cw_in);
const CWOUT: usize = offset_of!(Regs, cw_out);
const CWSAVE: usize = offset_of!(Regs, cw_saved);

/// Load x87 state, then three doubles a, b, c and leave c/b, b, a on the
/// stack (80-bit, rounded by the planted control word).
macro_rules! x87_load {
    () => {
        concat!(
            "stmxcsr dword ptr [{b} + {mxsave}]\n",
            "fnstcw word ptr [{b} + {cwsave}]\n",
            "ldmxcsr dword ptr [{b} + {mxin}]\n",
            "fldcw word ptr [{b} + {cwin}]\n",
            "fld qword ptr [{b} + {xin}]\n",
            "fld qword ptr [{b} + {xin} + 8]\n",
            "fld qword ptr [{b} + {xin} + 16]\n",
            "fdiv st(0), st(1)\n",
        )
    };
}

/// Wait until the u32 at [rdi] is non-zero, with raw futex calls.
macro_rules! wait_loop {
    () => {
        concat!(
            "2:\n",
            "mov eax, dword ptr [rdi]\n",
            "test eax, eax\n",
            "jnz 3f\n",
            "mov eax, 202\n", // SYS_futex
            "mov esi, 128\n", // FUTEX_WAIT | FUTEX_PRIVATE_FLAG
            "xor edx, edx\n",
            "xor r10d, r10d\n",
            "syscall\n",
            "jmp 2b\n",
            "3:\n",
        )
    };
}

macro_rules! x87_store {
    () => {
        concat!(
            "fstp tbyte ptr [{b} + {xout}]\n",
            "fstp tbyte ptr [{b} + {xout} + 10]\n",
            "fstp tbyte ptr [{b} + {xout} + 20]\n",
            "stmxcsr dword ptr [{b} + {mxout}]\n",
            "fnstcw word ptr [{b} + {cwout}]\n",
            "ldmxcsr dword ptr [{b} + {mxsave}]\n",
            "fldcw word ptr [{b} + {cwsave}]\n",
        )
    };
}

macro_rules! vec16 {
    ($op:literal, $reg:literal, $ptr:literal, $sz:literal, $dir:ident) => {
        vec16!(@ $dir $op $reg $ptr $sz; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    };
    (@ load $op:literal $reg:literal $ptr:literal $sz:literal; $($n:literal)*) => {
        concat!($($op, " ", $reg, $n, ", ", $ptr, " ptr [{b} + {vin} + ", $sz, " * ", $n, "]\n",)*)
    };
    (@ store $op:literal $reg:literal $ptr:literal $sz:literal; $($n:literal)*) => {
        concat!($($op, " ", $ptr, " ptr [{b} + {vout} + ", $sz, " * ", $n, "], ", $reg, $n, "\n",)*)
    };
}

macro_rules! vec_hi16 {
    (load) => {
        concat!(
            "vmovdqu64 zmm16, zmmword ptr [{b} + {vin} + 1024]\n",
            "vmovdqu64 zmm17, zmmword ptr [{b} + {vin} + 1088]\n",
            "vmovdqu64 zmm18, zmmword ptr [{b} + {vin} + 1152]\n",
            "vmovdqu64 zmm19, zmmword ptr [{b} + {vin} + 1216]\n",
            "vmovdqu64 zmm20, zmmword ptr [{b} + {vin} + 1280]\n",
            "vmovdqu64 zmm21, zmmword ptr [{b} + {vin} + 1344]\n",
            "vmovdqu64 zmm22, zmmword ptr [{b} + {vin} + 1408]\n",
            "vmovdqu64 zmm23, zmmword ptr [{b} + {vin} + 1472]\n",
            "vmovdqu64 zmm24, zmmword ptr [{b} + {vin} + 1536]\n",
            "vmovdqu64 zmm25, zmmword ptr [{b} + {vin} + 1600]\n",
            "vmovdqu64 zmm26, zmmword ptr [{b} + {vin} + 1664]\n",
            "vmovdqu64 zmm27, zmmword ptr [{b} + {vin} + 1728]\n",
            "vmovdqu64 zmm28, zmmword ptr [{b} + {vin} + 1792]\n",
            "vmovdqu64 zmm29, zmmword ptr [{b} + {vin} + 1856]\n",
            "vmovdqu64 zmm30, zmmword ptr [{b} + {vin} + 1920]\n",
            "vmovdqu64 zmm31, zmmword ptr [{b} + {vin} + 1984]\n",
            "kmovw k1, word ptr [{b} + {kin} + 2]\n",
            "kmovw k2, word ptr [{b} + {kin} + 4]\n",
            "kmovw k3, word ptr [{b} + {kin} + 6]\n",
            "kmovw k4, word ptr [{b} + {kin} + 8]\n",
            "kmovw k5, word ptr [{b} + {kin} + 10]\n",
            "kmovw k6, word ptr [{b} + {kin} + 12]\n",
            "kmovw k7, word ptr [{b} + {kin} + 14]\n",
        )
    };
    (store) => {
        concat!(
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1024], zmm16\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1088], zmm17\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1152], zmm18\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1216], zmm19\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1280], zmm20\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1344], zmm21\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1408], zmm22\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1472], zmm23\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1536], zmm24\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1600], zmm25\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1664], zmm26\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1728], zmm27\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1792], zmm28\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1856], zmm29\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1920], zmm30\n",
            "vmovdqu64 zmmword ptr [{b} + {vout} + 1984], zmm31\n",
            "kmovw word ptr [{b} + {kout} + 2], k1\n",
            "kmovw word ptr [{b} + {kout} + 4], k2\n",
            "kmovw word ptr [{b} + {kout} + 6], k3\n",
            "kmovw word ptr [{b} + {kout} + 8], k4\n",
            "kmovw word ptr [{b} + {kout} + 10], k5\n",
            "kmovw word ptr [{b} + {kout} + 12], k6\n",
            "kmovw word ptr [{b} + {kout} + 14], k7\n",
        )
    };
}

#[target_feature(enable = "avx512f")]
unsafe fn run_avx512(r: &mut Regs, flag: *const u32) {
    // SAFETY: r is a valid Regs; every register touched is declared.
    unsafe {
        std::arch::asm!(
            x87_load!(),
            vec16!("vmovdqu64", "zmm", "zmmword", 64, load),
            vec_hi16!(load),
            wait_loop!(),
            vec16!("vmovdqu64", "zmm", "zmmword", 64, store),
            vec_hi16!(store),
            x87_store!(),
            "vzeroupper",
            b = in(reg) r as *mut Regs,
            vin = const VIN, vout = const VOUT, kin = const KIN, kout = const KOUT,
            xin = const XIN, xout = const XOUT, mxin = const MXIN, mxout = const MXOUT,
            mxsave = const MXSAVE, cwin = const CWIN, cwout = const CWOUT, cwsave = const CWSAVE,
            in("rdi") flag,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("r10") _, out("r11") _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
            out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _, out("zmm16") _, out("zmm17") _,
            out("zmm18") _, out("zmm19") _, out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _, out("zmm28") _, out("zmm29") _,
            out("zmm30") _, out("zmm31") _,
            out("k1") _, out("k2") _, out("k3") _, out("k4") _, out("k5") _, out("k6") _, out("k7") _,
            out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
            out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
        );
    }
}

#[target_feature(enable = "avx")]
unsafe fn run_avx(r: &mut Regs, flag: *const u32) {
    // SAFETY: r is a valid Regs; every register touched is declared.
    unsafe {
        std::arch::asm!(
            x87_load!(),
            vec16!("vmovdqu", "ymm", "ymmword", 32, load),
            wait_loop!(),
            vec16!("vmovdqu", "ymm", "ymmword", 32, store),
            x87_store!(),
            "vzeroupper",
            b = in(reg) r as *mut Regs,
            vin = const VIN, vout = const VOUT,
            xin = const XIN, xout = const XOUT, mxin = const MXIN, mxout = const MXOUT,
            mxsave = const MXSAVE, cwin = const CWIN, cwout = const CWOUT, cwsave = const CWSAVE,
            in("rdi") flag,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("r10") _, out("r11") _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _,
            out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
            out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
        );
    }
}

unsafe fn run_sse(r: &mut Regs, flag: *const u32) {
    // SAFETY: r is a valid Regs; every register touched is declared.
    unsafe {
        std::arch::asm!(
            x87_load!(),
            vec16!("movdqu", "xmm", "xmmword", 16, load),
            wait_loop!(),
            vec16!("movdqu", "xmm", "xmmword", 16, store),
            x87_store!(),
            b = in(reg) r as *mut Regs,
            vin = const VIN, vout = const VOUT,
            xin = const XIN, xout = const XOUT, mxin = const MXIN, mxout = const MXOUT,
            mxsave = const MXSAVE, cwin = const CWIN, cwout = const CWOUT, cwsave = const CWSAVE,
            in("rdi") flag,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("r10") _, out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _, out("xmm4") _, out("xmm5") _,
            out("xmm6") _, out("xmm7") _, out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
            out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
        );
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Avx512,
    Avx,
    Sse,
}

fn run(kind: Kind, r: &mut Regs, flag: *const u32) {
    // SAFETY: the kind was chosen by CPU feature detection.
    unsafe {
        match kind {
            Kind::Avx512 => run_avx512(r, flag),
            Kind::Avx => run_avx(r, flag),
            Kind::Sse => run_sse(r, flag),
        }
    }
}

/// SIGTERM handler: mark the signal; when sabotaging, flip a bit of xmm0 in
/// the saved frame, as a broken restore would.
extern "C" fn on_term(sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    if zdtm::sabotaged() {
        // SAFETY: the kernel passes a valid ucontext with SA_SIGINFO.
        unsafe {
            let uc = uc as *mut libc::ucontext_t;
            let fp = (*uc).uc_mcontext.fpregs;
            if !fp.is_null() {
                (*fp)._xmm[0].element[0] ^= 1;
            }
        }
    }
    zdtm::mark_signal(sig);
}

fn main() {
    zdtm::test_init();
    zdtm::install_handler(
        libc::SIGTERM,
        on_term as *const () as usize,
        libc::SA_SIGINFO | libc::SA_RESTART,
    );
    let kind = if std::arch::is_x86_feature_detected!("avx512f") {
        Kind::Avx512
    } else if std::arch::is_x86_feature_detected!("avx") {
        Kind::Avx
    } else {
        Kind::Sse
    };
    zdtm::test_msg!("planting {kind:?} registers");
    let seed = std::process::id() as u64 ^ 0xf00d;
    let mut r = Box::new(Regs {
        vin: [0; 2048],
        vout: [0; 2048],
        kin: [0; 8],
        kout: [0; 8],
        x87in: [0.0; 3],
        x87out: [0; 32],
        mx_in: 0x1f80 | 0x6000 | 0x8000 | 0x40, // round toward zero, FTZ, DAZ
        mx_out: 0,
        mx_saved: 0,
        cw_in: 0x037f | 0x0800, // round up, extended precision
        cw_out: 0,
        cw_saved: 0,
    });
    zdtm::datagen(&mut r.vin, seed);
    let mut k = [0u8; 16];
    zdtm::datagen(&mut k, seed + 1);
    for (i, w) in r.kin.iter_mut().enumerate() {
        *w = u16::from_le_bytes([k[2 * i], k[2 * i + 1]]);
    }
    r.x87in = [
        1.0 + (seed % 1000) as f64 / 7.0,
        3.0 + (seed % 77) as f64 / 13.0,
        2.0 + (seed % 91) as f64 / 3.0,
    ];

    // Reference: the same block, not waiting.
    let done = AtomicU32::new(1);
    let mut reference = r.clone();
    run(kind, &mut reference, done.as_ptr());

    zdtm::test_daemon();
    run(kind, &mut r, zdtm::sig_word().as_ptr());
    zdtm::after_signal();

    let mut c = Checks::new();
    let vlen = match kind {
        Kind::Avx512 => 2048,
        Kind::Avx => 512,
        Kind::Sse => 256,
    };
    c.check(reference.vout[..vlen] == reference.vin[..vlen], || {
        "reference run did not round-trip the vector registers".into()
    });
    if let Some(i) = (0..vlen).find(|&i| r.vout[i] != reference.vout[i]) {
        let per = vlen / if kind == Kind::Avx512 { 32 } else { 16 };
        c.check(false, || {
            format!("vector register {} differs at byte {}", i / per, i % per)
        });
    }
    if kind == Kind::Avx512 {
        c.eq("k1-k7", &r.kout[1..], &reference.kout[1..]);
    }
    c.eq(
        "x87 stack (80-bit)",
        &r.x87out[..30],
        &reference.x87out[..30],
    );
    c.eq(
        "MXCSR",
        format!("{:#x}", r.mx_out),
        format!("{:#x}", reference.mx_out),
    );
    c.eq(
        "x87 control word",
        format!("{:#x}", r.cw_out),
        format!("{:#x}", reference.cw_out),
    );
    c.eq("planted MXCSR", reference.mx_out, r.mx_in);
    c.finish()
}
