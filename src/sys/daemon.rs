//! Going to the background the way callers can rely on: the parent returns
//! only after the daemon has done its start-up (e.g. written its pidfile).

use std::io::{Read, Write};

use nix::unistd::ForkResult;

/// Fork; the child detaches (new session, cwd /, stdio on /dev/null), runs
/// `ready` and tells the parent, which then exits 0 (1 if the child failed
/// before that). Returns in the child only.
pub fn daemonize(ready: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if !super::clone::single_threaded() {
        anyhow::bail!("can't fork to the background: criu has other threads");
    }
    let (r, w) = nix::unistd::pipe()?;
    // SAFETY: the process was checked to have one thread, so the child's
    // copy of memory has no lock held by a thread that does not exist
    // there; it goes on with normal Rust code.
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
                // SAFETY: dup2 onto stdin/stdout/stderr, which no Rust
                // object owns (std's handles use the numbers, not owners).
                if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) } < 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
            }
            ready()?;
            std::fs::File::from(w).write_all(b"1")?;
            Ok(())
        }
    }
}
