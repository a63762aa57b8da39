//! The restorer: the last stage of `criu restore`, run inside the process
//! that becomes the task (crate root of its own blob; built by
//! `build/restorer.rs` like the parasite, linked by `restorer.ld`).
//!
//! criu (`src/restorer/`) maps this blob, its arguments ([`proto::Args`]),
//! the task's rt_sigframe and a stack in one free region, switches to that
//! stack and jumps to `restorer_entry`. From there on only raw system calls:
//! criu's own memory is unmapped, the premapped areas are moved into place,
//! shared file mappings and the vDSO follow, then the per-task state (mm
//! fields, signal handlers, timers); the other threads are created (clone3
//! with their tids, each on its own stack here: `restorer_thread_main`),
//! then the leader's own state (TLS, rseq, personality, credentials)
//! while each thread restores its own (TLS, rseq, robust list, comm,
//! credentials, private pending signals); once every thread reported done,
//! the process-wide rest (dumpable, shared pending signals, parent-death
//! signal); the service fds are closed, the ready report goes out, the
//! threads get the go, and each thread's `rt_sigreturn` loads its own
//! frame: the task runs.
//!
//! Any failure writes `(thread << 48) | (step << 32) | (-errno & 0xffffffff)`
//! (the kernel's negative return in the low half; thread 0 is the leader,
//! n the n-th record of `Args::threads`) to the ready fd and exits the
//! process (criu then reports which step failed, and where).

#![no_std]

mod mem;
mod syscall;
pub mod restorer_proto;

use core::arch::global_asm;
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, Ordering};

use restorer_proto::{self as proto, flag, step, Args};

global_asm!(
    ".section .restorer.head,\"ax\",@progbits",
    ".globl restorer_entry",
    ".type restorer_entry,@function",
    "restorer_entry:",
    "    and rsp, -16",
    "    call restorer_main",
    ".globl restorer_trap",
    "restorer_trap:",
    "    int3",
    "    ud2",
    ".size restorer_entry, . - restorer_entry",
    "",
    // restorer_sigreturn(sp, sync): with sync, stop on the int3 first (the
    // cleaner traces us from there); then rt_sigreturn with rsp = sp.
    ".globl restorer_sigreturn",
    ".type restorer_sigreturn,@function",
    "restorer_sigreturn:",
    "    test rsi, rsi",
    "    jz 1f",
    ".globl restorer_sync",
    "restorer_sync:",
    "    int3",
    "1:",
    "    mov rsp, rdi",
    "    mov eax, 15",
    ".globl restorer_syscall",
    "restorer_syscall:",
    "    syscall",
    "    ud2",
    ".size restorer_sigreturn, . - restorer_sigreturn",
    "",
    // restorer_clone3(clone_args, size, args, index): clone3; the parent
    // gets the result back, the child (on the stack clone_args gave it)
    // calls restorer_thread_main(args, index) and never returns. rcx is
    // lost to `syscall`, so the index travels in r8 (kept by the kernel
    // and copied into the child like every other register).
    ".globl restorer_clone3",
    ".type restorer_clone3,@function",
    "restorer_clone3:",
    "    mov r8, rcx",
    "    mov eax, 435",
    "    syscall",
    "    test rax, rax",
    "    jnz 1f",
    "    and rsp, -16",
    "    xor ebp, ebp",
    "    mov rdi, rdx",
    "    mov rsi, r8",
    "    call restorer_thread_main",
    "    ud2",
    "1:",
    "    ret",
    ".size restorer_clone3, . - restorer_clone3",
    ".text",
);

unsafe extern "C" {
    fn restorer_sigreturn(sp: u64, sync: u64) -> !;
    fn restorer_clone3(cl: *const CloneArgs, size: usize, args: *const Args, index: u64) -> isize;
}

/// `struct clone_args` (clone3).
#[repr(C)]
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

const NR_WRITE: usize = 1;
const NR_CLOSE: usize = 3;
const NR_MMAP: usize = 9;
const NR_MPROTECT: usize = 10;
const NR_MUNMAP: usize = 11;
const NR_RT_SIGACTION: usize = 13;
const NR_RT_SIGPROCMASK: usize = 14;
const NR_MREMAP: usize = 25;
const NR_MADVISE: usize = 28;
const MADV_GUARD_INSTALL: usize = 102;
const NR_SETITIMER: usize = 38;
const NR_GETPID: usize = 39;
const NR_SETGROUPS: usize = 116;
const NR_SETRESUID: usize = 117;
const NR_SETRESGID: usize = 119;
const NR_SETFSUID: usize = 122;
const NR_SETFSGID: usize = 123;
const NR_CAPSET: usize = 126;
const NR_RT_SIGQUEUEINFO: usize = 129;
const NR_PERSONALITY: usize = 135;
const NR_PRCTL: usize = 157;
const NR_ARCH_PRCTL: usize = 158;
/// set_thread_area in the i386 table (`int 0x80`).
const NR32_SET_THREAD_AREA: usize = 243;
const PAGE: usize = 4096;
const PROT_RW: usize = 3;
/// MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT.
const MAP_PRIVATE_ANON_32BIT: usize = 0x02 | 0x20 | 0x40;
const NR_GETTID: usize = 186;
const NR_SET_TID_ADDRESS: usize = 218;
const NR_EXIT_GROUP: usize = 231;
const NR_SET_ROBUST_LIST: usize = 273;
const NR_RT_TGSIGQUEUEINFO: usize = 297;
const NR_RSEQ: usize = 334;
const NR_FUTEX: usize = 202;
const NR_SECCOMP: usize = 317;
const NR_SETPRIORITY: usize = 141;
const NR_SCHED_SETSCHEDULER: usize = 144;
const NR_TIMER_CREATE: usize = 222;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_BOOTTIME: u64 = 7;
const TIMER_ABSTIME: usize = 1;
const NSEC: u64 = 1_000_000_000;
const NR_FCNTL: usize = 72;
const F_SETSIG: usize = 10;
const F_SETOWN_EX: usize = 15;
const NR_TIMER_SETTIME: usize = 223;

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;
const FUTEX_WAIT_PRIVATE: usize = 128;
const FUTEX_WAKE_PRIVATE: usize = 129;
const PRIO_PROCESS: usize = 0;

