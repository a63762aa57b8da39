//! The argument area criu writes for the restorer blob (host side:
//! `criu::restorer::args`, which includes this file; blob side:
//! `restorer.rs`).
//!
//! Plain data only: every struct is `#[repr(C)]` and made of `u64` fields,
//! `u64` arrays or such structs (so there is no padding, and declaration
//! order is memory order: [`Words::put`], generated with each struct, emits
//! the words in that order for the host to write), and variable-length
//! parts are [`Slice`]s: byte offsets from the start of
//! [`Args`] plus an element count, never pointers. Addresses that are the
//! task's (VMA targets, handlers, auxv values) are absolute. This file uses
//! `core` only and has no side effects: it builds in the `#![no_std]` blob
//! and in the crate.

/// Anything made of u64 words, emitted in memory order.
pub trait Words {
    fn put(&self, out: &mut dyn FnMut(u64));
}

impl Words for u64 {
    fn put(&self, out: &mut dyn FnMut(u64)) {
        out(*self)
    }
}

impl<const N: usize> Words for [u64; N] {
    fn put(&self, out: &mut dyn FnMut(u64)) {
        for w in self {
            out(*w)
        }
    }
}

/// A `#[repr(C)]` struct of [`Words`] fields and its [`Words`] impl.
macro_rules! words {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
        impl Words for $name {
            fn put(&self, out: &mut dyn FnMut(u64)) {
                $( Words::put(&self.$f, out); )*
            }
        }
    };
}

/// Marks a valid [`Args`] (the blob refuses to start without it).
pub const MAGIC: u64 = 0x7273_7472_5f61_7267;

/// `Args::flags` bits.
pub mod flag {
    /// A cleaner process traces the restorer: the blob stops on `int3`
    /// (`restorer_sync`) before `rt_sigreturn` and leaves the ready report
    /// to the cleaner, which unmaps the restorer region after the jump.
    pub const CLEANER: u64 = 1 << 0;
    /// `Args::creds` is to be applied.
    pub const CREDS: u64 = 1 << 1;
    /// Set PR_SET_NO_NEW_PRIVS (with the creds).
    pub const NO_NEW_PRIVS: u64 = 1 << 2;
    /// `sched` is to be applied (setpriority, then sched_setscheduler);
    /// a refusal fails the restore.
    pub const SCHED: u64 = 1 << 3;
    /// Enter SECCOMP_MODE_STRICT last, just before `rt_sigreturn` (in
    /// `Args::flags` for the leader, `Thread::flags` for a thread).
    pub const SECCOMP_STRICT: u64 = 1 << 4;
    /// Install the seccomp filters (`seccomp`) just before the creds
    /// instead of last: the restored credentials could not install them
    /// (neither CAP_SYS_ADMIN nor no_new_privs), so they go in while the
    /// restorer still runs as root (as CRIU does for every task).
    pub const SECCOMP_EARLY: u64 = 1 << 5;
}

