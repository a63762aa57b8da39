//! Syscall wrappers for the kernel feature probes (`kerndat`, `criu check`).
//!
//! Everything exported here is safe to call: pointers handed to the kernel
//! point at locals or at memory this module owns, new descriptors come back
//! as `OwnedFd`, and code that runs in a forked (or cloned) child only makes
//! raw syscalls before `_exit()`, so it never touches a lock another thread
//! of the parent might have held at fork time.

use std::ffi::CStr;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Result of a raw syscall: the value, or the errno it failed with.
pub type Res<T> = Result<T, Errno>;

/// Page size the probes assume (x86_64, aarch64 4K kernels).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as usize } else { 4096 }
}

fn check(ret: libc::c_long) -> Res<libc::c_long> {
    if ret == -1 { Err(Errno::last()) } else { Ok(ret) }
}

fn check_int(ret: libc::c_int) -> Res<libc::c_int> {
    if ret == -1 { Err(Errno::last()) } else { Ok(ret) }
}

fn own_fd(ret: libc::c_long) -> Res<OwnedFd> {
    let fd = check(ret)?;
    // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn errno_now() -> libc::c_int {
    Errno::last_raw()
}

/// `_exit()` for forked children: no atexit handlers, no stdio flush.
fn child_exit(code: i32) -> ! {
    // SAFETY: _exit never returns and only ends this (child) process.
    unsafe { libc::_exit(code) }
}

fn raw_syscall0(nr: libc::c_long) -> libc::c_long {
    // SAFETY: the syscalls passed here (getpid, gettid) take no arguments.
    unsafe { libc::syscall(nr) }
}

// ---------------------------------------------------------------------------
// Anonymous memory
// ---------------------------------------------------------------------------

/// A private anonymous mapping owned by this value, unmapped on drop.
#[derive(Debug)]
pub struct AnonMap {
    addr: usize,
    len: usize,
    writable: bool,
    /// Pages turned into guard regions (never touched again).
    guarded: Vec<bool>,
}

impl AnonMap {
    /// Map `pages` read-write pages.
    pub fn rw(pages: usize) -> Res<Self> {
        Self::new(pages, libc::PROT_READ | libc::PROT_WRITE)
    }