const MAP_FIXED: u64 = 0x10;
const MREMAP_MAYMOVE: usize = 1;
const MREMAP_FIXED: usize = 2;
const SIG_SETMASK: usize = 2;
const RSEQ_FLAG_UNREGISTER: usize = 1;
const ARCH_SET_GS: usize = 0x1001;
const ARCH_SET_FS: usize = 0x1002;
const PR_SET_PDEATHSIG: usize = 1;
const PR_GET_DUMPABLE: usize = 3;
const PR_SET_DUMPABLE: usize = 4;
const PR_SET_NAME: usize = 15;
const PR_CAPBSET_DROP: usize = 24;
const PR_SET_SECUREBITS: usize = 28;
const PR_SET_MM: usize = 35;
const PR_SET_SECCOMP: usize = 22;
const SECCOMP_MODE_STRICT: usize = 1;
const SECCOMP_SET_MODE_FILTER: usize = 1;
const SECCOMP_FILTER_FLAG_TSYNC: u64 = 1;
const EBUSY: isize = 16;
const PR_SET_MM_MAP: usize = 14;
const PR_SET_NO_NEW_PRIVS: usize = 38;
const PR_CAP_AMBIENT: usize = 47;
const PR_CAP_AMBIENT_RAISE: usize = 2;
const PR_CAP_AMBIENT_CLEAR_ALL: usize = 4;
const PR_TIMER_CREATE_RESTORE_IDS: usize = 77;
const SECURE_NO_SETUID_FIXUP: usize = 2;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// rt_sigreturn reads the frame 8 bytes below rsp (past `pretcode`).
const SIGRETURN_SP_OFFSET: u64 = 8;
const EINVAL: isize = 22;
const ECANCELED: isize = 125;

use syscall::syscall as sys;

fn sys0(nr: usize) -> isize {
    sys(nr, [0; 6])
}
fn sys1(nr: usize, a: usize) -> isize {
    sys(nr, [a, 0, 0, 0, 0, 0])
}
fn sys2(nr: usize, a: usize, b: usize) -> isize {
    sys(nr, [a, b, 0, 0, 0, 0])
}
fn sys3(nr: usize, a: usize, b: usize, c: usize) -> isize {
    sys(nr, [a, b, c, 0, 0, 0])
}
fn sys4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    sys(nr, [a, b, c, d, 0, 0])
}
fn sys5(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    sys(nr, [a, b, c, d, e, 0])
}

fn exit_group(code: usize) -> ! {
    loop {
        sys1(NR_EXIT_GROUP, code);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit_group(2)
}

/// The argument area and where it lives, and who runs (0: the leader,
/// n: the n-th thread record).
struct Ctx {
    a: &'static Args,
    base: usize,
    thread: u64,
}

impl Ctx {
    /// A tail array of the argument area.
    fn slice<T>(&self, s: proto::Slice) -> &'static [T] {
        if s.n == 0 {
            return &[];
        }
        // SAFETY: criu wrote `n` elements of T at `off` inside the argument
        // area (8-byte aligned) and the area stays mapped until rt_sigreturn.
        unsafe { core::slice::from_raw_parts((self.base + s.off as usize) as *const T, s.n as usize) }
    }

    /// Report failure of `step` with kernel return `ret`, and die.
    fn fail(&self, step: u64, ret: isize) -> ! {
        let code: u64 = (self.thread << step::THREAD_SHIFT) | (step << 32) | (ret as i64 as u64 & 0xffff_ffff);
        sys3(NR_WRITE, self.a.ready_fd as usize, &code as *const u64 as usize, size_of::<u64>());
        exit_group(1)
    }

    /// `ret` must not be an error.
    fn check(&self, step: u64, ret: isize) -> isize {
        if (self.thread << step::THREAD_SHIFT | step) == self.a.fault {
            self.fail(step, -ECANCELED);
        }
        if ret < 0 {
            self.fail(step, ret);
        }
        ret
    }

    /// Sync word `i` (0: threads done, 1: go), shared by every thread.
    fn sync(&self, i: usize) -> &'static AtomicU32 {
        // SAFETY: criu reserved two zeroed, 8-byte aligned words at
        // `a.sync` inside the writable restorer region (no Rust reference
        // covers them but these atomics), mapped until rt_sigreturn.
        unsafe { &*((self.base + self.a.sync as usize + 8 * i) as *const AtomicU32) }
    }
}

