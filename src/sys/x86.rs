//! x86_64 bits read from outside a traced task: its GDT TLS entries
//! (PTRACE_GET_THREAD_AREA); and this CPU's enabled XSAVE features (XCR0).

#![cfg(target_arch = "x86_64")]

use nix::errno::Errno;

const PTRACE_GET_THREAD_AREA: libc::c_uint = 25;

/// struct user_desc.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserDesc {
    pub entry_number: u32,
    pub base_addr: u32,
    pub limit: u32,
    /// seg_32bit:1 contents:2 read_exec_only:1 limit_in_pages:1
    /// seg_not_present:1 useable:1 lm:1
    pub flags: u32,
}

/// The GDT TLS entry `entry` (12..=14) of a ptrace-stopped task.
pub fn get_thread_area(pid: i32, entry: u32) -> Result<UserDesc, Errno> {
    let mut d = UserDesc { entry_number: entry, ..Default::default() };
    // SAFETY: the kernel writes one struct user_desc into `d`, a live local
    // of exactly that layout.
    let r = unsafe { libc::ptrace(PTRACE_GET_THREAD_AREA, pid, entry as usize as *mut libc::c_void, &mut d as *mut UserDesc) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(d)
}

/// XCR0, the XSAVE features the kernel enabled on this CPU; None when the
/// OS has not enabled XSAVE (CPUID.1:ECX.OSXSAVE clear).
pub fn xcr0() -> Option<u64> {
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 27) == 0 {
        return None;
    }
    let (lo, hi): (u32, u32);
    // SAFETY: OSXSAVE is set, so XGETBV is allowed at CPL 3; reading XCR0
    // (ecx = 0) only writes eax and edx, touches no memory and no flags.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    Some(u64::from(hi) << 32 | u64::from(lo))
}