    /// Map `pages` pages with the given protection.
    pub fn new(pages: usize, prot: libc::c_int) -> Res<Self> {
        let len = pages * page_size();
        // SAFETY: a fresh anonymous mapping at an address the kernel picks
        // overlaps nothing this process uses.
        let p = unsafe { libc::mmap(ptr::null_mut(), len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Self { addr: p as usize, len, writable: prot & libc::PROT_WRITE != 0, guarded: vec![false; pages] })
    }

    pub fn addr(&self) -> usize {
        self.addr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Write one byte at `off` (faults the page in, sets its dirty bits).
    pub fn touch(&self, off: usize, val: u8) -> Res<()> {
        if off >= self.len || !self.writable || self.guarded[off / page_size()] {
            return Err(Errno::EFAULT);
        }
        // SAFETY: `off` is inside our own read-write mapping and the page is
        // not a guard page; volatile so the store really happens.
        unsafe { ptr::write_volatile((self.addr + off) as *mut u8, val) };
        Ok(())
    }

    /// Read one byte at `off`.
    pub fn read(&self, off: usize) -> Res<u8> {
        if off >= self.len || !self.writable || self.guarded[off / page_size()] {
            return Err(Errno::EFAULT);
        }
        // SAFETY: as in `touch`, the address is inside our readable mapping.
        Ok(unsafe { ptr::read_volatile((self.addr + off) as *const u8) })
    }

    /// `madvise(MADV_GUARD_INSTALL)` on one page (Linux 6.13+).
    pub fn guard_page(&mut self, page: usize) -> Res<()> {
        const MADV_GUARD_INSTALL: libc::c_int = 102;
        if page >= self.guarded.len() {
            return Err(Errno::EINVAL);
        }
        let ps = page_size();
        // SAFETY: the range is one page of our own mapping; afterwards
        // `touch`/`read` refuse that page.
        check_int(unsafe { libc::madvise((self.addr + page * ps) as *mut libc::c_void, ps, MADV_GUARD_INSTALL) })?;
        self.guarded[page] = true;
        Ok(())
    }
}

impl Drop for AnonMap {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and nothing refers to it after drop.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// A shared mapping of (the start of) a file, never read or written
/// through; unmapped on drop. Used to see how /proc/PID/maps names it.
#[derive(Debug)]
pub struct FileMap {
    addr: usize,
    len: usize,
}

impl FileMap {
    pub fn shared(fd: BorrowedFd<'_>, len: usize) -> Res<Self> {
        // SAFETY: a new mapping at a kernel-chosen address; Rust code never
        // dereferences it, so the file changing underneath can't matter.
        let p = unsafe {
            libc::mmap(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0)
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Self { addr: p as usize, len })
    }

    pub fn addr(&self) -> usize {
        self.addr
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and nothing refers to it after drop.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

// ---------------------------------------------------------------------------
// userfaultfd
// ---------------------------------------------------------------------------

pub const UFFD_API: u64 = 0xAA;
pub const UFFD_FEATURE_PAGEFAULT_FLAG_WP: u64 = 1 << 0;
pub const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
pub const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
pub const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
pub const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
pub const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;

const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

/// What `UFFDIO_API` answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UffdApi {
    pub features: u64,
    pub ioctls: u64,
}

/// `userfaultfd(flags)`.
pub fn userfaultfd(flags: libc::c_int) -> Res<OwnedFd> {
    // SAFETY: plain syscall with an integer argument.
    own_fd(unsafe { libc::syscall(libc::SYS_userfaultfd, flags) })
}

/// `UFFDIO_API` handshake asking for `features`; returns what the kernel offers.
pub fn uffdio_api(fd: BorrowedFd<'_>, features: u64) -> Res<UffdApi> {
    let mut arg = UffdioApi { api: UFFD_API, features, ioctls: 0 };
    // SAFETY: `arg` is a live, correctly laid out uffdio_api.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_API as _, &mut arg as *mut UffdioApi) })?;
    if arg.api != UFFD_API {
        return Err(Errno::EPROTO);
    }
    Ok(UffdApi { features: arg.features, ioctls: arg.ioctls })
}

/// Register `map` for write-protect tracking. Only use with
/// `UFFD_FEATURE_WP_ASYNC`, or writes to the range block until resolved.
pub fn uffdio_register_wp(fd: BorrowedFd<'_>, map: &AnonMap) -> Res<u64> {
    let mut arg =
        UffdioRegister { start: map.addr() as u64, len: map.len() as u64, mode: UFFDIO_REGISTER_MODE_WP, ioctls: 0 };
    // SAFETY: `arg` is a live uffdio_register naming our own mapping.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_REGISTER as _, &mut arg as *mut UffdioRegister) })?;
    Ok(arg.ioctls)
}

// ---------------------------------------------------------------------------
// PAGEMAP_SCAN
// ---------------------------------------------------------------------------

pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
pub const PAGE_IS_WPALLOWED: u64 = 1 << 0;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_FILE: u64 = 1 << 2;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;
pub const PAGE_IS_HUGE: u64 = 1 << 6;
pub const PAGE_IS_SOFT_DIRTY: u64 = 1 << 7;
pub const PAGE_IS_GUARD: u64 = 1 << 8;

const PAGEMAP_SCAN: libc::c_ulong = 0xc060_6610;

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// One `struct page_region` the kernel fills.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

/// The inputs of one `PAGEMAP_SCAN` ioctl.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanRequest {
    pub flags: u64,
    pub start: u64,
    pub end: u64,
    pub max_pages: u64,
    pub category_inverted: u64,
    pub category_mask: u64,
    pub category_anyof_mask: u64,
    pub return_mask: u64,
}

/// `ioctl(pagemap_fd, PAGEMAP_SCAN)`: fills `out`, returns (regions, walk_end).
pub fn pagemap_scan(fd: BorrowedFd<'_>, req: &ScanRequest, out: &mut [PageRegion]) -> Res<(usize, u64)> {
    let mut arg = PmScanArg {
        size: size_of::<PmScanArg>() as u64,
        flags: req.flags,
        start: req.start,
        end: req.end,
        walk_end: 0,
        vec: if out.is_empty() { 0 } else { out.as_mut_ptr() as u64 },
        vec_len: out.len() as u64,
        max_pages: req.max_pages,
        category_inverted: req.category_inverted,
        category_mask: req.category_mask,
        category_anyof_mask: req.category_anyof_mask,
        return_mask: req.return_mask,
    };
    // SAFETY: `arg` is a live pm_scan_arg; `vec`/`vec_len` describe `out`,
    // which the kernel fills with at most `vec_len` page_region entries.
    let n = check_int(unsafe { libc::ioctl(fd.as_raw_fd(), PAGEMAP_SCAN as _, &mut arg as *mut PmScanArg) })?;
    Ok((n as usize, arg.walk_end))
}

// ---------------------------------------------------------------------------
// ptrace
// ---------------------------------------------------------------------------

const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

#[repr(C)]
struct PeekSiginfoArgs {
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

// ---------------------------------------------------------------------------
// Forked helpers
// ---------------------------------------------------------------------------

/// Fork; the child runs `child` (raw syscalls only) and `_exit`s with its
/// return value. Returns the child's wait status.
fn fork_run(child: impl FnOnce() -> i32) -> Res<WaitStatus> {
    // SAFETY: the child only runs `child`, which every caller in this file
    // limits to raw syscalls on memory prepared before the fork, then exits.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => child_exit(child()),
        nix::unistd::ForkResult::Parent { child } => wait_for(child),
    }
}

/// waitpid() that retries on EINTR.
pub fn wait_for(pid: Pid) -> Res<WaitStatus> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Exit code of a child that exited normally; None if it was killed.
pub fn exit_code(st: &WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, code) => Some(*code),
        _ => None,
    }
}

/// Seccomp filter program: kill on ptrace(), allow everything else.
fn ptrace_kill_filter() -> [libc::sock_filter; 4] {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_KILL: u32 = 0;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    [
        libc::sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: BPF_JMP_JEQ_K, jt: 0, jf: 1, k: libc::SYS_ptrace as u32 },
        libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL },
        libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW },
    ]
}

