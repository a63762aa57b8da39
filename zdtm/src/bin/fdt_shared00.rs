//! fdt_shared00: a parent and a child sharing their fd table (clone with
//! CLONE_FILES, not a thread). Before the fork the parent opens a pipe;
//! after it the parent queues bytes in it and the child reads them from
//! the same fd number, then opens a file at a new fd the parent must see
//! (the same inode), and the parent closes it (the child must see it
//! gone): the restored table is one again.
//! Sabotage: the parent leaves the shared table (unshare CLONE_FILES).

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;

use zdtm::{fd_ino, wait_step, Checks};

fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    if let Err(e) = std::fs::write(&path, b"shared table") {
        zdtm::fail(&format!("create {}: {e}", path.display()));
    }
    let ino = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or_else(|e| zdtm::fail(&format!("stat: {e}")));
    let step = zdtm::shared_counter();
    let mut ready = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let mut data = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(data.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    // SAFETY: a fork-like clone (no new stack, no CLONE_VM) of a
    // single-threaded process; the child leaves with _exit.
    let child = unsafe { libc::syscall(libc::SYS_clone, (libc::CLONE_FILES | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if child < 0 {
        zdtm::fail(&format!("clone(CLONE_FILES): {}", zdtm::last_err()));
    }
    let child = child as i32;
    if child == 0 {
        // The table is shared: one write says ready, the parent closes.
        // SAFETY: one byte to the shared pipe.
        unsafe { libc::write(ready[1], b"r".as_ptr().cast(), 1) };
        zdtm::test_waitsig();
        let mut c = Checks::new();
        c.check(wait_step(step, 1), || "child: the parent never queued its bytes".into());
        c.eq("child: bytes the parent queued", zdtm::read_some(data[0], 64), b"queued".to_vec());
        let fd = zdtm::open_or_fail(&path, libc::O_RDONLY);
        step.store(2 | (fd as u64) << 8, Ordering::SeqCst);
        c.check(wait_step(step, 3), || "child: the parent never closed the fd".into());
        c.check(fd_ino(fd).is_none(), || format!("child: fd {fd} the parent closed is still open"));
        // SAFETY: _exit leaves at once (the parent reports).
        unsafe { libc::_exit(i32::from(c.failed())) }
    }
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into our buffer.
    if unsafe { libc::read(ready[0], b.as_mut_ptr().cast(), 1) } != 1 {
        zdtm::fail("the child never said ready");
    }
    // SAFETY: closing our (shared) ready pipe.
    unsafe {
        libc::close(ready[0]);
        libc::close(ready[1]);
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: unshare takes an integer.
        unsafe { libc::unshare(libc::CLONE_FILES) };
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(data[0]) };
    }
    // SAFETY: writing a literal into our pipe.
    unsafe { libc::write(data[1], b"queued".as_ptr().cast(), 6) };
    step.store(1, Ordering::SeqCst);
    // SAFETY: kill takes only integer arguments.
    unsafe { libc::kill(child, libc::SIGTERM) };
    let mut c = Checks::new();
    c.check(wait_step(step, 2), || "the child never opened its file".into());
    let fd = (step.load(Ordering::SeqCst) >> 8) as i32;
    c.eq("the fd the child opened", fd_ino(fd), Some(ino));
    // SAFETY: closing the fd the child opened in our shared table.
    unsafe { libc::close(fd) };
    step.store(3, Ordering::SeqCst);
    c.check(zdtm::exited_ok(child), || format!("the child ({child}) failed its checks (see the log)"));
    c.finish()
}