fn futex_wait(w: &AtomicU32, val: u32) {
    sys4(NR_FUTEX, w.as_ptr() as usize, FUTEX_WAIT_PRIVATE, val as usize, 0);
}

fn futex_wake(w: &AtomicU32) {
    sys3(NR_FUTEX, w.as_ptr() as usize, FUTEX_WAKE_PRIVATE, i32::MAX as usize);
}

/// Called by the entry stub on the restorer stack.
///
/// # Safety
/// `args` must point at a filled-in [`Args`] inside the restorer region.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn restorer_main(args: *const Args) -> ! {
    // SAFETY: criu passes the address of the argument area it wrote; it is
    // mapped (in the restorer region) until the final rt_sigreturn.
    let a: &'static Args = unsafe { &*args };
    let c = Ctx { a, base: args as usize, thread: 0 };
    if a.magic != proto::MAGIC {
        c.fail(step::MAGIC, -EINVAL);
    }

    // Nothing may run a handler on this stack: block all we can.
    let all: u64 = !0;
    c.check(step::BLOCK_SIGNALS, sys4(NR_RT_SIGPROCMASK, SIG_SETMASK, &all as *const u64 as usize, 0, 8));

    // glibc registered rseq in criu's TLS, about to be unmapped.
    if a.old_rseq[1] != 0 {
        let [p, l, s] = a.old_rseq;
        c.check(step::RSEQ_UNREGISTER, sys4(NR_RSEQ, p as usize, l as usize, RSEQ_FLAG_UNREGISTER, s as usize));
    }

    memory(&c);
    aio_rings(&c);
    mm_fields(&c);
    signals_and_timers(&c);
    if a.flags & flag::SCHED != 0 {
        sched(&c, a.sched);
    }
    // Per thread, inherited by those made next.
    c.check(step::PERSONALITY, sys1(NR_PERSONALITY, a.personality as usize));
    // Threads first: they inherit our credentials (which clone3 with a tid
    // needs) and drop them themselves.
    let threads = c.slice::<proto::Thread>(a.threads);
    for (i, t) in threads.iter().enumerate() {
        create_thread(&c, i, t);
    }
    own_state(&c, a.clear_tid_addr, a.robust_list, a.rseq, a.fs_base, a.gs_base, a.tls);
    if a.flags & flag::SECCOMP_EARLY != 0 {
        seccomp_filters(&c, a.seccomp);
    }
    if a.flags & flag::CREDS != 0 {
        creds(&c, &a.creds, a.flags);
    }
    // Every thread done (their credentials too, which reset the dumpable
    // flag of the shared mm): the process-wide rest.
    let done = c.sync(0);
    loop {
        let n = done.load(Ordering::SeqCst);
        if n as usize >= threads.len() {
            break;
        }
        futex_wait(done, n);
    }
    match a.dumpable {
        u64::MAX => {}
        // SUID_DUMP_ROOT can't be set by prctl: keep it if the creds left
        // it so, else fall back to not dumpable (as CRIU does).
        2 if sys1(NR_PRCTL, PR_GET_DUMPABLE) == 2 => {}
        2 => {
            c.check(step::DUMPABLE, sys2(NR_PRCTL, PR_SET_DUMPABLE, 0));
        }
        d => {
            c.check(step::DUMPABLE, sys2(NR_PRCTL, PR_SET_DUMPABLE, d as usize));
        }
    }
    owners(&c, c.slice::<proto::Fown>(a.fowns));
    posix_timers(&c, c.slice::<proto::PosixTimer>(a.posix_timers));
    queue_pending(&c, c.slice::<proto::Pending>(a.pending));
    c.check(step::PDEATHSIG, sys2(NR_PRCTL, PR_SET_PDEATHSIG, a.pdeath_sig as usize));

    for &fd in c.slice::<u32>(a.close_fds) {
        sys1(NR_CLOSE, fd as usize);
    }
    let cleaner = a.flags & flag::CLEANER != 0;
    if !cleaner {
        let ready: u64 = 0;
        let n = sys3(NR_WRITE, a.ready_fd as usize, &ready as *const u64 as usize, size_of::<u64>());
        if n != size_of::<u64>() as isize {
            c.fail(step::READY, if n < 0 { n } else { -EINVAL });
        }
    }
    // The cleaner reports instead (after it unmapped this region).
    sys1(NR_CLOSE, a.ready_fd as usize);
    let go = c.sync(1);
    go.store(1, Ordering::SeqCst);
    futex_wake(go);
    if cleaner {
        open_sigtrap(&c);
    }
    seccomp_last(&c, a.flags, a.seccomp);
    let sp = c.base as u64 + a.frame + SIGRETURN_SP_OFFSET;
    // SAFETY: the frame was built by criu for this task; rt_sigreturn
    // replaces every register and never returns here.
    unsafe { restorer_sigreturn(sp, cleaner as u64) }
}

