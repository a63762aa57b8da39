//! zdtm_run: the zdtm runner from the command line (the same code as
//! `cargo test --test zdtm`). Without a mode option it dumps and restores
//! each test (like CRIU's `zdtm.py run`); `--selftest` runs cargo test's plan,
//! `--interop` the matrix with the reference CRIU 4.2.
//!
//!   target/debug/zdtm_run [--criu PATH | --dump-criu PATH --restore-criu PATH]
//!                         [--interop [--criu42 PATH]] [OPTIONS] [TEST...]   (--help)

#[path = "../runner.rs"]
mod runner;

use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = runner::parse_desc(runner::DESC).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let bindir: PathBuf = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_else(|| ".".into());
    // The checkout this runner was built from (zdtm/ is one of its crates).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bins = runner::Criu {
        ours: bindir.join("criu"),
        reference: runner::interop::default_reference(&repo),
    };
    let cli = match runner::parse_cli(&args, &all, Some(runner::Mode::Cr), &bins) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    };
    for s in &cli.skipped {
        runner::say(s);
    }
    let uses_default = cli
        .plans
        .iter()
        .any(|p| p.mode != runner::Mode::NoCr && (p.dump_criu.is_none() || p.restore_criu.is_none()));
    if uses_default && !bins.ours.is_file() {
        eprintln!(
            "no criu binary at {} (build it, or pass --criu PATH)",
            bins.ours.display()
        );
        std::process::exit(2);
    }
    let base = bindir
        .parent()
        .map(|t| t.join("zdtm"))
        .unwrap_or_else(|| PathBuf::from("zdtm-work"));
    let cfg = runner::Config {
        criu: bins.ours.clone(),
        bindir,
        workroot: runner::new_workroot(&base),
        jobs: cli.jobs.unwrap_or_else(runner::default_jobs),
        keep: cli.keep,
        criu_timeout: std::time::Duration::from_secs(300),
        verbose: cli.verbose,
        as_user: true,
    };
    let sum = runner::run(&cfg, &cli.plans);
    std::process::exit(if sum.failed == 0 { 0 } else { 1 });
}
