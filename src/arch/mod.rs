//! Architecture-specific pieces of the parasite engine, behind one interface
//! so another architecture (aarch64) can slot in as `arch/<name>/`.
//!
//! Each architecture module provides:
//! - [`Regs`]: the general registers as ptrace's `NT_PRSTATUS` returns them,
//!   with `get`/`set`, accessors (`ip`, `sp`, `syscall_nr`, `retval`) and
//!   the edits compel makes: `set_syscall` (run one syscall at an address),
//!   `set_call` (call a function with one argument on a given stack) and
//!   `rewound_for_sigreturn` (the state that restarts an interrupted syscall
//!   when loaded by `rt_sigreturn`).
//! - [`FpuState`]: the full FPU/vector state (`get`/`set` through ptrace).
//! - [`SYSCALL_INSN`] and [`patch_syscall`]: the bytes written at the
//!   injection address (a syscall instruction followed by a trap), and
//!   [`SYSCALL_TRAP_IP`]: where the instruction pointer is after the trap,
//!   relative to the injection address.
//! - [`sigframe`]: the `rt_sigframe` the parasite loads with `rt_sigreturn`
//!   if its controller disappears (`build`, `SIGRETURN_SP_OFFSET`, `size`).
//! - [`rescue`]: the kill-safe injection's pieces: the byte patterns of a
//!   `syscall; ret` gadget and an `rt_sigreturn` stub to look for in the
//!   task's code, the "home" frame (the seized state) and the "undo" frames
//!   (one syscall each, chained through their stack pointers).
//! - [`vdso_jump`] and [`VDSO_JUMP_LEN`]: the jump a vDSO proxy writes
//!   over each exported function of an image's vDSO.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;
