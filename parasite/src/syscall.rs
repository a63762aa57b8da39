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

/// A system call through the 32-bit entry (`int 0x80`) with one argument,
/// for the i386-only calls (set_thread_area); pointers must lie below 4 GiB.
/// The kernel's 32-bit return value, sign-extended.
/// (Only the restorer uses it; the parasite shares this module.)
#[inline(always)]
#[allow(dead_code)]
pub fn syscall32_1(nr: usize, a: usize) -> isize {
    let ret: usize;
    // SAFETY: `int 0x80` returns in eax and may clobber r8-r11; ebx (the
    // argument, which the compiler cannot name) is swapped in and back.
    // Callers pass a pointer to blob-owned memory below 4 GiB.
    unsafe {
        asm!(
            "xchg {a}, rbx",
            "int 0x80",
            "xchg {a}, rbx",
            a = inout(reg) a => _,
            inlateout("rax") nr => ret,
            lateout("r8") _,
            lateout("r9") _,
            lateout("r10") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret as u32 as i32 as isize
}
