//! The only place `unsafe` is allowed: small typed wrappers over syscalls,
//! each unsafe block with a `// SAFETY:` line.
#![allow(unsafe_code)]

pub mod fd;
pub mod kprobe;
