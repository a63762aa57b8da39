//! Going to the background the way callers can rely on: the parent returns
//! only after the daemon has done its start-up (e.g. written its pidfile).

use std::io::{Read, Write};

use nix::unistd::ForkResult;

/// Fork; the child detaches (new session, cwd /, stdio on /dev/null), runs
/// `ready` and tells the parent, which then exits 0 (1 if the child failed
/// before that). Returns in the child only.
pub fn daemonize(ready: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let (r, w) = nix::unistd::pipe()?;
    // SAFETY: criu forks here while single-threaded; the child goes on with
    // normal Rust code.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { .. } => {
            drop(w);
            let mut b = [0u8; 1];
            let ok = std::fs::File::from(r).read(&mut b).map(|n| n == 1).unwrap_or(false);
            std::process::exit(if ok { 0 } else { 1 });
        }
        ForkResult::Child => {
            drop(r);
            nix::unistd::setsid()?;
            std::env::set_current_dir("/")?;
            let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
            for fd in 0..3 {
                super::fd::dup_to(std::os::fd::AsFd::as_fd(&null), fd)?;
            }
            ready()?;
            std::fs::File::from(w).write_all(b"1")?;
            Ok(())
        }
    }
}