/// Failure steps the blob reports: `(step << 32) | (-errno & 0xffffffff)`
/// (a u64 on the ready fd; the low half is the kernel's negative return).
pub mod step {
    pub const MAGIC: u64 = 1;
    pub const BLOCK_SIGNALS: u64 = 2;
    pub const RSEQ_UNREGISTER: u64 = 3;
    pub const VDSO_PARK: u64 = 4;
    pub const UNMAP: u64 = 5;
    pub const MOVE: u64 = 6;
    pub const FILE_MAP: u64 = 7;
    pub const VDSO_PLACE: u64 = 8;
    pub const MPROTECT: u64 = 9;
    pub const MADVISE: u64 = 10;
    pub const PRCTL_MM: u64 = 11;
    pub const COMM: u64 = 12;
    pub const SIGACTION: u64 = 13;
    pub const ITIMER: u64 = 14;
    pub const TID_ADDRESS: u64 = 15;
    pub const ROBUST_LIST: u64 = 16;
    pub const RSEQ: u64 = 17;
    pub const FS_BASE: u64 = 18;
    pub const GS_BASE: u64 = 19;
    pub const PERSONALITY: u64 = 20;
    pub const SETGROUPS: u64 = 21;
    pub const SECUREBITS_FIXUP: u64 = 22;
    pub const SETRESUID: u64 = 23;
    pub const SETFSUID: u64 = 24;
    pub const SETRESGID: u64 = 25;
    pub const SETFSGID: u64 = 26;
    pub const SECUREBITS: u64 = 27;
    pub const CAPBSET_DROP: u64 = 28;
    pub const CAPSET: u64 = 29;
    pub const AMBIENT: u64 = 30;
    pub const NO_NEW_PRIVS: u64 = 31;
    pub const SIGQUEUE: u64 = 32;
    /// The blob's thread record index (threads are numbered from 1 in a
    /// report: `(n << 48) | (step << 32) | -errno`; 0 is the leader).
    pub const THREAD_SHIFT: u64 = 48;
    pub const PDEATHSIG: u64 = 33;
    pub const READY: u64 = 34;
    pub const DUMPABLE: u64 = 35;
    /// A thread: creating it (clone3 with its tid), or it is not the tid asked for.
    pub const CLONE_THREAD: u64 = 36;
    pub const THREAD_TID: u64 = 37;
    pub const SCHED_NICE: u64 = 38;
    pub const SCHED_POLICY: u64 = 39;
    /// Reported by the cleaner (not the blob): tracing the jump or
    /// unmapping the restorer region failed.
    pub const CLEANER: u64 = 40;
    /// Not a failure: `Args::fault` set to this (tests) makes criu run the
    /// blob without a cleaner, as when tracing is not possible.
    pub const NO_CLEANER: u64 = 41;
    /// POSIX timers: PR_TIMER_CREATE_RESTORE_IDS on or off, timer_create
    /// (or it gave another id), timer_settime.
    pub const TIMER_IDS: u64 = 42;
    pub const TIMER_CREATE: u64 = 43;
    pub const TIMER_ARM: u64 = 44;
    /// F_SETSIG / F_SETOWN_EX on a restored fd.
    pub const FOWN: u64 = 45;
    /// A thread entering seccomp strict mode, its last step.
    pub const SECCOMP: u64 = 46;
    /// set_thread_area (a GDT TLS entry).
    pub const TLS: u64 = 47;
    /// seccomp(SECCOMP_SET_MODE_FILTER) of one of the thread's filters.
    pub const SECCOMP_FILTER: u64 = 48;
    /// An AIO ring: io_setup, a ring unlike the dumped one (EINVAL), the
    /// requests that move its tail, or the move to the old address.
    pub const AIO_SETUP: u64 = 49;
    pub const AIO_RING: u64 = 50;
    pub const AIO_SUBMIT: u64 = 51;
    pub const AIO_MOVE: u64 = 52;
}

words! {
    /// `(offset from the start of Args, element count)` of a tail array.
    pub struct Slice {
        pub off: u64,
        pub n: u64,
    }
}

words! {
    /// An address range.
    pub struct Range {
        pub start: u64,
        pub len: u64,
    }
}

words! {
    /// Move `len` bytes of mappings from `from` to `to` (mremap), then (for the
    /// task's areas) set `prot` and apply every `madvise` advice whose bit is
    /// set in `madv` (bit n = advice n).
    pub struct Move {
        pub from: u64,
        pub to: u64,
        pub len: u64,
        pub prot: u64,
        pub madv: u64,
    }
}

words! {
    /// mmap(to, len, prot, flags | MAP_FIXED, fd, pgoff), then the madvise
    /// bits, then MADV_GUARD_INSTALL on each of `guards` (`Range`s).
    pub struct FileMap {
        pub to: u64,
        pub len: u64,
        pub prot: u64,
        pub flags: u64,
        pub fd: u64,
        pub pgoff: u64,
        pub madv: u64,
        pub guards: Slice,
    }
}

words! {
    /// One `rt_sigaction` (the kernel's `struct sigaction` follows `signo`).
    pub struct Sigaction {
        pub signo: u64,
        pub handler: u64,
        pub flags: u64,
        pub restorer: u64,
        pub mask: u64,
    }
}

words! {
    /// One `setitimer(which, {interval, value})`.
    pub struct Itimer {
        pub which: u64,
        pub interval_sec: u64,
        pub interval_usec: u64,
        pub value_sec: u64,
        pub value_usec: u64,
    }
}

