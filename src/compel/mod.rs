//! compel: the parasite engine. Seize a task, run syscalls inside it, load
//! the parasite blob (`parasite/`) into it, talk to the parasite, and cure
//! the task so it resumes exactly as before.
//!
//! ```text
//! Seized::seize(pid)? ──syscall(nr, args)──▶ i64
//!    │ .infect()?
//!    ▼
//! Infected ──call::<C: ParasiteCmd>(&args)──▶ C::Reply
//!    │ .cure()?  (also on Drop)          .cure_keep_seized()? ──▶ Seized
//!    ▼
//! task detached, registers, FPU state and signal mask as seized
//! ```
//!
//! How a task is driven (x86_64; `crate::arch` holds the CPU specifics):
//! - **Seize**: `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, then save the general
//!   registers, the XSAVE area and the signal mask. A task found in a group
//!   stop (or with a SIGSTOP queued) is stopped again on release.
//! - **Remote syscall**: `syscall; int3` is poked over the first word of
//!   the task's first executable mapping (where CRIU's compel puts it, so
//!   both leave the same text page private), registers set (`orig_rax = -1`, so a
//!   syscall the task was stopped in is not restarted under us), the task
//!   runs with every signal blocked until the trap, then the text word and
//!   registers are put back. Restoring the untouched saved registers at the
//!   end lets the kernel restart an interrupted `nanosleep`/`pause` itself.
//! - **Infect**: one anonymous RWX mapping holds the relocated blob, a boot
//!   page, receive/transmit buffers, the parasite stack and, above the stack,
//!   an `rt_sigframe` with the saved registers, FPU state and signal mask.
//!   The control channel is a `SOCK_SEQPACKET` socketpair made inside the
//!   task; our end is pulled out with `pidfd_getfd`, so no socket name or
//!   network namespace is involved. The parasite greets us with its pid.
//! - **Cure**: `PTRACE_INTERRUPT` the idle parasite (it sits in `recvmsg`),
//!   close the socket, remote `close` + `munmap`, restore the general and FPU
//!   registers and the signal mask, detach.
//! - **Safety net**: if we die while the parasite runs, the kernel detaches
//!   the task and closes our socket end; the parasite reads EOF and loads the
//!   prepared frame with `rt_sigreturn`, so the task carries on. That path
//!   leaves the parasite mapping (and nothing else) behind in the task, and a
//!   `nanosleep`-like syscall interrupted by the seize returns `EINTR`
//!   (rt_sigreturn discards the kernel's restart block); `pause`-like ones
//!   restart. A SIGKILL during the few remote syscalls of infect or cure
//!   themselves is not covered (nor is it in CRIU).
//!
//! Limits:
//! - One thread per `Seized`. Seize every thread of the process before
//!   running syscalls or the parasite in one of them (as CRIU does): the
//!   syscall instruction is briefly written into text the other threads
//!   share. [`Seized::seize_process`] does that: it seizes the leader and
//!   every thread, listing /proc/PID/task again after each round of stops
//!   until no new thread shows up (only a running thread can make one),
//!   skipping threads that exit on the way. The parasite runs in the
//!   leader only; per-thread questions are remote syscalls in each thread.
//! - ptrace requests must come from the seizing thread: the handles are `!Send`.
//! - x86_64 only for now (`Blob::SUPPORTED`); no parasite in threads using a
//!   CET shadow stack; the RWX mapping fails under `PR_SET_MDWE` or an
//!   SELinux policy denying execmem.
//! - Tasks under seccomp are seized with `PTRACE_O_SUSPEND_SECCOMP` (needs
//!   CAP_SYS_ADMIN), so our syscalls are not filtered.

mod blob;
mod infect;
pub mod proto;
pub mod rseq;
mod seize;

pub use blob::Blob;
pub use infect::{Infected, RemoteMap};
pub use proto::{DumpMisc, DumpSigacts, ParasiteCmd, Ping};
pub use seize::{Seized, ThreadState};

use nix::errno::Errno;

/// What can go wrong; every variant names the task.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall or ptrace request failed.
    #[error("task {pid}: {op}: {errno}")]
    Sys { pid: i32, op: &'static str, errno: Errno },
    /// The task exited or was killed (or is a zombie).
    #[error("task {pid} is gone: {what}")]
    Gone { pid: i32, what: String },
    /// The task stopped in a way we did not cause (e.g. a fault).
    #[error("task {pid}: unexpected stop: {what}")]
    Unexpected { pid: i32, what: String },
    /// A syscall run inside the task returned an error.
    #[error("task {pid}: remote {op}: {errno}")]
    Remote { pid: i32, op: &'static str, errno: Errno },
    /// A parasite command returned an error.
    #[error("task {pid}: parasite command {cmd}: {errno}")]
    Command { pid: i32, cmd: u32, errno: Errno },
    /// The parasite said something we did not expect, or went silent.
    #[error("task {pid}: parasite protocol: {what}")]
    Protocol { pid: i32, what: String },
    /// Someone else traces the task (ptrace allows one tracer): CRIU
    /// refuses such a task too.
    #[error("task {pid} is traced by {tracer}: a task under another tracer can't be dumped")]
    Traced { pid: i32, tracer: i32 },
    /// The parasite cannot run in this task (no blob for this architecture,
    /// or the thread uses a shadow stack).
    #[error("task {pid}: the parasite cannot run here (architecture or shadow stack)")]
    Unsupported { pid: i32 },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The errno this error carries (a failed syscall, local or remote, or
    /// a parasite command's), if any.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { errno, .. } | Error::Remote { errno, .. } | Error::Command { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Attach a pid and an operation name to an errno.
trait Ctx<T> {
    fn ctx(self, pid: nix::unistd::Pid, op: &'static str) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, Errno> {
    fn ctx(self, pid: nix::unistd::Pid, op: &'static str) -> Result<T> {
        self.map_err(|errno| Error::Sys { pid: pid.as_raw(), op, errno })
    }
}
