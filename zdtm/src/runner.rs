//! The zdtm runner: starts each test program, dumps and restores it with
//! our `criu`, compares what /proc shows of it before and after, then
//! sends SIGTERM and collects the program's own verdict.
//!
//! The /proc snapshot and its compare live in `snapshot.rs` (with
//! `snap_maps.rs`, `snap_fds.rs`, `snap_pagemap.rs`); the differences
//! excused as known, named gaps in `known_gaps.rs`.
//!
//! Shared by `tests/zdtm.rs` (the cargo integration test, which includes
//! this file with `#[path]`) and `src/bin/zdtm_run.rs` (a command-line
//! runner). Only std and libc, so both crates can build it.
//!
//! Process handling: the runner makes itself a child subreaper, so tasks
//! that `criu restore -d` leaves behind are reparented to it, and one
//! reaper thread collects every child's exit status (`waitpid(-1)`); the
//! rest of the runner waits through it and never calls waitpid itself.
//!
//! The runner's parts live in `runner/`: the test list (`desc`), the modes
//! and plans (`plan`), the command line (`cli`), the reaper (`reaper`),
//! task states around a dump (`held`), one test's life cycle (`case`),
//! its compare (`compare`), what each mode does (`modes`), the
//! self-tests (`selftest`), reporting (`report`) and the plan loop
//! (`driver`); the interop matrix glue in `interop.rs`.

#![allow(dead_code)]

/// The test list with flags (see the file's header).
pub const DESC: &str = include_str!("../tests.desc");

/// uid/gid the tests without the `suid` flag run as (zdtm's).
pub const TEST_UID: u32 = 18943;
/// A variable every test gets; env00 checks it survives.
pub const ENV_PROBE: (&str, &str) = ("ZDTM_ENV_PROBE", "zdtm env: spaces = equals, \u{fc}nicode");
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// What maps00 writes at the start of each page of its private mapping.
pub const PAGE_MARKER: &[u8] = b"ZDTM-MAPS00-PAGE";

#[path = "interop.rs"]
pub mod interop;
#[path = "timens.rs"]
pub mod timens;
#[path = "snapshot.rs"]
pub mod snapshot;
#[path = "snap_maps.rs"]
pub mod snap_maps;
#[path = "snap_fds.rs"]
pub mod snap_fds;
#[path = "snap_pagemap.rs"]
pub mod snap_pagemap;
#[path = "known_gaps.rs"]
pub mod known_gaps;
#[path = "runner/desc.rs"]
mod desc;
#[path = "runner/plan.rs"]
mod plan;
#[path = "runner/cli.rs"]
mod cli;
#[path = "runner/reaper.rs"]
mod reaper;
#[path = "runner/held.rs"]
mod held;
#[path = "runner/case.rs"]
mod case;
#[path = "runner/compare.rs"]
mod compare;
#[path = "runner/modes.rs"]
mod modes;
#[path = "runner/selftest.rs"]
mod selftest;
#[path = "runner/report.rs"]
mod report;
#[path = "runner/driver.rs"]
mod driver;
#[path = "runner/sysctl.rs"]
mod sysctl;

pub use snapshot::{Snapshot, descendants, diff, snapshot_tree, task_state};
// The runner's API as before the split; each crate including this file
// uses part of it.
#[allow(unused_imports)]
pub use case::{Res, Stage};
#[allow(unused_imports)]
pub use cli::{Cli, Config, Criu, Keep, USAGE, parse_cli};
#[allow(unused_imports)]
pub use desc::{TestDesc, parse_desc};
#[allow(unused_imports)]
pub use driver::{default_jobs, new_workroot, run};
#[allow(unused_imports)]
pub use plan::{Mode, Plan, SelfTest, default_plans};
#[allow(unused_imports)]
pub use reaper::{describe_status, run_cmd};
#[allow(unused_imports)]
pub use report::{Summary, say};
#[allow(unused_imports)]
pub use selftest::corrupt_pages;