/// A forked child parked in `pause()`; SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct Sleeper {
    pid: Pid,
}

impl Sleeper {
    /// Fork a child that (optionally after installing a seccomp filter that
    /// kills it on `ptrace()`) reports ready and sleeps.
    pub fn spawn(with_seccomp_filter: bool) -> Res<Self> {
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let filter = ptrace_kill_filter();
        let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
        let wfd = wr.as_raw_fd();
        // SAFETY: the child only makes raw syscalls (prctl, write, pause) on
        // data prepared before the fork and never returns.
        let pid = match unsafe { nix::unistd::fork() }? {
            nix::unistd::ForkResult::Child => {
                if with_seccomp_filter {
                    // SAFETY: prctl with integer args / a pointer to `prog`,
                    // which lives in this child's copy of the stack.
                    let ok = unsafe {
                        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                            && libc::prctl(
                                libc::PR_SET_SECCOMP,
                                libc::SECCOMP_MODE_FILTER,
                                &prog as *const libc::sock_fprog,
                                0,
                                0,
                            ) == 0
                    };
                    if !ok {
                        child_exit(1);
                    }
                }
                let b = [1u8];
                // SAFETY: writes one byte from a local buffer.
                if unsafe { libc::write(wfd, b.as_ptr().cast(), 1) } != 1 {
                    child_exit(1);
                }
                loop {
                    // SAFETY: pause has no arguments.
                    unsafe { libc::pause() };
                }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        };
        drop(wr);
        let me = Self { pid };
        if let Err(e) = wait_readable(&rd, pid) {
            if e == Errno::ECHILD {
                // Already reaped: its pid may be reused, never kill it.
                std::mem::forget(me);
            }
            return Err(e);
        }
        let mut b = [0u8; 1];
        match nix::unistd::read(&rd, &mut b) {
            Ok(1) => Ok(me),
            Ok(_) => Err(Errno::ECHILD),
            Err(e) => Err(e),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The caller already reaped this child (a wait returned its exit):
    /// drop it without signalling a pid that may now be someone else's.
    pub fn forget_reaped(self) {
        std::mem::forget(self);
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        let _ = wait_for(self.pid);
    }
}

/// Wait (up to 10 s) until `fd` is readable, failing early if `pid` died.
fn wait_readable(fd: &OwnedFd, pid: Pid) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, 100) };
        if r > 0 {
            return Ok(());
        }
        if r < 0 && Errno::last() != Errno::EINTR {
            return Err(Errno::last());
        }
        // The child is reaped here if it died: the caller must not signal
        // that pid again.
        if let Ok(st) = waitpid(pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL))
            && !matches!(st, WaitStatus::StillAlive)
        {
            return Err(Errno::ECHILD);
        }
        if Instant::now() > deadline {
            return Err(Errno::ETIMEDOUT);
        }
    }
}

extern "C" fn noop_handler(_: libc::c_int) {}

/// In a forked child: move the given special mappings (start, end) to a new
/// place keeping their relative layout, then send itself SIGUSR1 (handled)
/// and exit 0. A kernel that loses track of moved vDSO/sigpage kills the
/// child on signal return.
pub fn special_mappings_mremap_child(ranges: &[(usize, usize)]) -> Res<WaitStatus> {
    if ranges.is_empty() {
        return Err(Errno::EINVAL);
    }
    let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let ranges: Vec<(usize, usize)> = ranges.to_vec();
    fork_run(move || {
        // SAFETY (whole child): raw syscalls on our private copy of the
        // address space; nothing but this code runs afterwards.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = noop_handler as *const () as usize;
            if libc::sigaction(libc::SIGUSR1, &sa, ptr::null_mut()) != 0 {
                return 2;
            }
            let park =
                libc::mmap(ptr::null_mut(), hi - lo, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
            if park == libc::MAP_FAILED {
                return 3;
            }
            for &(s, e) in &ranges {
                let dst = park as usize + (s - lo);
                let r =
                    libc::syscall(libc::SYS_mremap, s, e - s, e - s, libc::MREMAP_FIXED | libc::MREMAP_MAYMOVE, dst);
                if r as usize != dst {
                    return 1;
                }
            }
            let me = raw_syscall0(libc::SYS_getpid);
            libc::syscall(libc::SYS_kill, me, libc::SIGUSR1);
        }
        0
    })
}

