//! x86_64 specifics of the parasite: the entry stub, raw syscalls, the final
//! `rt_sigreturn` and the syscall numbers the commands use.
//!
//! The entry stub is the first thing in the blob (`.parasite.head`, placed at
//! offset 0 by `parasite.ld`). compel starts the task there with `rdi` = the
//! [`crate::proto::BootArgs`] address and `rsp` = the top of the parasite
//! stack. `parasite_trap` (the `int3` after the call) is only reached if
//! `parasite_main` ever returned, which it does not.

use core::arch::{asm, global_asm};

global_asm!(
    ".section .parasite.head,\"ax\",@progbits",
    ".globl parasite_entry",
    ".type parasite_entry,@function",
    "parasite_entry:",
    "    and rsp, -16",
    "    call parasite_main",
    ".globl parasite_trap",
    "parasite_trap:",
    "    int3",
    "    ud2",
    ".size parasite_entry, . - parasite_entry",
    ".text",
);

pub const NR_CLOSE: usize = 3;
pub const NR_BRK: usize = 12;
pub const NR_RT_SIGACTION: usize = 13;
pub const NR_GETITIMER: usize = 36;
pub const NR_GETPID: usize = 39;
pub const NR_SENDMSG: usize = 46;
pub const NR_RECVMSG: usize = 47;
pub const NR_UMASK: usize = 95;
pub const NR_GETPPID: usize = 110;
pub const NR_GETPGID: usize = 121;
pub const NR_GETSID: usize = 124;
pub const NR_SIGALTSTACK: usize = 131;
pub const NR_PERSONALITY: usize = 135;
pub const NR_PRCTL: usize = 157;
pub const NR_GETTID: usize = 186;

pub use crate::syscall::syscall;

/// Load the prepared frame into the task: `rsp` = `sp`, then `rt_sigreturn`.
/// The kernel restores registers, FPU state, signal mask and sigaltstack
/// from the frame, so the task continues where it was seized.
pub fn sigreturn(sp: u64) -> ! {
    // SAFETY: `sp` points just past `pretcode` of the rt_sigframe compel
    // built; rt_sigreturn does not return to this code.
    unsafe {
        asm!(
            "mov rsp, {sp}",
            "mov eax, 15",
            "syscall",
            "ud2",
            sp = in(reg) sp,
            options(noreturn),
        );
    }
}

/// Stop dead (used only when there is no frame to return to).
pub fn crash() -> ! {
    // SAFETY: ud2 raises SIGILL; it touches no memory.
    unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
}
