//! A process-wide deadline (`--timeout`): SIGALRM with a handler that only
//! records it fired and does not restart syscalls, so a blocking wait in
//! the collection stage returns EINTR instead of hanging.

use std::sync::atomic::{AtomicBool, Ordering};

static FIRED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_alarm(_: libc::c_int) {
    FIRED.store(true, Ordering::SeqCst);
}

/// Arm the deadline `seconds` from now (0 disarms).
pub fn arm(seconds: u32) -> std::io::Result<()> {
    FIRED.store(false, Ordering::SeqCst);
    let handler = nix::sys::signal::SigHandler::Handler(on_alarm);
    // No SA_RESTART: interrupted syscalls fail with EINTR.
    let act = nix::sys::signal::SigAction::new(handler, nix::sys::signal::SaFlags::empty(), nix::sys::signal::SigSet::empty());
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGALRM, &act) }.map_err(std::io::Error::from)?;
    // SAFETY: alarm(2) has no memory-safety preconditions.
    unsafe { libc::alarm(seconds) };
    Ok(())
}

/// Cancel the deadline.
pub fn disarm() {
    // SAFETY: alarm(2) has no memory-safety preconditions.
    unsafe { libc::alarm(0) };
}

/// Whether the deadline passed.
pub fn fired() -> bool {
    FIRED.load(Ordering::SeqCst)
}