/// In a forked child: `arch_prctl(ARCH_MAP_VDSO_32)`. Exit 1 when the API
/// exists (mapped, or refused because a vDSO is already mapped), 0 if not.
#[cfg(target_arch = "x86_64")]
pub fn arch_map_vdso32_child() -> Res<WaitStatus> {
    const ARCH_MAP_VDSO_32: libc::c_long = 0x2002;
    fork_run(|| {
        // SAFETY: arch_prctl with integer arguments in our own child.
        let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_MAP_VDSO_32, 0 as libc::c_long) };
        if r == 0 || errno_now() == libc::EEXIST { 1 } else { 0 }
    })
}

/// In a forked child: reset soft-dirty bits (`clear_refs` 4), dirty a page
/// and read its pagemap entry. Exit 0: soft-dirty bit seen; 2: not
/// supported; 1: error.
pub fn soft_dirty_child() -> Res<WaitStatus> {
    let ps = page_size();
    fork_run(move || {
        const PM_SOFT_DIRTY: u64 = 1 << 55;
        // SAFETY (whole child): raw syscalls on local buffers and a page
        // mapped here.
        unsafe {
            let map = libc::mmap(
                ptr::null_mut(),
                ps,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if map == libc::MAP_FAILED {
                return 1;
            }
            let cr = libc::open(c"/proc/self/clear_refs".as_ptr(), libc::O_WRONLY);
            if cr < 0 {
                return 1;
            }
            if libc::write(cr, b"4".as_ptr().cast(), 1) != 1 {
                return if errno_now() == libc::EINVAL { 2 } else { 1 };
            }
            libc::close(cr);
            ptr::write_volatile(map as *mut u8, 1);
            let pm = libc::open(c"/proc/self/pagemap".as_ptr(), libc::O_RDONLY);
            if pm < 0 {
                return 1;
            }
            let mut ent: u64 = 0;
            let off = (map as usize / ps * 8) as libc::off_t;
            if libc::pread(pm, (&mut ent as *mut u64).cast(), 8, off) != 8 {
                return 1;
            }
            if ent & PM_SOFT_DIRTY != 0 { 0 } else { 2 }
        }
    })
}

/// In a forked child: unset the audit loginuid, then set it back to
/// `saved` (decimal bytes). Exit 0 on success, 1 if a write failed.
pub fn loginuid_child(saved: &[u8]) -> Res<WaitStatus> {
    let saved = saved.to_vec();
    fork_run(move || {
        let unset = b"4294967295";
        for val in [&unset[..], &saved[..]] {
            // SAFETY: raw open/write/close on local buffers.
            unsafe {
                let fd = libc::open(c"/proc/self/loginuid".as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return 1;
                }
                if libc::write(fd, val.as_ptr().cast(), val.len()) != val.len() as isize {
                    return 1;
                }
                libc::close(fd);
            }
        }
        0
    })
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// CRIU's cheap clone3() probe: an invalid `set_tid` pointer with a zero
/// size. Returns the errno (EINVAL: set_tid known, E2BIG: clone3 without
/// set_tid, ENOSYS: no clone3). Never creates a process.
pub fn clone3_set_tid_errno() -> Errno {
    let args = CloneArgs { set_tid: u64::MAX, ..Default::default() };
    // SAFETY: the kernel rejects these arguments before creating anything.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
    if r == -1 {
        Errno::last()
    } else {
        // Unexpected success: should be impossible; treat as a child that
        // must leave at once.
        if r == 0 {
            child_exit(0);
        }
        let _ = wait_for(Pid::from_raw(r as i32));
        Errno::UnknownErrno
    }
}

/// clone3(CLONE_NEWPID) asking for `tid` as the child's pid in the new
/// namespace. The child exits 0 when getpid() == tid. Returns the child's
/// pid in our namespace and its wait status.
pub fn clone3_newpid_set_tid(tid: libc::pid_t) -> Res<(Pid, WaitStatus)> {
    let tids = [tid];
    let args = CloneArgs {
        flags: libc::CLONE_NEWPID as u64,
        exit_signal: libc::SIGCHLD as u64,
        set_tid: tids.as_ptr() as u64,
        set_tid_size: 1,
        ..Default::default()
    };
    // SAFETY: without CLONE_VM the child runs on a private copy of this
    // stack, like fork(); it only makes raw syscalls and exits.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
    if r == 0 {
        let me = raw_syscall0(libc::SYS_getpid);
        child_exit(if me == tid as libc::c_long { 0 } else { 1 });
    }
    let pid = Pid::from_raw(check(r)? as i32);
    Ok((pid, wait_for(pid)?))
}

/// From a forked intermediate child, clone(CLONE_NEWPID | CLONE_PARENT):
/// the grandchild becomes our child. Returns Ok(true) if the clone worked
/// (both children reaped), Ok(false) if the kernel refused it.
pub fn clone_parent_newpid() -> Res<bool> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let wfd = wr.as_raw_fd();
    let st = fork_run(move || {
        let flags = (libc::CLONE_NEWPID | libc::CLONE_PARENT) as libc::c_long;
        // SAFETY: fork-like clone (no CLONE_VM, no new stack): the
        // grandchild continues on a private copy and exits at once.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags,
                0 as libc::c_long,
                0 as libc::c_long,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        };
        if r == 0 {
            child_exit(0);
        }
        let pid = r as i32;
        let bytes = pid.to_ne_bytes();
        // SAFETY: writes 4 bytes from a local buffer.
        unsafe { libc::write(wfd, bytes.as_ptr().cast(), 4) };
        if r < 0 { 1 } else { 0 }
    })?;
    drop(wr);
    let mut b = [0u8; 4];
    let n = nix::unistd::read(&rd, &mut b)?;
    let pid = if n == 4 { i32::from_ne_bytes(b) } else { -1 };
    if pid > 0 {
        let _ = wait_for(Pid::from_raw(pid));
    }
    Ok(exit_code(&st) == Some(0) && pid > 0)
}

