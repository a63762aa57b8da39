//! ptrace(2) requests the parasite engine and the probes need, as safe
//! typed wrappers.
//!
//! Register sets travel as byte buffers or as [`Pod`] values whose size must
//! match what the kernel returns; text words as `u64`. The ptrace calls must
//! come from the thread that seized the task (the kernel's rule).

use std::ffi::c_void;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::pod::{bytes_of, bytes_of_mut, Pod};

pub use super::ret::Res;

/// `NT_PRSTATUS`: general registers.
pub const NT_PRSTATUS: u32 = 1;
/// `NT_X86_XSTATE`: the XSAVE area (x86).
pub const NT_X86_XSTATE: u32 = 0x202;

use super::ret::check;

fn raw(req: libc::c_uint, pid: Pid, addr: usize, data: usize) -> Res<libc::c_long> {
    // SAFETY: callers pass requests whose `addr`/`data` are integers or point
    // at buffers they own for the duration of the call, sized as the request
    // expects (see each wrapper).
    check(unsafe { libc::ptrace(req, pid.as_raw(), addr as *mut c_void, data as *mut c_void) })
}

/// `PTRACE_SEIZE` with `options` (`PTRACE_O_*`).
pub fn seize(pid: Pid, options: libc::c_int) -> Res<()> {
    raw(libc::PTRACE_SEIZE, pid, 0, options as usize).map(drop)
}

/// `PTRACE_SETOPTIONS` (`PTRACE_O_*`).
pub fn set_options(pid: Pid, options: libc::c_int) -> Res<()> {
    raw(libc::PTRACE_SETOPTIONS, pid, 0, options as usize).map(drop)
}

/// `PTRACE_INTERRUPT`.
pub fn interrupt(pid: Pid) -> Res<()> {
    raw(libc::PTRACE_INTERRUPT, pid, 0, 0).map(drop)
}

/// `PTRACE_CONT`, delivering `sig` (0 for none).
pub fn cont(pid: Pid, sig: i32) -> Res<()> {
    raw(libc::PTRACE_CONT, pid, 0, sig as usize).map(drop)
}

/// `PTRACE_SYSCALL`: continue to the next syscall entry or exit, delivering `sig`.
pub fn syscall(pid: Pid, sig: i32) -> Res<()> {
    raw(libc::PTRACE_SYSCALL, pid, 0, sig as usize).map(drop)
}

/// `PTRACE_DETACH`, delivering `sig` (0 for none).
pub fn detach(pid: Pid, sig: i32) -> Res<()> {
    raw(libc::PTRACE_DETACH, pid, 0, sig as usize).map(drop)
}

/// `PTRACE_PEEKTEXT`: the word at `addr`.
pub fn peek(pid: Pid, addr: u64) -> Res<u64> {
    Errno::clear();
    // SAFETY: PEEKTEXT returns the word as the result and takes no buffer.
    let r = unsafe { libc::ptrace(libc::PTRACE_PEEKTEXT, pid.as_raw(), addr as *mut c_void, std::ptr::null_mut::<c_void>()) };
    if r == -1 && Errno::last_raw() != 0 {
        return Err(Errno::last());
    }
    Ok(r as u64)
}

/// `PTRACE_POKETEXT`: store `word` at `addr` (works on read-only text).
pub fn poke(pid: Pid, addr: u64, word: u64) -> Res<()> {
    raw(libc::PTRACE_POKETEXT, pid, addr as usize, word as usize).map(drop)
}

/// `PTRACE_GETREGSET`: fill `buf`, return how many bytes the kernel wrote.
pub fn get_regset(pid: Pid, nt: u32, buf: &mut [u8]) -> Res<usize> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    raw(libc::PTRACE_GETREGSET, pid, nt as usize, &mut iov as *mut libc::iovec as usize)?;
    Ok(iov.iov_len)
}

/// `PTRACE_SETREGSET` from `buf`.
pub fn set_regset(pid: Pid, nt: u32, buf: &[u8]) -> Res<()> {
    // The kernel only reads through iov_base for SETREGSET.
    let mut iov = libc::iovec { iov_base: buf.as_ptr() as *mut c_void, iov_len: buf.len() };
    raw(libc::PTRACE_SETREGSET, pid, nt as usize, &mut iov as *mut libc::iovec as usize).map(drop)
}

/// A register set read as `T`; fails with `EIO` if the kernel's size differs.
pub fn get_regs<T: Pod>(pid: Pid, nt: u32) -> Res<T> {
    let mut v = super::pod::zeroed::<T>();
    let n = get_regset(pid, nt, bytes_of_mut(&mut v))?;
    if n != std::mem::size_of::<T>() {
        return Err(Errno::EIO);
    }
    Ok(v)
}

/// Write a register set from `T`.
pub fn set_regs<T: Pod>(pid: Pid, nt: u32, v: &T) -> Res<()> {
    set_regset(pid, nt, bytes_of(v))
}

