//! x86_64 pieces of the kill-safe injection (`compel::rescue`): the gadget
//! byte patterns looked for in the task's own code, and the signal frames
//! of a rescue chain.
//!
//! A remote syscall runs at a `syscall; ret` the task already has, with its
//! stack pointer at a chain of `rt_sigframe`s on the task's stack. After the
//! syscall, `ret` pops the first frame's `pretcode` (a `mov $15, %rax;
//! syscall`, i.e. `rt_sigreturn`, also found in the task), which loads the
//! frame: each intermediate frame runs one undo syscall (close an fd we
//! made, unmap an area we mapped) at the same gadget with the next frame as
//! its stack; the last one ("home") holds the task's state as seized. So
//! whenever the tracer disappears, the task undoes what was done to it and
//! returns to exactly where it was.

use super::sigframe::{self, RtSigframe};
use super::{FpuState, Regs};
use crate::sys::pod::{bytes_of, zeroed};

/// `syscall; ret`.
pub const SYSCALL_RET: &[u8] = &[0x0f, 0x05, 0xc3];
/// `rt_sigreturn` stubs: glibc's and musl's `__restore_rt`
/// (`mov $15, %rax; syscall`) and its 32-bit-immediate form.
pub const SIGRETURN: &[&[u8]] = &[&[0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05], &[0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05]];
/// Bytes from the start of [`SYSCALL_RET`] to the `ret` (the ip at the
/// syscall-exit stop, and where a parked task resumes).
pub const RET_OFFSET: u64 = 2;
/// Bytes one chain frame takes (its `pretcode` first); 64-aligned.
pub const SLOT: u64 = 512;
/// What the stack pointer must point at for `ret` to enter a frame placed
/// at `slot`: its `pretcode`.
pub const ENTRY_OFFSET: u64 = 0;
/// `uc_stack.ss_flags` that `rt_sigreturn` refuses (its error is ignored),
/// so the task's sigaltstack stays as it is.
const SS_KEEP: i32 = 3;
/// Red zone below the stack pointer the task may use without moving it.
pub const RED_ZONE: u64 = 128;

/// The home frame: the seized state (registers rewound as `rt_sigreturn`
/// loads them, FPU state, signal mask), to place at `addr` (64-aligned),
/// entered through `sigreturn`.
pub fn home_frame(regs: &Regs, fpu: &FpuState, sigmask: u64, addr: u64, sigreturn: u64) -> Vec<u8> {
    let mut f = sigframe::build(&regs.rewound_for_sigreturn(), fpu, sigmask, addr);
    f[..8].copy_from_slice(&sigreturn.to_le_bytes());
    let ss_flags = sigframe::UC_STACK_OFFSET as usize + 8;
    f[ss_flags..ss_flags + 4].copy_from_slice(&SS_KEEP.to_le_bytes());
    f
}

/// Bytes the home frame takes.
pub fn home_size(fpu: &FpuState) -> u64 {
    sigframe::size(fpu)
}

/// A chain frame (at most [`SLOT`] bytes): run syscall `nr(args)` at
/// `syscall_ret` with every signal blocked and the stack at `next` (the
/// next frame's `pretcode`), entered through `sigreturn`. `like`: the
/// task's registers (segments, flags).
pub fn undo_frame(like: &Regs, syscall_ret: u64, nr: i64, args: [u64; 6], next: u64, sigreturn: u64) -> Vec<u8> {
    let mut r = *like;
    r.set_syscall(syscall_ret, nr, args);
    r.rsp = next;
    let mut f: RtSigframe = zeroed();
    f.pretcode = sigreturn;
    f.uc_flags = sigframe::UC_SIGCONTEXT_SS | sigframe::UC_STRICT_RESTORE_SS;
    f.ss_flags = SS_KEEP;
    sigframe::fill_mcontext(&mut f.mcontext, &r);
    f.mcontext.fpstate = 0; // the FPU is reset here and restored by home
    f.sigmask = !0;
    bytes_of(&f).to_vec()
}

const _: () = assert!(std::mem::size_of::<RtSigframe>() as u64 <= SLOT);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_frame_runs_the_syscall_and_chains() {
        let like = Regs { cs: 0x33, ss: 0x2b, eflags: 0x246 | (1 << 8), rsp: 1, ..Default::default() };
        let b = undo_frame(&like, 0x1000, 3, [7, 0, 0, 0, 0, 0], 0x7000, 0x2000);
        let f: RtSigframe = crate::sys::pod::read(&b).unwrap();
        assert_eq!(f.pretcode, 0x2000);
        let m = f.mcontext;
        assert_eq!((m.rip, m.rax, m.rdi, m.rsp, m.fpstate, m.cs, m.ss), (0x1000, 3, 7, 0x7000, 0, 0x33, 0x2b));
        assert_eq!(m.eflags & (1 << 8), 0, "no single-stepping");
        assert_eq!(f.ss_flags, SS_KEEP);
        assert_eq!(f.sigmask, !0);
    }

    #[test]
    fn home_frame_keeps_the_sigaltstack_and_returns_through_sigreturn() {
        let regs = Regs { rip: 0x4000, rsp: 0x8000, cs: 0x33, ss: 0x2b, orig_rax: u64::MAX, ..Default::default() };
        let mut raw = vec![0u8; 1024];
        raw[512] = 3;
        let b = home_frame(&regs, &FpuState(raw), 0x1234, 0x10000, 0x2000);
        let f: RtSigframe = crate::sys::pod::read(&b).unwrap();
        assert_eq!((f.pretcode, f.ss_flags, f.sigmask), (0x2000, SS_KEEP, 0x1234));
        assert_eq!((f.mcontext.rip, f.mcontext.rsp, f.mcontext.fpstate), (0x4000, 0x8000, 0x10000 + sigframe::FPSTATE_OFFSET));
    }
}