words! {
    /// One POSIX timer: timer_create(clock, {notify, signo, sival, tid})
    /// with id `id` (PR_TIMER_CREATE_RESTORE_IDS), then, when `value` is not
    /// zero, timer_settime(id, 0, {interval, value}): relative, or absolute
    /// from `Args::dump_clocks` when that has its clock.
    pub struct PosixTimer {
        pub id: u64,
        pub clock: u64,
        /// SIGEV_* as the kernel takes it (SIGEV_THREAD_ID | SIGEV_SIGNAL
        /// for a thread-directed one, whose target is `tid`).
        pub notify: u64,
        pub signo: u64,
        pub sival: u64,
        pub tid: u64,
        pub value: [u64; 2],
        pub interval: [u64; 2],
    }
}

words! {
    /// The I/O signal settings of fd `fd`: F_SETSIG(`signum`) when it is
    /// not 0, and F_SETOWN_EX({`pid_type`, `pid`}) when `pid` is not 0.
    pub struct Fown {
        pub fd: u64,
        pub signum: u64,
        pub pid_type: u64,
        pub pid: u64,
    }
}

/// Words of a 128-byte siginfo.
pub const SIGINFO_WORDS: usize = 16;

words! {
    /// A pending signal to queue: shared (to the process) or private (to the
    /// thread), and its siginfo (`si_signo` in the low half of word 0).
    pub struct Pending {
        pub shared: u64,
        pub info: [u64; SIGINFO_WORDS],
    }
}

words! {
    /// One seccomp filter: seccomp(SECCOMP_SET_MODE_FILTER, `flags`, its
    /// `insns`: one `struct sock_filter` per u64 word, `n` of them).
    pub struct SeccompFilter {
        pub flags: u64,
        pub insns: Slice,
    }
}
words! {
    /// The task's credentials, applied in CRIU's order (see the blob).
    pub struct Creds {
        pub uid: u64,
        pub euid: u64,
        pub suid: u64,
        pub fsuid: u64,
        pub gid: u64,
        pub egid: u64,
        pub sgid: u64,
        pub fsgid: u64,
        pub secbits: u64,
        /// Capability sets, bit n = capability n.
        pub cap_inh: u64,
        pub cap_prm: u64,
        pub cap_eff: u64,
        pub cap_bnd: u64,
        pub cap_amb: u64,
        /// Highest capability number the kernel knows (/proc/sys/kernel/cap_last_cap).
        pub cap_last_cap: u64,
        /// Supplementary groups: u32 each, packed.
        pub groups: Slice,
    }
}

words! {
    /// One more thread of the task. The leader creates it, once memory is in
    /// place and before it drops its own credentials, with clone3
    /// (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
    /// CLONE_SYSVSEM, `set_tid` = `tid`) on its own stack in the restorer
    /// region; the thread restores its own state, reports done, waits for
    /// the leader's go, and loads its own frame with `rt_sigreturn`.
    pub struct Thread {
        pub tid: u64,
        /// `flag::CREDS`, `flag::NO_NEW_PRIVS`, `flag::SCHED`.
        pub flags: u64,
        /// Its stack: [stack, stack + stack_size), in the restorer region.
        pub stack: u64,
        pub stack_size: u64,
        /// Absolute address of its rt_sigframe (64-byte aligned).
        pub frame: u64,
        pub clear_tid_addr: u64,
        /// As `Args::robust_list`.
        pub robust_list: [u64; 2],
        /// As `Args::rseq`.
        pub rseq: [u64; 3],
        pub fs_base: u64,
        pub gs_base: u64,
        /// As `Args::tls`.
        pub tls: [u64; 6],
        /// Its comm, NUL-padded (all zero: keep the leader's).
        pub comm: [u64; 2],
        /// nice (as i64), policy, rt priority (with `flag::SCHED`).
        pub sched: [u64; 3],
        pub pdeath_sig: u64,
        pub creds: Creds,
        /// Its private pending signals (`Pending`s).
        pub pending: Slice,
        /// Its seccomp filters (`SeccompFilter`s), in installation order.
        pub seccomp: Slice,
    }
}

words! {
    /// An AIO context to recreate: its ring was at `addr` (the context id),
    /// `len` bytes, made by io_setup(`nr_req`); the dumped ring is premapped
    /// there (moved into place like any private area).
    pub struct AioRing {
        pub addr: u64,
        pub len: u64,
        pub nr_req: u64,
    }
}

