//! Probe wrappers: ptrace.

#[allow(unused_imports)]
use super::*;

pub(crate) const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

#[repr(C)]
pub(crate) struct PeekSiginfoArgs {
    off: u64,
    flags: u32,
    nr: i32,
}

/// `PTRACE_PEEKSIGINFO`: how many of up to `max` pending signals (from
/// offset 0; the shared queue when `shared`) were read.
pub fn ptrace_peeksiginfo(pid: Pid, shared: bool, max: usize) -> Res<usize> {
    let mut buf: Vec<MaybeUninit<libc::siginfo_t>> = Vec::with_capacity(max.max(1));
    buf.resize_with(max.max(1), MaybeUninit::uninit);
    let args = PeekSiginfoArgs { off: 0, flags: if shared { 1 } else { 0 }, nr: buf.len() as i32 };
    // SAFETY: `args` is a live ptrace_peeksiginfo_args and `buf` has room
    // for `nr` siginfo_t entries.
    let n = check(unsafe {
        libc::ptrace(libc::PTRACE_PEEKSIGINFO, pid.as_raw(), &args as *const PeekSiginfoArgs, buf.as_mut_ptr())
    })?;
    Ok(n as usize)
}

/// `PTRACE_GETSIGMASK`: the tracee's blocked-signal mask.
pub fn ptrace_getsigmask(pid: Pid) -> Res<u64> {
    let mut mask: u64 = 0;
    // SAFETY: addr is the size of the buffer `data` points at (a local u64).
    check(unsafe {
        libc::ptrace(libc::PTRACE_GETSIGMASK, pid.as_raw(), size_of::<u64>() as libc::c_long, &mut mask as *mut u64)
    })?;
    Ok(mask)
}

/// `PTRACE_SECCOMP_GET_FILTER` with a NULL buffer: the instruction count of
/// filter `index` of the tracee.
pub fn ptrace_seccomp_filter_len(pid: Pid, index: usize) -> Res<usize> {
    // SAFETY: a NULL data pointer makes the kernel only return the length.
    let n = check(unsafe {
        libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid.as_raw(), index as libc::c_long, ptr::null_mut::<libc::c_void>())
    })?;
    Ok(n as usize)
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
pub fn ptrace_get_rseq_conf(pid: Pid) -> Res<(usize, RseqConf)> {
    let mut conf = RseqConf::default();
    // SAFETY: addr is the size of the local `conf` that data points at.
    let n = check(unsafe {
        libc::ptrace(
            libc::PTRACE_GET_RSEQ_CONFIGURATION,
            pid.as_raw(),
            size_of::<RseqConf>() as libc::c_long,
            &mut conf as *mut RseqConf,
        )
    })?;
    Ok((n as usize, conf))
}
