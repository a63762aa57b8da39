//! The only place `unsafe` is allowed: small typed wrappers over syscalls,
//! each unsafe block with a `// SAFETY:` line.
#![allow(unsafe_code)]

pub mod fanotify;
pub mod fd;
pub mod inherited;
pub mod inotify;
pub mod kcmp;
pub mod pagemap;
pub mod probe;
mod ret;
pub mod signals;
pub mod x86;
pub mod pidfd;
pub mod pod;
pub mod ptrace;
pub mod scm;
pub mod clone;
pub mod mm;
pub mod rlimit;
pub mod sched;
pub mod alarm;
pub mod restorer;
pub mod daemon;
pub mod tty;
pub mod wait;
pub mod sockopt;
pub mod sockopt_raw;
pub mod nlsock;
pub mod packet;
pub mod tun;
pub mod fsmount;
pub mod anonfd;
pub mod fhandle;
pub mod sigreset;
pub mod timers;
pub mod locks;
pub mod xattr;
pub mod caps;
pub mod sysvipc;
