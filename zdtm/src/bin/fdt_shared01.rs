//! fdt_shared01: a parent and a child sharing their fd table (CLONE_FILES)
//! change it after the fork, before the dump: the child opens file A,
//! which the parent then finds at the child's number; the parent opens a
//! pipe the child writes into, and closes an fd opened before the fork,
//! gone for the child too. After the restore each checks all of that from
//! inside, and that the table is still one: the parent dup2s the pipe's
//! write end to a number of its choice, which the child finds there; the
//! child opens file B, which the parent finds at the child's number, and
//! closes A's fd, gone for the parent too.
//! Sabotage: the parent leaves the shared table (unshare CLONE_FILES)
//! after the restore, so the fds of each are no longer the other's.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use zdtm::{fd_ino, wait_step, Checks};

/// Where the parent dup2s the pipe's write end after the restore.
const DUP_AT: i32 = 77;

fn ino_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.ino()).unwrap_or_else(|e| zdtm::fail(&format!("stat {}: {e}", path.display())))
}

fn create(path: &Path, text: &[u8]) {
    if let Err(e) = std::fs::write(path, text) {
        zdtm::fail(&format!("create {}: {e}", path.display()));
    }
}

/// Step `n` with a payload (fd numbers, 16 bits each).
fn say(step: &AtomicU64, n: u64, fds: &[i32]) {
    let payload = fds.iter().enumerate().fold(0u64, |acc, (i, &fd)| acc | (fd as u64 & 0xffff) << (8 + 16 * i));
    step.store(n | payload, Ordering::SeqCst);
}

/// Payload fd `i` of the step counter.
fn heard(step: &AtomicU64, i: usize) -> i32 {
    ((step.load(Ordering::SeqCst) >> (8 + 16 * i)) & 0xffff) as i32
}

fn write_str(fd: i32, s: &[u8]) -> bool {
    // SAFETY: writing our buffer to a pipe.
    unsafe { libc::write(fd, s.as_ptr().cast(), s.len()) == s.len() as isize }
}

/// The child: every step from its side; its exit status is its verdict.
fn child(step: &AtomicU64, a: &Path, b: &Path, old: i32) -> ! {
    let (ino_a, ino_b) = (ino_of(a), ino_of(b));
    let mut c = Checks::new();
    let fa = zdtm::open_or_fail(a, libc::O_RDONLY);
    say(step, 1, &[fa]);
    c.check(wait_step(step, 2), || "child: the parent never opened its pipe".into());
    let (p0, p1) = (heard(step, 0), heard(step, 1));
    c.check(fd_ino(old).is_none(), || format!("child: fd {old} the parent closed is open before the dump"));
    c.check(write_str(p1, b"before"), || format!("child: writing to the parent's pipe (fd {p1}) before the dump"));
    say(step, 3, &[fa]);
    zdtm::test_waitsig();

    c.eq("child: the inode of its fd of A", fd_ino(fa), Some(ino_a));
    c.check(fd_ino(old).is_none(), || format!("child: fd {old} the parent closed is open after the restore"));
    c.eq("child: the inodes of the parent's pipe ends", fd_ino(p0), fd_ino(p1));
    c.check(write_str(p1, b"after"), || format!("child: writing to the parent's pipe (fd {p1}) after the restore"));
    c.check(wait_step(step, 4), || "child: the parent never dup2'd the pipe".into());
    c.eq("child: the inode at the parent's dup2 target", fd_ino(DUP_AT), fd_ino(p1));
    let fb = zdtm::open_or_fail(b, libc::O_RDONLY);
    // SAFETY: closing our fd of A (the parent's too).
    unsafe { libc::close(fa) };
    say(step, 5, &[fb]);
    c.check(wait_step(step, 6), || "child: the parent never checked B".into());
    c.eq("child: the inode of its fd of B", fd_ino(fb), Some(ino_b));
    // SAFETY: _exit leaves at once (the parent reports).
    unsafe { libc::_exit(i32::from(c.failed())) }
}

fn main() {
    zdtm::test_init();
    let a = zdtm::filename().to_path_buf();
    let b = a.with_extension("b");
    create(&a, b"file A");
    create(&b, b"file B");
    let (ino_a, ino_b) = (ino_of(&a), ino_of(&b));
    let step = zdtm::shared_counter();
    // An fd from before the fork, which the parent closes after it.
    let old = zdtm::open_or_fail(&a, libc::O_RDONLY);
    // SAFETY: a fork-like clone (no new stack, no CLONE_VM) of a
    // single-threaded process; the child leaves with _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, (libc::CLONE_FILES | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        zdtm::fail(&format!("clone(CLONE_FILES): {}", zdtm::last_err()));
    }
    let pid = pid as i32;
    if pid == 0 {
        child(step, &a, &b, old);
    }
    // Before the dump: the table is shared both ways.
    if !wait_step(step, 1) {
        zdtm::fail("the child never opened A");
    }
    let fa = heard(step, 0);
    if fd_ino(fa) != Some(ino_a) {
        zdtm::fail(&format!("fd {fa} the child opened is not A in the parent before the dump"));
    }
    let (p0, p1) = zdtm::pipe_or_fail();
    // SAFETY: closing our fd from before the fork.
    unsafe { libc::close(old) };
    say(step, 2, &[p0, p1]);
    if !wait_step(step, 3) {
        zdtm::fail("the child never wrote to the pipe");
    }
    if zdtm::read_some(p0, 64) != b"before" {
        zdtm::fail("the child's bytes are not in the parent's pipe before the dump");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: unshare takes an integer.
        unsafe { libc::unshare(libc::CLONE_FILES) };
    }
    let mut c = Checks::new();
    c.eq("the inode at the child's fd of A", fd_ino(fa), Some(ino_a));
    c.check(fd_ino(old).is_none(), || format!("fd {old} closed before the dump is open after the restore"));
    // SAFETY: dup2 between two integers.
    c.check(unsafe { libc::dup2(p1, DUP_AT) } == DUP_AT, || format!("dup2({p1}, {DUP_AT}): {}", zdtm::last_err()));
    say(step, 4, &[]);
    // SAFETY: kill takes only integer arguments.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    c.check(wait_step(step, 5), || "the child never opened B".into());
    let fb = heard(step, 0);
    c.eq("the inode at the child's fd of B", fd_ino(fb), Some(ino_b));
    c.check(fd_ino(fa).is_none(), || format!("fd {fa} of A the child closed is still open"));
    if step.load(Ordering::SeqCst) & 0xff >= 5 {
        // (The child wrote before step 5: this read does not block.)
        c.eq("the child's bytes in the pipe", zdtm::read_some(p0, 64), b"after".to_vec());
    }
    say(step, 6, &[]);
    c.check(zdtm::exited_ok(pid), || format!("the child ({pid}) failed its checks (see the log)"));
    c.finish()
}