// ---------------------------------------------------------------------------
// Plain syscalls
// ---------------------------------------------------------------------------

pub const KCMP_FILE: libc::c_int = 0;
pub const KCMP_VM: libc::c_int = 1;
pub const KCMP_EPOLL_TFD: libc::c_int = 7;

/// `kcmp(pid1, pid2, type, idx1, idx2)`: 0 equal, 1/2 ordered, 3 different.
pub fn kcmp(pid1: Pid, pid2: Pid, kind: libc::c_int, idx1: u64, idx2: u64) -> Res<i32> {
    // SAFETY: integer-only arguments for these kcmp types.
    Ok(check(unsafe { libc::syscall(libc::SYS_kcmp, pid1.as_raw(), pid2.as_raw(), kind, idx1, idx2) })? as i32)
}

#[repr(C)]
struct KcmpEpollSlot {
    efd: u32,
    tfd: u32,
    toff: u32,
}

/// `kcmp(pid, pid, KCMP_EPOLL_TFD, fd, &{efd, tfd, toff})`.
pub fn kcmp_epoll_tfd(pid: Pid, fd: RawFd, efd: RawFd, tfd: RawFd, toff: u32) -> Res<i32> {
    let slot = KcmpEpollSlot { efd: efd as u32, tfd: tfd as u32, toff };
    // SAFETY: idx2 points at a live kcmp_epoll_slot.
    Ok(check(unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid.as_raw(),
            pid.as_raw(),
            KCMP_EPOLL_TFD,
            fd as libc::c_ulong,
            &slot as *const KcmpEpollSlot,
        )
    })? as i32)
}

/// `pidfd_open(pid, flags)`.
pub fn pidfd_open(pid: Pid, flags: libc::c_uint) -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), flags) })
}

/// `pidfd_getfd(pidfd, targetfd, 0)`: a duplicate of another task's fd.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, target: RawFd) -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0 as libc::c_uint) })
}

/// `openat2(dirfd, path, {flags, mode, resolve})`.
pub fn openat2(dir: Option<BorrowedFd<'_>>, path: &CStr, flags: u64, resolve: u64) -> Res<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow { flags, mode: 0, resolve };
    let dfd = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    // SAFETY: path is NUL-terminated and `how` is a live open_how.
    own_fd(unsafe {
        libc::syscall(libc::SYS_openat2, dfd, path.as_ptr(), &how as *const OpenHow, size_of::<OpenHow>())
    })
}

/// Queue `sig` with a caller-chosen `si_code` to this very thread
/// (rt_tgsigqueueinfo) while it is blocked here, then take it back with
/// sigtimedwait(). Returns the si_code that came back. The signal never
/// reaches a handler: it is blocked on this thread and thread-directed.
pub fn sigqueue_self_roundtrip(sig: Signal, code: i32) -> Res<i32> {
    let mut set = SigSet::empty();
    set.add(sig);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))?;
    let result = (|| {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        info.si_signo = sig as i32;
        info.si_code = code;
        let tgid = nix::unistd::getpid().as_raw();
        let tid = nix::unistd::gettid().as_raw();
        // SAFETY: `info` is a live siginfo_t for the kernel to copy.
        check(unsafe {
            libc::syscall(libc::SYS_rt_tgsigqueueinfo, tgid, tid, sig as i32, &info as *const libc::siginfo_t)
        })?;
        // SAFETY: zeroed siginfo_t/timespec are valid; sigtimedwait fills `got`.
        let mut got: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let ts = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        // SAFETY: all pointers are to live locals.
        check_int(unsafe { libc::sigtimedwait(set.as_ref(), &mut got, &ts) })?;
        Ok(got.si_code)
    })();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}

