//! The x86_64 `rt_sigframe` compel leaves on the parasite's stack: loaded by
//! `rt_sigreturn` it restores the task's registers, FPU state, signal mask
//! and sigaltstack. Layout: the frame (`pretcode`, `ucontext`, `siginfo`),
//! then the XSAVE image 64-byte aligned at [`FPSTATE_OFFSET`].

use super::{FpuState, Regs};
use crate::sys::pod::{bytes_of, zeroed};

/// `struct sigcontext` (64-bit).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sigcontext {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub eflags: u64,
    pub cs: u16,
    pub gs: u16,
    pub fs: u16,
    pub ss: u16,
    pub err: u64,
    pub trapno: u64,
    pub oldmask: u64,
    pub cr2: u64,
    pub fpstate: u64,
    pub reserved: [u64; 8],
}

/// `struct rt_sigframe` with its `ucontext` spelled out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RtSigframe {
    pub pretcode: u64,
    pub uc_flags: u64,
    pub uc_link: u64,
    pub ss_sp: u64,
    pub ss_flags: i32,
    pub ss_pad: u32,
    pub ss_size: u64,
    pub mcontext: Sigcontext,
    pub sigmask: u64,
    pub info: [u64; 16],
}

const _: () = assert!(std::mem::size_of::<Sigcontext>() == 256);
const _: () = assert!(std::mem::size_of::<RtSigframe>() == 440);

/// `rt_sigreturn` reads the frame 8 bytes below the stack pointer (the
/// handler's `ret` popped `pretcode`): load sp = frame + this.
pub const SIGRETURN_SP_OFFSET: u64 = 8;
/// Where `stack_t uc_stack` sits in the frame (the parasite fills it).
pub const UC_STACK_OFFSET: u64 = 24;
/// The XSAVE image follows the frame, 64-byte aligned (XRSTOR needs it).
pub const FPSTATE_OFFSET: u64 = 512;

const UC_FP_XSTATE: u64 = 0x1;
pub const UC_SIGCONTEXT_SS: u64 = 0x2;
pub const UC_STRICT_RESTORE_SS: u64 = 0x4;

/// Bytes the frame and its FPU image take.
pub fn size(fpu: &FpuState) -> u64 {
    FPSTATE_OFFSET + fpu.frame_size() as u64
}

/// The general registers of a frame's `mcontext` (fpstate left as it is).
pub fn fill_mcontext(m: &mut Sigcontext, regs: &Regs) {
    (m.r8, m.r9, m.r10, m.r11) = (regs.r8, regs.r9, regs.r10, regs.r11);
    (m.r12, m.r13, m.r14, m.r15) = (regs.r12, regs.r13, regs.r14, regs.r15);
    (m.rdi, m.rsi, m.rbp, m.rbx) = (regs.rdi, regs.rsi, regs.rbp, regs.rbx);
    (m.rdx, m.rax, m.rcx, m.rsp) = (regs.rdx, regs.rax, regs.rcx, regs.rsp);
    (m.rip, m.eflags) = (regs.rip, regs.eflags);
    (m.cs, m.gs, m.fs, m.ss) = (regs.cs as u16, regs.gs as u16, regs.fs as u16, regs.ss as u16);
}

/// The frame to place at `addr` (which must be 64-byte aligned) in the task.
/// `regs` should already be rewound for sigreturn
/// ([`Regs::rewound_for_sigreturn`]).
pub fn build(regs: &Regs, fpu: &FpuState, sigmask: u64, addr: u64) -> Vec<u8> {
    debug_assert_eq!(addr % 64, 0);
    let mut f: RtSigframe = zeroed();
    f.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    f.ss_flags = 2; // SS_DISABLE until the parasite stores the real one.
    fill_mcontext(&mut f.mcontext, regs);
    f.mcontext.fpstate = addr + FPSTATE_OFFSET;
    f.sigmask = sigmask;

    let mut out = bytes_of(&f).to_vec();
    out.resize(FPSTATE_OFFSET as usize, 0);
    out.extend_from_slice(&fpu.frame_image());
    out
}