fn mremap(from: u64, len: u64, to: u64) -> isize {
    let r = sys5(NR_MREMAP, from as usize, len as usize, len as usize, MREMAP_MAYMOVE | MREMAP_FIXED, to as usize);
    if r >= 0 && r as u64 != to { -EINVAL } else { r }
}

fn madvise(c: &Ctx, to: u64, len: u64, madv: u64) {
    for bit in 0..64 {
        if madv & (1u64 << bit) != 0 {
            c.check(step::MADVISE, sys3(NR_MADVISE, to as usize, len as usize, bit));
        }
    }
}

/// criu's mappings out, the task's in.
fn memory(c: &Ctx) {
    let a = c.a;
    // The vDSO first goes somewhere safe: a premapped area or a file
    // mapping may land where it is now.
    for m in c.slice::<proto::Move>(a.park) {
        c.check(step::VDSO_PARK, mremap(m.from, m.len, m.to));
    }

    // Everything but the restorer region and the premapped areas goes.
    let mut at = 0u64;
    for k in c.slice::<proto::Range>(a.keep) {
        if k.start > at {
            c.check(step::UNMAP, sys2(NR_MUNMAP, at as usize, (k.start - at) as usize));
        }
        at = at.max(k.start + k.len);
    }
    if a.task_size > at {
        c.check(step::UNMAP, sys2(NR_MUNMAP, at as usize, (a.task_size - at) as usize));
    }

    // No target overlaps the premap region, so the order is free.
    let moves = c.slice::<proto::Move>(a.moves);
    for m in moves {
        c.check(step::MOVE, mremap(m.from, m.len, m.to));
    }
    let maps = c.slice::<proto::FileMap>(a.file_maps);
    for f in maps {
        let r = sys(
            NR_MMAP,
            [f.to as usize, f.len as usize, f.prot as usize, (f.flags | MAP_FIXED) as usize, f.fd as usize, f.pgoff as usize],
        );
        c.check(step::FILE_MAP, if r >= 0 && r as u64 != f.to { -EINVAL } else { r });
    }
    for m in c.slice::<proto::Move>(a.unpark) {
        c.check(step::VDSO_PLACE, mremap(m.from, m.len, m.to));
    }

    for m in moves {
        c.check(step::MPROTECT, sys3(NR_MPROTECT, m.to as usize, m.len as usize, m.prot as usize));
    }
    for m in moves {
        madvise(c, m.to, m.len, m.madv);
    }
    for f in maps {
        madvise(c, f.to, f.len, f.madv);
        for g in c.slice::<proto::Range>(f.guards) {
            c.check(step::MADVISE, sys3(NR_MADVISE, g.start as usize, g.len as usize, MADV_GUARD_INSTALL));
        }
    }
}