words! {
    /// `struct prctl_mm_map` fields but the auxv pointer and exe fd.
    pub struct MmMap {
        pub start_code: u64,
        pub end_code: u64,
        pub start_data: u64,
        pub end_data: u64,
        pub start_brk: u64,
        pub brk: u64,
        pub start_stack: u64,
        pub arg_start: u64,
        pub arg_end: u64,
        pub env_start: u64,
        pub env_end: u64,
    }
}

words! {
    /// Everything the blob does, in the order it does it.
    pub struct Args {
        pub magic: u64,
        pub flags: u64,
        /// The report pipe (u64 0 = ready, else step << 32 | -errno).
        pub ready_fd: u64,
        /// glibc's rseq registration of the restoring process, dropped first:
        /// pointer, length and signature (length 0: none).
        pub old_rseq: [u64; 3],
        /// Our vDSO areas: moved into the restorer region before anything is
        /// unmapped, and from there to the task's addresses at the end.
        pub park: Slice,
        pub unpark: Slice,
        /// Everything in [0, task_size) outside these ranges (sorted, disjoint)
        /// is unmapped: the restorer region and the premapped areas.
        pub keep: Slice,
        pub task_size: u64,
        /// Premapped areas to their places (`Move`s).
        pub moves: Slice,
        /// Shared file mappings (`FileMap`s).
        pub file_maps: Slice,
        pub mm: MmMap,
        /// The saved auxv (u64 words) and the exe fd (u64::MAX: none).
        pub auxv: Slice,
        pub exe_fd: u64,
        /// The task's comm, NUL-padded (all zero: keep ours).
        pub comm: [u64; 2],
        pub sigactions: Slice,
        pub itimers: Slice,
        pub clear_tid_addr: u64,
        /// set_robust_list(ptr, len); len 0: clear it (ours points into criu).
        pub robust_list: [u64; 2],
        /// The task's rseq: pointer, length, signature (length 0: none).
        pub rseq: [u64; 3],
        pub fs_base: u64,
        pub gs_base: u64,
        /// GDT TLS entries 12..=14 to set_thread_area, two words each:
        /// entry_number | base_addr << 32, limit | flags << 32 (struct
        /// user_desc); entry_number 0: leave that slot empty.
        pub tls: [u64; 6],
        pub personality: u64,
        /// The leader's nice (as i64), policy, rt priority (with `flag::SCHED`).
        pub sched: [u64; 3],
        /// The other threads (`Thread`s), created after the memory is in place.
        pub threads: Slice,
        /// Offset of two words the blob's threads synchronise on (futexes on
        /// their low halves): threads done, and the leader's go.
        pub sync: u64,
        pub creds: Creds,
        /// PR_SET_DUMPABLE after the creds (changing ids resets it): 0, 1,
        /// or 2 (SUID_DUMP_ROOT: kept if the kernel left it, else 0);
        /// u64::MAX: leave it.
        pub dumpable: u64,
        pub pending: Slice,
        /// The POSIX timers (`PosixTimer`s), made once every thread exists
        /// (a timer may signal any of them), just before the pending signals.
        pub posix_timers: Slice,
        /// CLOCK_MONOTONIC and CLOCK_BOOTTIME (ns) when the dump read the
        /// timers, where the task's clocks went on from (a new time
        /// namespace); u64::MAX: unknown (timers are armed relative).
        pub dump_clocks: [u64; 2],
        /// Owners and I/O signals of the task's fds (`Fown`s), set as the
        /// task (after the creds) once every thread exists.
        pub fowns: Slice,
        pub pdeath_sig: u64,
        /// Service fds to close before the jump (u32 each, packed).
        pub close_fds: Slice,
        /// Offset of the rt_sigframe (64-byte aligned) from the start of Args.
        pub frame: u64,
        /// Tests: fail at this step (with ECANCELED) as if its call had.
        pub fault: u64,
        /// The leader's seccomp filters (`SeccompFilter`s), in installation
        /// order: the last thing it does before `rt_sigreturn` (see
        /// `flag::SECCOMP_EARLY`); a TSYNC one covers every thread.
        pub seccomp: Slice,
        /// AIO rings (`AioRing`s), recreated once memory is in place, and
        /// an fd open on /dev/null for them (u64::MAX: none).
        pub aio_rings: Slice,
        pub aio_null_fd: u64,
    }
}
