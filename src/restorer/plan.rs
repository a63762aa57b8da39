//! The restore plan: everything the restorer blob needs to turn the
//! restoring process into the task, as plain Rust data. criu builds it
//! (`restorer::task::prepare`); `restorer::jump` lays it out for the blob.

use std::os::fd::OwnedFd;

use crate::arch::{FpuState, Regs};
use crate::images::pb::{CredsEntry, RseqEntry, SaEntry, TaskTimersEntry, ThreadSasEntry};
use crate::mem::premap::MemPlan;

/// prctl(PR_SET_MM_MAP): its fields and the auxv (built by `mem::mm::mm_map`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MmMap {
    pub map: super::proto::MmMap,
    pub auxv: Vec<u64>,
}

/// A thread's scheduling: nice, policy and real-time priority.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sched {
    pub nice: i32,
    pub policy: u32,
    pub prio: u32,
}

/// A thread's seccomp state, entered as the restorer's last step before
/// its rt_sigreturn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    #[default]
    Off,
    /// SECCOMP_MODE_STRICT.
    Strict,
    /// These filters, installed in this order (oldest first) with their
    /// flags (a leader's TSYNC ones give every thread the same).
    Filters(Vec<crate::task::seccomp::Filter>),
}

/// One thread but the leader: the restorer creates it with its tid, and
/// it restores this state itself before its own rt_sigreturn.
#[derive(Debug, Clone)]
pub struct ThreadPlan {
    pub tid: i32,
    pub regs: Regs,
    pub fpu: FpuState,
    pub sigmask: u64,
    pub sigaltstack: Option<ThreadSasEntry>,
    pub clear_tid_addr: u64,
    pub rseq: Option<RseqEntry>,
    /// GDT TLS entries (`proto::Args::tls`).
    pub tls: [u64; 6],
    /// set_robust_list(head, len).
    pub robust_list: (u64, u32),
    pub comm: Option<String>,
    pub creds: Option<CredsEntry>,
    pub pdeath_sig: u32,
    pub sched: Option<Sched>,
    /// Its seccomp mode and filters.
    pub seccomp: Seccomp,
    /// Its private pending siginfos (128 bytes each).
    pub pending: Vec<Vec<u8>>,
}

/// The task's state the restorer sets before jumping into it.
#[derive(Debug)]
pub struct Plan {
    pub pid: i32,
    /// The root to chroot into (criu's view of its path) just before the
    /// jump: our own restore work needs the host's /proc until then.
    pub chroot: Option<String>,
    pub mem: MemPlan,
    pub mm: MmMap,
    /// The executable, for PR_SET_MM_MAP's exe_fd.
    pub exe_fd: Option<OwnedFd>,
    /// Signals 1..=64 but SIGKILL/SIGSTOP, in order (62 entries).
    pub sigactions: Vec<SaEntry>,
    pub itimers: Option<TaskTimersEntry>,
    /// POSIX timers, made by the restorer once every thread exists.
    pub posix_timers: Vec<crate::images::pb::PosixTimerEntry>,
    /// Per fd: its owner and I/O signal (set by the restorer as the task).
    pub fowns: Vec<(i32, crate::images::pb::FownEntry)>,
    pub sigaltstack: Option<ThreadSasEntry>,
    pub clear_tid_addr: u64,
    pub rseq: Option<RseqEntry>,
    /// GDT TLS entries (`proto::Args::tls`).
    pub tls: [u64; 6],
    pub personality: u32,
    pub creds: Option<CredsEntry>,
    pub pdeath_sig: u32,
    /// The leader's scheduling (None: leave ours).
    pub sched: Option<Sched>,
    /// The leader's seccomp mode and filters.
    pub seccomp: Seccomp,
    /// The other threads, in the order they are created.
    pub threads: Vec<ThreadPlan>,
    /// PR_SET_DUMPABLE after the creds change (None: leave as is).
    pub dumpable: Option<i32>,
    /// set_robust_list(head, len).
    pub robust_list: (u64, u32),
    /// Pending siginfos: (shared with the process, 128-byte siginfo).
    pub pending: Vec<(bool, Vec<u8>)>,
    /// Registers, FPU state and signal mask the task resumes with.
    pub regs: Regs,
    pub fpu: FpuState,
    pub sigmask: u64,
    /// Where the restorer reports: it writes 0 just before it jumps into the
    /// task, or an error, and closes it.
    pub ready_fd: OwnedFd,
    /// criu's go-ahead: the cleaner holds the restored task (everything in
    /// place, not yet running) after reporting [`HELD`], until criu writes
    /// `g` here (post-restore and pre-resume run meanwhile); EOF kills it.
    pub go_fd: Option<OwnedFd>,
    /// `-s`: every thread is let go with SIGSTOP, so the task is in a
    /// group stop when restore ends (running again on SIGCONT).
    pub leave_stopped: bool,
    /// The signal that had stopped the task at dump time (0: it ran): the
    /// cleaner queues it just before it lets the task go, so the task
    /// resumes into the same group stop (not with `-s`, which stops it
    /// anyway).
    pub stop_signo: i32,
    /// PR_SET_CHILD_SUBREAPER: set by the cleaner after criu's go-ahead,
    /// once every restored task's cleaner exists (an orphaned cleaner goes
    /// to the nearest subreaper: it must not be this task).
    pub child_subreaper: bool,
    /// An fd table shared with another task (CLONE_FILES): the service fds
    /// that are this task's (the restorer closes only these; the other
    /// task's are in the table too). None: every fd above the task's.
    pub own_fds: Option<Vec<i32>>,
}

/// The report word meaning "restored, held until the go-ahead".
pub const HELD: u64 = 1;
