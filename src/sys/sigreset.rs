//! Signal dispositions of a restoring process: a restored parent needs
//! SIGCHLD at its default (so the zombies it gets back are not reaped by
//! the kernel, nor queue a SIGCHLD the image did not have), and a zombie
//! to be needs every signal at its default to die of the one it died of.

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};

/// Set `sig`'s disposition to SIG_DFL.
pub fn default(sig: Signal) -> nix::Result<()> {
    // SAFETY: SIG_DFL installs no handler, so no Rust code can run in
    // signal context because of this call.
    unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) }.map(drop)
}

/// Every signal (but SIGKILL and SIGSTOP, which can't be changed) to
/// SIG_DFL, and nothing blocked.
pub fn all_default() {
    for sig in Signal::iterator() {
        if !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            let _ = default(sig);
        }
    }
    for n in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: as above, SIG_DFL runs nothing.
        unsafe { libc::signal(n, libc::SIG_DFL) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Unblock `sig` in the calling thread.
pub fn unblock(sig: Signal) -> nix::Result<()> {
    let mut s = SigSet::empty();
    s.add(sig);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&s), None)
}

/// Send signal number `sig` (any, real-time ones included) to the calling
/// process.
pub fn raise(sig: i32) {
    // SAFETY: kill(2) on our own pid only queues a signal; its default
    // action (set by the caller) is what runs.
    unsafe { libc::kill(libc::getpid(), sig) };
}
