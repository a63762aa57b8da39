//! Helpers shared by integration tests: start a target program the way the
//! fixtures' programs were started (own session, fds 0-2 on /dev/null, cwd
//! /), run the criu binary, read a task's state, end what a test started,
//! decode an image, use CRIU 4.2's fixtures.

#![allow(dead_code)]

mod criu_bin;
mod fixtures;
mod procs;
mod target;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use criu_bin::*;
#[allow(unused_imports)]
pub use fixtures::*;
#[allow(unused_imports)]
pub use procs::*;
#[allow(unused_imports)]
pub use target::*;