/// An AIO context (io_setup), destroyed on drop.
#[derive(Debug)]
pub struct AioCtx {
    ctx: u64,
}

impl AioCtx {
    pub fn setup(nr_events: u32) -> Res<Self> {
        let mut ctx: u64 = 0;
        // SAFETY: io_setup writes the context id into the local `ctx`.
        check(unsafe { libc::syscall(libc::SYS_io_setup, nr_events, &mut ctx as *mut u64) })?;
        Ok(Self { ctx })
    }

    /// The context id, which is also the ring's address.
    pub fn id(&self) -> u64 {
        self.ctx
    }

    /// Move the `len`-byte ring to a fresh place with mremap().
    pub fn remap(&mut self, len: usize) -> Res<()> {
        // SAFETY: reserve a fresh anonymous area for the ring to move onto.
        let dst = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if dst == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        // SAFETY: moves the kernel-owned ring (never referenced from Rust)
        // over the area we just reserved.
        let r = unsafe {
            libc::syscall(libc::SYS_mremap, self.ctx, len, len, libc::MREMAP_FIXED | libc::MREMAP_MAYMOVE, dst as usize)
        };
        if r as usize != dst as usize {
            let e = Errno::last();
            // SAFETY: unmap the reservation we made above.
            unsafe { libc::munmap(dst, len) };
            return Err(e);
        }
        self.ctx = dst as u64;
        Ok(())
    }

    /// io_getevents(ctx, 0, 1, NULL, NULL): does the kernel still find the ring?
    pub fn getevents_nowait(&self) -> Res<i64> {
        // SAFETY: with min_nr and nr both 0 the kernel copies no events, so
        // the NULL events and timeout pointers are never dereferenced.
        Ok(check(unsafe {
            libc::syscall(
                libc::SYS_io_getevents,
                self.ctx,
                0 as libc::c_long,
                0 as libc::c_long,
                ptr::null_mut::<libc::c_void>(),
                ptr::null_mut::<libc::c_void>(),
            )
        })? as i64)
    }
}

impl Drop for AioCtx {
    fn drop(&mut self) {
        // SAFETY: destroys our own context; the kernel unmaps the ring.
        unsafe { libc::syscall(libc::SYS_io_destroy, self.ctx) };
    }
}

/// `timerfd_create(CLOCK_MONOTONIC)` (outer result) then
/// `ioctl(TFD_IOC_SET_TICKS, NULL)` (inner result): EFAULT means the C/R
/// ioctl exists.
pub fn timerfd_set_ticks_null() -> Res<Res<()>> {
    const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400;
    // SAFETY: integer-only arguments.
    let fd = own_fd(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) } as libc::c_long)?;
    // SAFETY: a NULL argument is never written through; the kernel fails
    // the copy with EFAULT.
    Ok(check_int(unsafe { libc::ioctl(fd.as_raw_fd(), TFD_IOC_SET_TICKS as _, ptr::null_mut::<u64>()) }).map(|_| ()))
}

/// `eventfd(initval, EFD_CLOEXEC)`.
pub fn eventfd(initval: u32) -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::eventfd(initval, libc::EFD_CLOEXEC) } as libc::c_long)
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn epoll_create() -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) } as libc::c_long)
}

/// `epoll_ctl(ADD)` of `fd` with `events` and user data `data`.
pub fn epoll_add(epfd: BorrowedFd<'_>, fd: BorrowedFd<'_>, events: u32, data: u64) -> Res<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a live epoll_event.
    check_int(unsafe { libc::epoll_ctl(epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) })?;
    Ok(())
}

/// `inotify_init1(IN_CLOEXEC)`.
pub fn inotify_init() -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) } as libc::c_long)
}

/// `inotify_add_watch(fd, path, mask)`: the watch descriptor.
pub fn inotify_add_watch(fd: BorrowedFd<'_>, path: &CStr, mask: u32) -> Res<i32> {
    // SAFETY: path is NUL-terminated.
    check_int(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) })
}

/// `ioctl(inotify_fd, INOTIFY_IOC_SETNEXTWD, wd)`.
pub fn inotify_set_next_wd(fd: BorrowedFd<'_>, wd: i32) -> Res<()> {
    const INOTIFY_IOC_SETNEXTWD: libc::c_ulong = 0x4004_4900;
    // SAFETY: the argument is passed by value.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), INOTIFY_IOC_SETNEXTWD as _, wd as libc::c_long) })?;
    Ok(())
}

