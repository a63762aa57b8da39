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
//! - **Remote syscall** (kill-safe, `rescue`): at the first one, compel
//!   finds a `syscall; ret` and an `rt_sigreturn` stub in the task's own
//!   read-only code and writes, below the task's stack pointer (past the
//!   red zone), a "home" signal frame with the seized registers, FPU state
//!   and signal mask (what a signal delivered there would take, plus one
//!   512-byte slot; the rest of any chain lives in a rescue page of ours). A syscall runs at that `syscall; ret` with the stack
//!   pointer at the current rescue chain (registers set first, then every
//!   signal blocked), under `PTRACE_SYSCALL`; its result is read at the
//!   syscall-exit stop. Nothing of the task's code is overwritten. If criu
//!   dies at any moment, the task finishes the syscall, `ret` enters the
//!   chain: one frame per thing to undo (close an fd we made, unmap an area
//!   we mapped; each frame runs that syscall at the gadget, signals
//!   blocked), then the home frame puts it back exactly where it was
//!   (mask, FPU and sigaltstack too; a `nanosleep`-like syscall interrupted
//!   by the seize returns `EINTR`, as after any signal handler). Between
//!   our steps the task either has its seized state back (nothing to undo)
//!   or is parked at the gadget's `ret` with its stack at the chain. What
//!   we map goes at an address chosen in a free gap and is on the undo
//!   list before the mmap runs (`MAP_FIXED_NOREPLACE`); a socketpair's two
//!   fds are the lowest free ones, on the list before it runs. Putting
//!   the task back writes FPU state, mask, then registers (the last write
//!   hands it back). A thread without the gadgets or room on its stack, or
//!   with a CET shadow stack, falls back (logged) to the old way: `syscall;
//!   int3` poked over the first word of its first executable mapping (where
//!   CRIU's compel puts it), which a killed criu can leave behind.
//! - **Infect**: one anonymous RWX mapping holds the relocated blob, a boot
//!   page, receive/transmit buffers and the parasite stack.
//!   The control channel is a `SOCK_SEQPACKET` socketpair made inside the
//!   task; our end is pulled out with `pidfd_getfd`, so no socket name or
//!   network namespace is involved. The parasite greets us with its pid.
//! - **Cure**: `PTRACE_INTERRUPT` the idle parasite (it sits in `recvmsg`),
//!   close the socket, remote `close` + `munmap`, restore the FPU state,
//!   signal mask and registers, detach.
//! - **Safety net**: if we die while the parasite runs, the kernel detaches
//!   the task and closes our socket end; the parasite reads EOF and
//!   `rt_sigreturn`s into the rescue chain, which closes its socket, unmaps
//!   its area and goes home. Without a chain (the fallback), it loads a
//!   frame of the seized state kept in its area, which then stays behind.
//!
//! Files: `seize.rs` seizing and releasing, `seize/syscalls.rs` remote
//! syscalls and what compel maps and opens with them, `rescue.rs` the
//! chain, `infect.rs` the parasite, `rseq.rs` rseq critical sections.
//!
//! Limits:
//! - One thread per `Seized`. Seize every thread of the process before
//!   running syscalls or the parasite in one of them (as CRIU does): the
//!   parasite's area and the fds it makes belong to the whole process (and,
//!   in the fallback, the syscall instruction is briefly written into text
//!   the other threads share). [`Seized::seize_process`] does that: it seizes the leader and
//!   every thread, listing /proc/PID/task again after each round of stops
//!   until no new thread shows up (only a running thread can make one),
//!   skipping threads that exit on the way. The parasite runs in the
//!   leader only; per-thread questions are remote syscalls in each thread.
//! - ptrace requests must come from the seizing thread: the handles are `!Send`.
//! - x86_64 only for now (`Blob::SUPPORTED`); no parasite in threads using a
//!   CET shadow stack; the RWX mapping fails under `PR_SET_MDWE` or an
//!   SELinux policy denying execmem.
//! - A stopped task whose criu is killed stays stopped, still in its
//!   chain: what we mapped or opened goes once it is continued.
//! - The home frame (and one slot) are written below the stack pointer, as
//!   a signal frame would be; a thread on a stack too small for a signal
//!   frame (which no ABI allows) would see the memory below it changed.
//! - Tasks under seccomp are seized with `PTRACE_O_SUSPEND_SECCOMP` (needs
//!   CAP_SYS_ADMIN), so our syscalls are not filtered.

mod blob;
mod infect;
pub mod proto;
mod rescue;
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