/// `PTRACE_GETSIGMASK`: the blocked-signal mask (bit n-1 = signal n).
pub fn get_sigmask(pid: Pid) -> Res<u64> {
    let mut mask: u64 = 0;
    raw(libc::PTRACE_GETSIGMASK, pid, 8, &mut mask as *mut u64 as usize)?;
    Ok(mask)
}

/// `PTRACE_SETSIGMASK` (SIGKILL/SIGSTOP bits are ignored by the kernel).
pub fn set_sigmask(pid: Pid, mask: u64) -> Res<()> {
    raw(libc::PTRACE_SETSIGMASK, pid, 8, &mask as *const u64 as usize).map(drop)
}

/// Signal number and `si_code` of the current stop (`PTRACE_GETSIGINFO`).
pub fn siginfo(pid: Pid) -> Res<(i32, i32)> {
    let si = nix::sys::ptrace::getsiginfo(pid)?;
    Ok((si.si_signo, si.si_code))
}

const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

#[repr(C)]
struct PeekSiginfoArgs {
    off: u64,
    flags: u32,
    nr: i32,
}

/// `PTRACE_PEEKSIGINFO`: how many of up to `max` pending signals (from
/// offset 0; the shared queue when `shared`) were read.
pub fn peeksiginfo(pid: Pid, shared: bool, max: usize) -> Res<usize> {
    let mut buf: Vec<std::mem::MaybeUninit<libc::siginfo_t>> = Vec::with_capacity(max.max(1));
    buf.resize_with(max.max(1), std::mem::MaybeUninit::uninit);
    let args = PeekSiginfoArgs { off: 0, flags: if shared { 1 } else { 0 }, nr: buf.len() as i32 };
    // SAFETY: `args` is a live ptrace_peeksiginfo_args and `buf` has room
    // for `nr` siginfo_t entries.
    let n = check(unsafe {
        libc::ptrace(libc::PTRACE_PEEKSIGINFO, pid.as_raw(), &args as *const PeekSiginfoArgs, buf.as_mut_ptr())
    })?;
    Ok(n as usize)
}

/// `PTRACE_SECCOMP_GET_FILTER` with a NULL buffer: the instruction count of
/// filter `index` of the tracee.
pub fn seccomp_filter_len(pid: Pid, index: usize) -> Res<usize> {
    // SAFETY: a NULL data pointer makes the kernel only return the length.
    let n = check(unsafe {
        libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid.as_raw(), index as libc::c_long, std::ptr::null_mut::<libc::c_void>())
    })?;
    Ok(n as usize)
}

/// `PTRACE_SECCOMP_GET_FILTER`: filter `index` of the tracee (0 is the
/// oldest, the first installed) as its raw `struct sock_filter` bytes
/// (8 per instruction). ENOENT past the newest.
pub fn seccomp_filter(pid: Pid, index: usize) -> Res<Vec<u8>> {
    let n = seccomp_filter_len(pid, index)?;
    let mut buf = vec![0u8; n * 8];
    // SAFETY: the buffer holds the `n` 8-byte instructions the kernel just
    // reported for this filter (a filter never changes once installed).
    let got = check(unsafe {
        libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid.as_raw(), index as libc::c_long, buf.as_mut_ptr().cast::<libc::c_void>())
    })? as usize;
    buf.truncate(got.min(n) * 8);
    Ok(buf)
}

const PTRACE_SECCOMP_GET_METADATA: libc::c_uint = 0x420d;

/// `PTRACE_SECCOMP_GET_METADATA`: the `SECCOMP_FILTER_FLAG_*` flags filter
/// `index` of the tracee was installed with (those the kernel keeps:
/// LOG). EIO on kernels without it.
pub fn seccomp_filter_flags(pid: Pid, index: usize) -> Res<u64> {
    let mut meta = [index as u64, 0u64];
    // SAFETY: addr is the size of `struct seccomp_metadata` (filter_off,
    // flags), which data points at.
    check(unsafe { libc::ptrace(PTRACE_SECCOMP_GET_METADATA, pid.as_raw(), 16 as libc::c_long, meta.as_mut_ptr()) })?;
    Ok(meta[1])
}

/// `struct ptrace_rseq_configuration`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqConf {
    pub rseq_abi_pointer: u64,
    pub rseq_abi_size: u32,
    pub signature: u32,
    pub flags: u32,
    pub pad: u32,
}

/// `PTRACE_GET_RSEQ_CONFIGURATION`: (bytes the kernel wrote, config).
pub fn get_rseq_conf(pid: Pid) -> Res<(usize, RseqConf)> {
    let mut conf = RseqConf::default();
    // SAFETY: addr is the size of the local `conf` that data points at.
    let n = check(unsafe {
        libc::ptrace(
            libc::PTRACE_GET_RSEQ_CONFIGURATION,
            pid.as_raw(),
            std::mem::size_of::<RseqConf>() as libc::c_long,
            &mut conf as *mut RseqConf,
        )
    })?;
    Ok((n as usize, conf))
}

const _: () = assert!(std::mem::size_of::<RseqConf>() == 24);
const _: () = assert!(std::mem::size_of::<PeekSiginfoArgs>() == 16);
