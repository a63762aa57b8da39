//! The raw x86_64 system call both blobs (parasite and restorer) make.

use core::arch::asm;

/// A raw system call; the kernel's return value (negative errno on failure).
#[inline(always)]
pub fn syscall(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the `syscall` instruction only clobbers rax (result), rcx and
    // r11; callers pass integers, or pointers into blob memory (stack,
    // buffers, arguments) or into the task's own memory for calls that
    // tolerate faults (EFAULT).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}