/// vmsplice() one unaligned byte (from a private page that is unmapped
/// right after) into `pipe_wr` with SPLICE_F_GIFT | SPLICE_F_NONBLOCK.
pub fn vmsplice_unaligned_byte(pipe_wr: BorrowedFd<'_>) -> Res<usize> {
    let page = AnonMap::rw(1)?;
    page.touch(1, 0x5a)?;
    let iov = libc::iovec { iov_base: (page.addr() + 1) as *mut libc::c_void, iov_len: 1 };
    // SAFETY: the iovec names one byte of our own mapping, which is never
    // written again and is unmapped when `page` drops.
    let n = check(unsafe {
        libc::vmsplice(pipe_wr.as_raw_fd(), &iov, 1, libc::SPLICE_F_GIFT | libc::SPLICE_F_NONBLOCK) as libc::c_long
    })?;
    Ok(n as usize)
}

/// `prctl(PR_GET_TID_ADDRESS)`: this thread's clear_child_tid address.
pub fn prctl_get_tid_address() -> Res<usize> {
    let mut addr: usize = 0;
    // SAFETY: the kernel stores one pointer into the local `addr`.
    check_int(unsafe { libc::prctl(libc::PR_GET_TID_ADDRESS, &mut addr as *mut usize, 0, 0, 0) })?;
    Ok(addr)
}

/// `prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE)`: sizeof(struct prctl_mm_map).
pub fn prctl_mm_map_size() -> Res<u32> {
    const PR_SET_MM_MAP_SIZE: libc::c_ulong = 15;
    let mut size: u32 = 0;
    // SAFETY: the kernel stores one u32 into the local `size`.
    check_int(unsafe {
        libc::prctl(libc::PR_SET_MM, PR_SET_MM_MAP_SIZE, &mut size as *mut u32, 0 as libc::c_ulong, 0 as libc::c_ulong)
    })?;
    Ok(size)
}

/// `prctl(PR_TIMER_CREATE_RESTORE_IDS, GET)`.
pub fn prctl_timer_restore_ids_get() -> Res<i32> {
    const PR_TIMER_CREATE_RESTORE_IDS: libc::c_int = 77;
    const GET: libc::c_ulong = 2;
    // SAFETY: integer-only arguments.
    check_int(unsafe {
        libc::prctl(PR_TIMER_CREATE_RESTORE_IDS, GET, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong)
    })
}

/// `fcntl(fd, F_GETOWNER_UIDS)`: [uid, euid] of the F_SETOWN owner.
pub fn fcntl_getowner_uids(fd: BorrowedFd<'_>) -> Res<[u32; 2]> {
    const F_GETOWNER_UIDS: libc::c_int = 17;
    let mut v = [0u32; 2];
    // SAFETY: the kernel stores two u32 into the local array.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), F_GETOWNER_UIDS, v.as_mut_ptr()) })?;
    Ok(v)
}

/// `ioctl(ptmx, TIOCSPTLCK, &lock)`.
pub fn tty_set_pty_lock(fd: BorrowedFd<'_>, lock: bool) -> Res<()> {
    let v: libc::c_int = lock as libc::c_int;
    // SAFETY: the kernel reads one int from the local `v`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSPTLCK as _, &v as *const libc::c_int) })?;
    Ok(())
}

/// `ioctl(ptmx, TIOCGPTN)`: the pty index (/dev/pts/N).
pub fn tty_pty_number(fd: BorrowedFd<'_>) -> Res<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: the kernel stores one unsigned int into the local `n`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN as _, &mut n as *mut libc::c_uint) })?;
    Ok(n)
}

/// `ioctl(tun_fd, TUNSETIFINDEX, &idx)`.
pub fn tun_set_ifindex(fd: BorrowedFd<'_>, idx: u32) -> Res<()> {
    const TUNSETIFINDEX: libc::c_ulong = 0x4004_54da;
    let v = idx;
    // SAFETY: the kernel reads one u32 from the local `v`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFINDEX as _, &v as *const u32) })?;
    Ok(())
}

/// `ioctl(sock, SIOCGSKNS)`: an fd of the socket's network namespace.
pub fn socket_netns(fd: BorrowedFd<'_>) -> Res<OwnedFd> {
    const SIOCGSKNS: libc::c_ulong = 0x894c;
    // SAFETY: no argument; the return value is a new fd.
    own_fd(unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSKNS as _) } as libc::c_long)
}

/// `ioctl(unix_sock, SIOCUNIXFILE)`: an O_PATH fd of the bound socket file.
pub fn unix_socket_file(fd: BorrowedFd<'_>) -> Res<OwnedFd> {
    const SIOCUNIXFILE: libc::c_ulong = 0x89e0;
    // SAFETY: no argument; the return value is a new fd.
    own_fd(unsafe { libc::ioctl(fd.as_raw_fd(), SIOCUNIXFILE as _) } as libc::c_long)
}

