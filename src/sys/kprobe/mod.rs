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

mod anon;
pub use anon::*;
mod uffd;
pub use uffd::*;
mod pagemap;
pub use pagemap::*;
mod ptrace;
pub use ptrace::*;
mod children;
pub use children::*;
mod calls;
pub use calls::*;
mod mounts;
pub use mounts::*;
