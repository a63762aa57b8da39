//! The experiments the kernel feature probes (`kerndat`, `criu check`) run:
//! forked children that try a feature and report by exit code, throwaway
//! mappings, AIO rings, mounts, and the one-off ioctls/prctls they ask
//! about. Calls criu itself uses live in their own modules (`kcmp`,
//! `pagemap`, `inotify`, `ptrace`, `pidfd`).
//!
//! Everything exported here is safe to call: pointers handed to the kernel
//! point at locals or at memory this module owns, new descriptors come back
//! as `OwnedFd`, and code that runs in a forked (or cloned) child only makes
//! raw syscalls before `_exit()`, so it never touches a lock another thread
//! of the parent might have held at fork time.

use std::ffi::CStr;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

pub use super::ret::Res;
use super::ret::{check, check_int, own_fd};

/// Page size the probes assume (x86_64, aarch64 4K kernels).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as usize } else { 4096 }
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
mod children;
pub use children::*;
mod calls;
pub use calls::*;
mod mounts;
pub use mounts::*;
