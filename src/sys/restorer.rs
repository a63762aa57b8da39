//! The unsafe edges of the restore's last stage (`crate::restorer`):
//! writing into the restorer region, switching to its stack and calling the
//! blob, forking the cleaner, and finding glibc's rseq registration.

use std::arch::asm;
use std::ffi::CStr;

use nix::errno::Errno;
use nix::unistd::Pid;

/// x86's rseq signature (glibc's RSEQ_SIG).
const RSEQ_SIG: u32 = 0x5305_3053;
/// The smallest area the rseq syscall accepts (glibc registers at least this).
const RSEQ_MIN_LEN: u32 = 32;

/// Copy `bytes` to address `addr`, inside a writable mapping the caller
/// made for the restorer (no Rust object lives there).
pub fn write_region(addr: u64, bytes: &[u8], region: (u64, u64)) {
    let (start, len) = region;
    assert!(addr >= start && addr + bytes.len() as u64 <= start + len, "write outside the restorer region");
    // SAFETY: [addr, addr + len) lies inside the restorer region (checked
    // above), an anonymous writable mapping this process created with
    // MAP_FIXED_NOREPLACE and references from nowhere else; the source is
    // a live slice that cannot overlap it.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) }
}

/// Switch to the stack ending at `sp` and call the restorer's entry with
/// `arg`. Never returns: the blob ends in rt_sigreturn or exit_group.
pub fn enter(entry: u64, sp: u64, arg: u64) -> ! {
    // SAFETY: `entry` is the relocated restorer blob's entry stub and `sp`
    // the top of its own stack in the same region, both mapped by the
    // caller; the blob never returns into Rust code (it unmaps it), so
    // nothing here relies on the old stack or registers afterwards.
    unsafe {
        asm!(
            "mov rsp, {sp}",
            "xor ebp, ebp",
            "jmp {entry}",
            sp = in(reg) sp,
            entry = in(reg) entry,
            in("rdi") arg,
            options(noreturn),
        )
    }
}

/// Which side of a fork we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// fork(2), from a single-threaded process only (EDEADLK otherwise; see
/// `clone::fork_with_pid`): the restoring process forking the cleaner.
pub fn fork() -> Result<Forked, Errno> {
    if !super::clone::single_threaded() {
        return Err(Errno::EDEADLK);
    }
    // SAFETY: the process was checked to have one thread, so the child's
    // copy of memory has no lock held by a thread that does not exist there.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// _exit(2): leave at once, without exit handlers or destructors (a forked
/// helper must not flush or unlink anything its parent owns).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it does not return.
    unsafe { libc::_exit(code) }
}

fn dlsym(name: &CStr) -> Option<*const u8> {
    // SAFETY: dlsym with RTLD_DEFAULT only looks a name up; `name` is a
    // valid C string.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p as *const u8)
}

/// glibc's rseq registration of this thread: (area, length, signature), or
/// None if glibc did not register one (old glibc, or the tunable is off).
pub fn glibc_rseq() -> Option<(u64, u32, u32)> {
    let off = dlsym(c"__rseq_offset")?;
    let size = dlsym(c"__rseq_size")?;
    // SAFETY: glibc exports `ptrdiff_t __rseq_offset` and `unsigned int
    // __rseq_size` as read-only data; dlsym returned their addresses.
    let (off, size) = unsafe { ((off as *const isize).read(), (size as *const u32).read()) };
    if size == 0 {
        return None;
    }
    let tp: u64;
    // SAFETY: on x86_64 glibc keeps the thread pointer (the TCB's address)
    // at fs:0; reading it has no side effect.
    unsafe { asm!("mov {}, qword ptr fs:0", out(reg) tp, options(nostack, readonly, preserves_flags)) };
    Some((tp.wrapping_add_signed(off as i64), size.max(RSEQ_MIN_LEN), RSEQ_SIG))
}

/// prctl(PR_GET_SECUREBITS).
pub fn securebits() -> Result<u32, Errno> {
    // SAFETY: PR_GET_SECUREBITS takes no pointers.
    let r = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    if r < 0 { Err(Errno::last()) } else { Ok(r as u32) }
}

/// waitpid(pid, &status, __WALL): the raw status (ptrace stops with
/// real-time signals included, which typed wrappers may refuse to decode).
pub fn wait_all(pid: Pid) -> Result<i32, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable int for the call's duration.
    let r = unsafe { libc::waitpid(pid.as_raw(), &mut status, libc::__WALL) };
    if r < 0 { Err(Errno::last()) } else { Ok(status) }
}

/// PTRACE_SYSCALL: resume a ptrace-stopped tracee until the next syscall
/// entry or exit, delivering signal `sig` (0: none).
pub fn ptrace_syscall(pid: Pid, sig: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_SYSCALL takes no pointers (addr unused, data is the
    // signal number).
    let r = unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid.as_raw(), std::ptr::null_mut::<libc::c_void>(), sig as usize as *mut libc::c_void) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}
