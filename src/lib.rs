//! criu-rs: a drop-in replacement for CRIU, as a library behind the `criu`
//! binary so tests and benches can drive the engine directly.
//!
//! Layout (by object kind, CRIU's stages in `ops`):
//! - [`cli`], [`opts`], [`config`]: CRIU's command line and config files, one `Opts`.
//! - [`log`]: CRIU-format logging through `tracing`.
//! - [`images`]: image files (magics, framing, typed protobuf entries, pagemap/pages).
//! - [`kerndat`]: kernel feature probes (what `criu check` reports).
//! - [`ops`]: the commands (check, ...), thin orchestration.
//! - [`crit`]: images as CRIU's crit JSON.
//! - [`sys`]: the few wrappers allowed to use `unsafe`.

#![deny(unsafe_code)]

pub mod arch;
pub mod cgroup;
pub mod cli;
pub mod compel;
pub mod config;
pub mod crit;
pub mod files;
pub mod images;
pub mod ipc;
pub mod kerndat;
pub mod log;
pub mod mem;
pub mod net;
pub mod ns;
pub mod ops;
pub mod opts;
pub mod proc;
pub mod restorer;
pub mod rpc;
pub mod scripts;
pub mod task;
pub mod sockets;
pub mod stats;
pub mod sys;

/// The CRIU version we are compatible with (what `--version` reports).
pub const CRIU_VERSION: &str = "4.2";
/// The RPC version numbers matching [`CRIU_VERSION`].
pub const CRIU_VERSION_MAJOR: i32 = 4;
pub const CRIU_VERSION_MINOR: i32 = 2;