/// `struct prctl_mm_map`.
#[repr(C)]
struct PrctlMmMap {
    mm: proto::MmMap,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

fn mm_fields(c: &Ctx) {
    let a = c.a;
    let auxv = c.slice::<u64>(a.auxv);
    let map = PrctlMmMap {
        mm: a.mm,
        auxv: auxv.as_ptr() as u64,
        auxv_size: core::mem::size_of_val(auxv) as u32,
        exe_fd: a.exe_fd as u32,
    };
    c.check(
        step::PRCTL_MM,
        sys5(NR_PRCTL, PR_SET_MM, PR_SET_MM_MAP, &map as *const PrctlMmMap as usize, size_of::<PrctlMmMap>(), 0),
    );
    if a.comm[0] != 0 {
        c.check(step::COMM, sys2(NR_PRCTL, PR_SET_NAME, a.comm.as_ptr() as usize));
    }
}

/// The kernel's `struct sigaction` (x86_64).
#[repr(C)]
struct KSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// `struct itimerval`.
#[repr(C)]
struct Itimerval {
    interval_sec: u64,
    interval_usec: u64,
    value_sec: u64,
    value_usec: u64,
}

fn signals_and_timers(c: &Ctx) {
    for s in c.slice::<proto::Sigaction>(c.a.sigactions) {
        let k = KSigaction { handler: s.handler, flags: s.flags, restorer: s.restorer, mask: s.mask };
        c.check(step::SIGACTION, sys4(NR_RT_SIGACTION, s.signo as usize, &k as *const KSigaction as usize, 0, 8));
    }
    for t in c.slice::<proto::Itimer>(c.a.itimers) {
        let v = Itimerval {
            interval_sec: t.interval_sec,
            interval_usec: t.interval_usec,
            value_sec: t.value_sec,
            value_usec: t.value_usec,
        };
        c.check(step::ITIMER, sys3(NR_SETITIMER, t.which as usize, &v as *const Itimerval as usize, 0));
    }
}

/// The kernel's `struct f_owner_ex`.
#[repr(C)]
struct FOwnerEx {
    kind: i32,
    pid: i32,
}

/// Give the task's fds their I/O signal and owner back (as the task: the
/// kernel records the caller's uids with the owner).
fn owners(c: &Ctx, fowns: &[proto::Fown]) {
    for f in fowns {
        if f.signum != 0 {
            c.check(step::FOWN, sys3(NR_FCNTL, f.fd as usize, F_SETSIG, f.signum as usize));
        }
        if f.pid != 0 {
            let o = FOwnerEx { kind: f.pid_type as i32, pid: f.pid as i32 };
            c.check(step::FOWN, sys3(NR_FCNTL, f.fd as usize, F_SETOWN_EX, &o as *const FOwnerEx as usize));
        }
    }
}

/// The kernel's `struct sigevent` (64 bytes).
#[repr(C)]
struct KSigevent {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    _pad: [i32; 11],
}

#[repr(C)]
struct Itimerspec {
    interval: [u64; 2],
    value: [u64; 2],
}

/// Create the task's POSIX timers with their ids (every thread exists by
/// now: a thread-directed one names its target) and arm them. Signals are
/// blocked until rt_sigreturn, so an early expiry waits for the task's mask.
fn posix_timers(c: &Ctx, timers: &[proto::PosixTimer]) {
    if timers.is_empty() {
        return;
    }
    c.check(step::TIMER_IDS, sys2(NR_PRCTL, PR_TIMER_CREATE_RESTORE_IDS, 1));
    for t in timers {
        let mut ev = KSigevent { value: t.sival, signo: t.signo as i32, notify: t.notify as i32, tid: t.tid as i32, _pad: [0; 11] };
        let mut id: i32 = t.id as i32;
        let r = sys3(NR_TIMER_CREATE, t.clock as usize, &mut ev as *mut KSigevent as usize, &mut id as *mut i32 as usize);
        c.check(step::TIMER_CREATE, if r == 0 && id as u64 != t.id { -EINVAL } else { r });
    }
    c.check(step::TIMER_IDS, sys2(NR_PRCTL, PR_TIMER_CREATE_RESTORE_IDS, 0));
    for t in timers.iter().filter(|t| t.value != [0, 0]) {
        // On a clock that went on from the dump's reading: the expiry the
        // timer had (the restore's own time counts).
        let base = match t.clock {
            CLOCK_MONOTONIC => c.a.dump_clocks[0],
            CLOCK_BOOTTIME => c.a.dump_clocks[1],
            _ => u64::MAX,
        };
        let (value, flags) = if base == u64::MAX {
            (t.value, 0)
        } else {
            let at = base + t.value[0] * NSEC + t.value[1];
            ([at / NSEC, at % NSEC], TIMER_ABSTIME)
        };
        let v = Itimerspec { interval: t.interval, value };
        c.check(step::TIMER_ARM, sys4(NR_TIMER_SETTIME, t.id as usize, flags, &v as *const Itimerspec as usize, 0));
    }
}

/// The calling thread's own state: clear_tid address, robust list, rseq,
/// TLS bases.
fn own_state(c: &Ctx, tid_addr: u64, robust_list: [u64; 2], rseq: [u64; 3], fs_base: u64, gs_base: u64, tls: [u64; 6]) {
    c.check(step::TID_ADDRESS, sys1(NR_SET_TID_ADDRESS, tid_addr as usize));
    let [head, len] = robust_list;
    // Length 0: no record of the task's list; drop criu's (it points into
    // memory that is now the task's).
    let (head, len) = if len == 0 { (0, 24) } else { (head, len) };
    c.check(step::ROBUST_LIST, sys2(NR_SET_ROBUST_LIST, head as usize, len as usize));
    if rseq[1] != 0 {
        let [p, l, s] = rseq;
        c.check(step::RSEQ, sys4(NR_RSEQ, p as usize, l as usize, 0, s as usize));
    }
    c.check(step::FS_BASE, sys2(NR_ARCH_PRCTL, ARCH_SET_FS, fs_base as usize));
    c.check(step::GS_BASE, sys2(NR_ARCH_PRCTL, ARCH_SET_GS, gs_base as usize));
    set_tls(c, tls);
}

/// The calling thread's GDT TLS entries (`Args::tls`). set_thread_area is
/// an i386 call: made through `int 0x80`, its struct user_desc in a page
/// below 4 GiB mapped for the purpose. Nothing to set: no call at all.
fn set_tls(c: &Ctx, tls: [u64; 6]) {
    if tls.iter().all(|w| *w == 0) {
        return;
    }
    let page = c.check(step::TLS, sys(NR_MMAP, [0, PAGE, PROT_RW, MAP_PRIVATE_ANON_32BIT, usize::MAX, 0])) as usize;
    let desc = page as *mut u64;
    for e in tls.chunks_exact(2) {
        if e[0] as u32 == 0 {
            continue;
        }
        // SAFETY: `page` is a fresh private read-write page of ours; two
        // words (struct user_desc) fit at its start.
        unsafe {
            desc.write(e[0]);
            desc.add(1).write(e[1]);
        }
        c.check(step::TLS, syscall::syscall32_1(NR32_SET_THREAD_AREA, page));
    }
    c.check(step::TLS, sys2(NR_MUNMAP, page, PAGE));
}

/// `struct sched_param`.
#[repr(C)]
struct SchedParam {
    prio: i32,
}

/// The calling thread's nice, then its policy (SCHED_RESET_ON_FORK
/// included) and real-time priority (a thread starts with the leader's:
/// both are always set). A refusal fails the restore.
fn sched(c: &Ctx, s: [u64; 3]) {
    let [nice, policy, prio] = s;
    c.check(step::SCHED_NICE, sys3(NR_SETPRIORITY, PRIO_PROCESS, 0, nice as i64 as isize as usize));
    let p = SchedParam { prio: prio as i32 };
    c.check(step::SCHED_POLICY, sys3(NR_SCHED_SETSCHEDULER, 0, policy as usize, &p as *const SchedParam as usize));
}

/// The thread's seccomp state, the very last syscalls before
/// `rt_sigreturn` (a filter may forbid anything the restorer does; the
/// only ones left after it are rt_sigreturn and, for the leader's TSYNC
/// filters, the other threads' last futex and rt_sigprocmask calls; the
/// cleaner traces with seccomp suspended): strict mode when `flags` say so
/// (then only read, write, exit and rt_sigreturn are left), else the
/// filters unless they went in before the creds (`flag::SECCOMP_EARLY`).
fn seccomp_last(c: &Ctx, flags: u64, filters: proto::Slice) {
    if flags & flag::SECCOMP_STRICT != 0 {
        c.check(step::SECCOMP, sys2(NR_PRCTL, PR_SET_SECCOMP, SECCOMP_MODE_STRICT));
    } else if flags & flag::SECCOMP_EARLY == 0 {
        seccomp_filters(c, filters);
    }
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const u64,
}

/// Install `filters` in order. A TSYNC one that can't sync another thread
/// returns that thread's id: a failure too.
fn seccomp_filters(c: &Ctx, filters: proto::Slice) {
    for f in c.slice::<proto::SeccompFilter>(filters) {
        let insns = c.slice::<u64>(f.insns);
        let prog = SockFprog { len: insns.len() as u16, filter: insns.as_ptr() };
        let r = sys3(NR_SECCOMP, SECCOMP_SET_MODE_FILTER, f.flags as usize, &prog as *const SockFprog as usize);
        let r = if r > 0 && f.flags & SECCOMP_FILTER_FLAG_TSYNC != 0 { -EBUSY } else { r };
        c.check(step::SECCOMP_FILTER, r);
    }
}

/// Start thread record `i` (its tid must come out as asked).
fn create_thread(c: &Ctx, i: usize, t: &proto::Thread) {
    let tid = t.tid as i32;
    let cl = CloneArgs {
        flags: CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: 0,
        stack: t.stack,
        stack_size: t.stack_size,
        tls: 0,
        set_tid: &tid as *const i32 as u64,
        set_tid_size: 1,
        cgroup: 0,
    };
    let sub = Ctx { a: c.a, base: c.base, thread: i as u64 + 1 };
    // SAFETY: the child runs restorer_thread_main on its own stack inside
    // the restorer region and never returns into this frame; the parent
    // gets clone3's result like any syscall's.
    let r = unsafe { restorer_clone3(&cl, size_of::<CloneArgs>(), c.a as *const Args, i as u64) };
    if r >= 0 && r != tid as isize {
        sub.fail(step::THREAD_TID, -EINVAL);
    }
    sub.check(step::CLONE_THREAD, r);
}

/// A thread made by the leader (`create_thread`): its own state, then
/// done, then wait for the go and load its own frame.
///
/// # Safety
/// `args` is the argument area (as for `restorer_main`) and `index` a
/// valid index of its thread records.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn restorer_thread_main(args: *const Args, index: u64) -> ! {
    // SAFETY: the leader passes its own argument area, mapped until the
    // last rt_sigreturn.
    let a: &'static Args = unsafe { &*args };
    let c = Ctx { a, base: args as usize, thread: index + 1 };
    let Some(t) = c.slice::<proto::Thread>(a.threads).get(index as usize) else { c.fail(step::THREAD_TID, -EINVAL) };
    let all: u64 = !0;
    c.check(step::BLOCK_SIGNALS, sys4(NR_RT_SIGPROCMASK, SIG_SETMASK, &all as *const u64 as usize, 0, 8));
    let me = sys0(NR_GETTID);
    if me != t.tid as isize {
        c.fail(step::THREAD_TID, -EINVAL);
    }
    own_state(&c, t.clear_tid_addr, t.robust_list, t.rseq, t.fs_base, t.gs_base, t.tls);
    if t.comm[0] != 0 {
        c.check(step::COMM, sys2(NR_PRCTL, PR_SET_NAME, t.comm.as_ptr() as usize));
    }
    if t.flags & flag::SCHED != 0 {
        sched(&c, t.sched);
    }
    if t.flags & flag::SECCOMP_EARLY != 0 {
        seccomp_filters(&c, t.seccomp);
    }
    if t.flags & flag::CREDS != 0 {
        creds(&c, &t.creds, t.flags);
    }
    queue_pending(&c, c.slice::<proto::Pending>(t.pending));
    c.check(step::PDEATHSIG, sys2(NR_PRCTL, PR_SET_PDEATHSIG, t.pdeath_sig as usize));
    let done = c.sync(0);
    done.fetch_add(1, Ordering::SeqCst);
    futex_wake(done);
    let go = c.sync(1);
    while go.load(Ordering::SeqCst) == 0 {
        futex_wait(go, 0);
    }
    let cleaner = a.flags & flag::CLEANER != 0;
    if cleaner {
        open_sigtrap(&c);
    }
    seccomp_last(&c, t.flags, t.seccomp);
    // SAFETY: criu built this thread's frame; rt_sigreturn replaces every
    // register and never returns here.
    unsafe { restorer_sigreturn(t.frame + SIGRETURN_SP_OFFSET, cleaner as u64) }
}