/// `getsockopt()` into `buf`; returns the length the kernel reported.
pub fn getsockopt_bytes(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, buf: &mut [u8]) -> Res<usize> {
    let mut len = buf.len() as libc::socklen_t;
    let p = if buf.is_empty() { ptr::null_mut() } else { buf.as_mut_ptr().cast() };
    // SAFETY: `p`/`len` describe `buf` (or NULL/0).
    check_int(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, p, &mut len) })?;
    Ok(len as usize)
}

/// `getsockopt()` of an int option: (value, reported length).
pub fn getsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> Res<(i32, usize)> {
    let mut buf = [0u8; 4];
    let len = getsockopt_bytes(fd, level, name, &mut buf)?;
    Ok((i32::from_ne_bytes(buf), len))
}

/// `setsockopt()` of an int option.
pub fn setsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, val: i32) -> Res<()> {
    // SAFETY: the kernel reads one int from the local `val`.
    check_int(unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (&val as *const i32).cast(), size_of::<i32>() as libc::socklen_t)
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------

/// `mount(2)`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Res<()> {
    let p = |s: Option<&CStr>| s.map(|s| s.as_ptr()).unwrap_or(ptr::null());
    // SAFETY: every pointer is NULL or a NUL-terminated string.
    check_int(unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast()) })?;
    Ok(())
}

/// `umount2(2)`.
pub fn umount2(target: &CStr, flags: libc::c_int) -> Res<()> {
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::umount2(target.as_ptr(), flags) })?;
    Ok(())
}

pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
pub const MOVE_MOUNT_SET_GROUP: libc::c_uint = 0x100;

/// `move_mount(AT_FDCWD, from, AT_FDCWD, to, flags)`.
pub fn move_mount(from: &CStr, to: &CStr, flags: libc::c_uint) -> Res<()> {
    // SAFETY: NUL-terminated paths relative to the cwd.
    check(unsafe {
        libc::syscall(libc::SYS_move_mount, libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), flags)
    })?;
    Ok(())
}

/// A detached mount of a fresh `fstype` superblock (fsopen, fsconfig
/// CREATE, fsmount).
pub fn mount_detached(fstype: &CStr) -> Res<OwnedFd> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    // SAFETY: NUL-terminated name, integer flags.
    let fs = own_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 0 as libc::c_uint) })?;
    // SAFETY: CREATE takes no key/value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            ptr::null::<libc::c_char>(),
            ptr::null::<libc::c_void>(),
            0 as libc::c_int,
        )
    })?;
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), 0 as libc::c_uint, 0 as libc::c_uint) })
}

/// In a forked child: unshare(CLONE_NEWNS | CLONE_NEWUSER), mount a fresh
/// binfmt_misc detached and compare its device with `host_dev`. Exit 0:
/// a different (sandboxed) instance; 2: same instance or no mount; 1: error.
pub fn binfmt_misc_userns_child(host_dev: u64) -> Res<WaitStatus> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    fork_run(move || {
        // SAFETY (whole child): raw syscalls on locals.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUSER) != 0 {
                return 1;
            }
            let fs = libc::syscall(libc::SYS_fsopen, c"binfmt_misc".as_ptr(), 0 as libc::c_uint);
            if fs < 0 {
                return 2;
            }
            if libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_CMD_CREATE,
                ptr::null::<libc::c_char>(),
                ptr::null::<libc::c_void>(),
                0 as libc::c_int,
            ) < 0
            {
                return 2;
            }
            let m = libc::syscall(libc::SYS_fsmount, fs, 0 as libc::c_uint, 0 as libc::c_uint);
            if m < 0 {
                return 2;
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(m as libc::c_int, &mut st) != 0 {
                return 1;
            }
            if st.st_dev != host_dev { 0 } else { 2 }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_the_kernel() {
        assert_eq!(size_of::<PmScanArg>(), 96);
        assert_eq!(size_of::<PageRegion>(), 24);
        assert_eq!(size_of::<UffdioApi>(), 24);
        assert_eq!(size_of::<UffdioRegister>(), 32);
        assert_eq!(size_of::<RseqConf>(), 24);
        assert_eq!(size_of::<CloneArgs>(), 88);
        assert_eq!(size_of::<PeekSiginfoArgs>(), 16);
        assert_eq!(size_of::<KcmpEpollSlot>(), 12);
    }

    #[test]
    fn anon_map_touch_and_guard() {
        let mut m = AnonMap::rw(2).unwrap();
        m.touch(10, 7).unwrap();
        assert_eq!(m.read(10).unwrap(), 7);
        assert_eq!(m.touch(m.len(), 1), Err(Errno::EFAULT));
        if m.guard_page(1).is_ok() {
            assert_eq!(m.touch(page_size(), 1), Err(Errno::EFAULT));
        }
        let ro = AnonMap::new(1, libc::PROT_READ).unwrap();
        assert_eq!(ro.touch(0, 1), Err(Errno::EFAULT));
    }
}
