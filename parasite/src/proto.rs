//! The control protocol between compel (the host side, which includes this
//! file as `criu::compel::proto`) and the parasite.
//!
//! Everything here is `#[repr(C)]` plain data made of fixed-size integers
//! with explicit padding fields, so both sides can view the same bytes as
//! the same struct. This file uses `core` only and holds no code with side
//! effects: it must build both in the `#![no_std]` parasite and in the crate.
//!
//! Transport: one `SOCK_SEQPACKET` unix socket. The host sends a [`Request`]
//! header followed by `len` argument bytes (file descriptors, if any, travel
//! as `SCM_RIGHTS`); the parasite answers with a [`Reply`] header followed by
//! `len` reply bytes (and `nfds` descriptors). The parasite speaks first, once,
//! with a `CMD_HELLO` reply carrying a [`Hello`].

/// Bumped whenever a struct below changes.
pub const VERSION: u32 = 2;
/// Marks a valid [`BootArgs`] (the parasite refuses to start without it).
pub const BOOT_MAGIC: u64 = 0x7261_7361_7469_6365;
/// Largest argument or reply payload (bytes after the header).
pub const MAX_PAYLOAD: usize = 60 * 1024;
/// Most descriptors one message may carry.
pub const MAX_FDS: usize = 16;

/// The parasite's greeting (not a request).
pub const CMD_HELLO: u32 = 0;
pub const CMD_PING: u32 = 1;
pub const CMD_DUMP_SIGACTS: u32 = 2;
pub const CMD_DUMP_MISC: u32 = 3;

/// Written by the host into the parasite's argument page before start;
/// the entry stub passes its address as the first argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootArgs {
    pub magic: u64,
    /// The parasite's end of the control socket (an fd in the target).
    pub sock: i32,
    pub _pad: u32,
    /// Stack pointer to load before `rt_sigreturn` (the prepared frame).
    pub sigreturn_sp: u64,
    /// Where the parasite stores the task's `sigaltstack` (inside the frame).
    pub sas: u64,
    /// Receive buffer (a [`Request`] plus [`MAX_PAYLOAD`] bytes).
    pub rx: u64,
    /// Transmit buffer (a [`Reply`] plus [`MAX_PAYLOAD`] bytes).
    pub tx: u64,
    /// Size of each of `rx` and `tx`.
    pub buf_len: u64,
}

/// Host → parasite header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub cmd: u32,
    /// Argument bytes following the header.
    pub len: u32,
}

/// Parasite → host header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub cmd: u32,
    /// 0, or a negative errno.
    pub status: i32,
    /// Reply bytes following the header.
    pub len: u32,
    /// Descriptors attached with `SCM_RIGHTS`.
    pub nfds: u32,
}

/// Payload of `CMD_HELLO`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    pub pid: i32,
    pub tid: i32,
    pub _pad: u32,
}

/// `CMD_PING` arguments: echoed back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingArgs {
    pub cookie: u64,
}

/// `CMD_PING` reply: the cookie and the identity seen from inside.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingReply {
    pub cookie: u64,
    pub pid: i32,
    pub tid: i32,
}

/// The kernel's `struct sigaction` as `rt_sigaction(2)` sees it on x86_64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// Number of signals `CMD_DUMP_SIGACTS` reports (1..=64).
pub const NSIG: usize = 64;

/// `CMD_DUMP_SIGACTS` reply: `acts[sig - 1]`; SIGKILL and SIGSTOP stay zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigactsReply {
    pub acts: [KSigaction; NSIG],
}

/// `stack_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackT {
    pub sp: u64,
    pub flags: i32,
    pub _pad: u32,
    pub size: u64,
}

/// `struct timeval`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeval {
    pub sec: i64,
    pub usec: i64,
}

/// `struct itimerval`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimer {
    pub interval: Timeval,
    pub value: Timeval,
}

/// `CMD_DUMP_MISC` reply: per-task odds and ends read from inside.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MiscReply {
    pub umask: u32,
    pub personality: u32,
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// `prctl(PR_GET_DUMPABLE)`.
    pub dumpable: i32,
    /// `prctl(PR_GET_THP_DISABLE)`.
    pub thp_disabled: i32,
    /// `prctl(PR_GET_CHILD_SUBREAPER)`.
    pub child_subreaper: i32,
    pub _pad: u32,
    /// `brk(0)`: the current program break.
    pub brk: u64,
    /// The task's sigaltstack as it was when the parasite started.
    pub sas: StackT,
    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF.
    pub itimers: [Itimer; 3],
    /// `prctl(PR_GET_TID_ADDRESS)`: the clear_child_tid address.
    pub tid_address: u64,
    /// `prctl(PR_GET_SECUREBITS)`.
    pub securebits: u32,
    /// `prctl(PR_GET_PDEATHSIG)`.
    pub pdeath_sig: u32,
}

/// `struct iovec` (the parasite's own messages).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoVec {
    pub base: u64,
    pub len: u64,
}

// Layout checks shared by both sides.
const _: () = assert!(core::mem::size_of::<BootArgs>() == 56);
const _: () = assert!(core::mem::size_of::<Request>() == 8);
const _: () = assert!(core::mem::size_of::<Reply>() == 16);
const _: () = assert!(core::mem::size_of::<SigactsReply>() == 64 * 32);
const _: () = assert!(core::mem::size_of::<MiscReply>() == 48 + 24 + 96 + 16);