/// Unblock SIGTRAP just before the `int3` the cleaner stops us on: a
/// forced SIGTRAP that finds itself blocked resets the task's (restored)
/// SIGTRAP handler to SIG_DFL. The cleaner swallows that trap, and the
/// frame's mask blocks everything again at rt_sigreturn.
fn open_sigtrap(c: &Ctx) {
    const SIGTRAP: u32 = 5;
    let mask: u64 = !(1u64 << (SIGTRAP - 1));
    c.check(step::BLOCK_SIGNALS, sys4(NR_RT_SIGPROCMASK, SIG_SETMASK, &mask as *const u64 as usize, 0, 8));
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
struct CapData {
    eff: u32,
    prm: u32,
    inh: u32,
}

/// CRIU's order: groups; keep caps across the uid change
/// (SECURE_NO_SETUID_FIXUP); uids and gids (fs ones last); the task's
/// securebits; the bounding set (needs CAP_SETPCAP, still held); the
/// capability sets; ambient capabilities; no_new_privs.
fn creds(c: &Ctx, k: &proto::Creds, flags: u64) {
    let groups = c.slice::<u32>(k.groups);
    c.check(step::SETGROUPS, sys2(NR_SETGROUPS, groups.len(), groups.as_ptr() as usize));
    c.check(step::SECUREBITS_FIXUP, sys2(NR_PRCTL, PR_SET_SECUREBITS, 1 << SECURE_NO_SETUID_FIXUP));
    c.check(step::SETRESUID, sys3(NR_SETRESUID, k.uid as usize, k.euid as usize, k.suid as usize));
    sys1(NR_SETFSUID, k.fsuid as usize);
    if sys1(NR_SETFSUID, u32::MAX as usize) as u64 != k.fsuid {
        c.fail(step::SETFSUID, -EINVAL);
    }
    c.check(step::SETRESGID, sys3(NR_SETRESGID, k.gid as usize, k.egid as usize, k.sgid as usize));
    sys1(NR_SETFSGID, k.fsgid as usize);
    if sys1(NR_SETFSGID, u32::MAX as usize) as u64 != k.fsgid {
        c.fail(step::SETFSGID, -EINVAL);
    }
    c.check(step::SECUREBITS, sys2(NR_PRCTL, PR_SET_SECUREBITS, k.secbits as usize));
    for cap in 0..=k.cap_last_cap.min(63) {
        if k.cap_bnd & (1 << cap) == 0 {
            c.check(step::CAPBSET_DROP, sys2(NR_PRCTL, PR_CAPBSET_DROP, cap as usize));
        }
    }
    let hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [
        CapData { eff: k.cap_eff as u32, prm: k.cap_prm as u32, inh: k.cap_inh as u32 },
        CapData { eff: (k.cap_eff >> 32) as u32, prm: (k.cap_prm >> 32) as u32, inh: (k.cap_inh >> 32) as u32 },
    ];
    c.check(step::CAPSET, sys2(NR_CAPSET, &hdr as *const CapHeader as usize, data.as_ptr() as usize));
    c.check(step::AMBIENT, sys5(NR_PRCTL, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    for cap in 0..64 {
        if k.cap_amb & (1 << cap) != 0 {
            c.check(step::AMBIENT, sys5(NR_PRCTL, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0));
        }
    }
    if flags & flag::NO_NEW_PRIVS != 0 {
        c.check(step::NO_NEW_PRIVS, sys5(NR_PRCTL, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    }
}

/// Pending signals go back on the queues; they stay pending (blocked here,
/// and by the frame's mask where the task had them blocked).
fn queue_pending(c: &Ctx, pending: &[proto::Pending]) {
    if pending.is_empty() {
        return;
    }
    let pid = sys0(NR_GETPID) as usize;
    let tid = sys0(NR_GETTID) as usize;
    for p in pending {
        let signo = (p.info[0] & 0xffff_ffff) as usize;
        let info = p.info.as_ptr() as usize;
        let r = if p.shared != 0 {
            sys3(NR_RT_SIGQUEUEINFO, pid, signo, info)
        } else {
            sys4(NR_RT_TGSIGQUEUEINFO, pid, tid, signo, info)
        };
        c.check(step::SIGQUEUE, r);
    }
}

const NR_IO_SETUP: usize = 206;
const NR_IO_SUBMIT: usize = 209;
const NR_SCHED_SETAFFINITY: usize = 203;
const NR_SCHED_GETAFFINITY: usize = 204;
const NR_GETCPU: usize = 309;
const IOCB_CMD_PWRITE: u16 = 1;
/// `struct aio_ring` (the header) and `struct io_event`.
const AIO_HEADER: usize = 32;
const AIO_EVENT: usize = 32;
/// MAP_PRIVATE | MAP_ANONYMOUS.
const MAP_PRIVATE_ANON: usize = 0x02 | 0x20;

/// `struct iocb`.
#[repr(C)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: u32,
    opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

/// The AIO rings, once every area is in place.
fn aio_rings(c: &Ctx) {
    for r in c.slice::<proto::AioRing>(c.a.aio_rings) {
        aio_ring(c, r);
    }
}

/// One AIO ring, as CRIU 4.2 restores one: a new context of the dumped
/// size; the kernel's own copy of the tail (which completions write into
/// the ring) brought to the dumped tail by requests that complete at once
/// (1-byte writes to /dev/null), the ring's head following them as far as
/// the dumped head, so that the kernel counts the dumped unreaped events
/// as taken slots; the events copied in; then the new ring moved over the
/// dumped copy at the old address, which makes that address the context's
/// id again.
fn aio_ring(c: &Ctx, r: &proto::AioRing) {
    let old = r.addr as *const u32;
    // SAFETY: `memory` moved the dumped ring (a private copy, `len` bytes)
    // to `addr`; its header is eight u32 words.
    let (nr, head, tail) = unsafe { (old.add(1).read_volatile(), old.add(2).read_volatile(), old.add(3).read_volatile()) };
    let mut ctx: u64 = 0;
    c.check(step::AIO_SETUP, sys2(NR_IO_SETUP, r.nr_req as usize, &mut ctx as *mut u64 as usize));
    let new = ctx as *mut u32;
    let slots = (r.len as usize).saturating_sub(AIO_HEADER) / AIO_EVENT;
    // SAFETY: io_setup mapped the new ring's header at `ctx`.
    let new_nr = unsafe { new.add(1).read_volatile() };
    if nr as usize != slots || new_nr != nr || head >= nr || tail >= nr {
        c.fail(step::AIO_RING, -EINVAL);
    }
    if head != 0 || tail != 0 {
        // Past the end and round again when the tail wrapped, so that the
        // kernel's count of completed events covers the unreaped ones.
        let count = if tail < head { nr + tail } else { tail } as usize;
        let batch = count.min(nr as usize - 1);
        let size = size_of::<Iocb>() + batch * 8;
        let mem = c.check(step::AIO_SUBMIT, sys(NR_MMAP, [0, size, PROT_RW, MAP_PRIVATE_ANON, usize::MAX, 0])) as usize;
        let byte = 0u8;
        let iocb = Iocb {
            data: 0,
            key: 0,
            rw_flags: 0,
            opcode: IOCB_CMD_PWRITE,
            reqprio: 0,
            fildes: c.a.aio_null_fd as u32,
            buf: &byte as *const u8 as u64,
            nbytes: 1,
            offset: 0,
            reserved2: 0,
            flags: 0,
            resfd: 0,
        };
        let ptrs = (mem + size_of::<Iocb>()) as *mut u64;
        // SAFETY: `mem` is a fresh private mapping of `size` bytes: the iocb,
        // then `batch` pointers to it.
        unsafe {
            (mem as *mut Iocb).write(iocb);
            for i in 0..batch {
                ptrs.add(i).write(mem as u64);
            }
        }
        // On one CPU: the kernel caches free slots per CPU, and a slot left
        // in another CPU's cache could make a full ring's requests fail.
        let mut mask = [0u64; 16];
        let mut cpu: u32 = 0;
        let saved = sys3(NR_SCHED_GETAFFINITY, 0, size_of::<[u64; 16]>(), mask.as_mut_ptr() as usize);
        let pinned = saved > 0
            && sys3(NR_GETCPU, &mut cpu as *mut u32 as usize, 0, 0) == 0
            && (cpu as usize) < 16 * 64
            && {
                let mut one = [0u64; 16];
                one[cpu as usize / 64] = 1 << (cpu % 64);
                sys3(NR_SCHED_SETAFFINITY, 0, size_of::<[u64; 16]>(), one.as_ptr() as usize) == 0
            };
        let mut done = 0usize;
        while done < count {
            let n = c.check(step::AIO_SUBMIT, sys3(NR_IO_SUBMIT, ctx as usize, (count - done).min(batch), ptrs as usize));
            if n <= 0 {
                c.fail(step::AIO_SUBMIT, -EINVAL);
            }
            done += n as usize;
            // SAFETY: the new ring's head word; userspace may write it (this
            // is what io_getevents would leave there).
            unsafe { new.add(2).write_volatile(done.min(head as usize) as u32) };
        }
        if pinned {
            c.check(step::AIO_SUBMIT, sys3(NR_SCHED_SETAFFINITY, 0, saved as usize, mask.as_ptr() as usize));
        }
        c.check(step::AIO_SUBMIT, sys2(NR_MUNMAP, mem, size));
    }
    // SAFETY: both rings are `len` bytes; the events follow the header.
    unsafe {
        core::ptr::copy_nonoverlapping((r.addr as usize + AIO_HEADER) as *const u8, (ctx as usize + AIO_HEADER) as *mut u8, r.len as usize - AIO_HEADER);
    }
    c.check(step::AIO_MOVE, mremap(ctx, r.len, r.addr));
}
