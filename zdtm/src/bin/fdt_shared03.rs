//! fdt_shared03 (crfail): two siblings sharing one fd table, which neither
//! took from the parent: the root P forks C, and C clones S with
//! CLONE_PARENT | CLONE_FILES (S is P's child with C's table). A restore
//! can fork a task with its parent's table only, so our dump refuses S
//! by name and the tree runs on: S then opens a file, which C must find
//! at S's number.
//! Sabotage: S leaves the shared table (unshare CLONE_FILES) first.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;

use zdtm::{fd_ino, wait_step, Checks};

/// clone(2) like fork, with `flags` added; 0 in the child.
fn clone(flags: libc::c_int) -> i32 {
    // SAFETY: a fork-like clone (no new stack, no CLONE_VM) of a
    // single-threaded process; every child leaves with _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        zdtm::fail(&format!("clone: {}", zdtm::last_err()));
    }
    pid as i32
}

fn leave(c: Checks) -> ! {
    // SAFETY: _exit leaves at once (the root reports).
    unsafe { libc::_exit(i32::from(c.failed())) }
}

fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    if let Err(e) = std::fs::write(&path, b"siblings") {
        zdtm::fail(&format!("create {}: {e}", path.display()));
    }
    let ino = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or_else(|e| zdtm::fail(&format!("stat: {e}")));
    // go: P's go-ahead; s: S's pid, then its fd (step 1); c: C checked it.
    let (go, s, checked) = (zdtm::shared_counter(), zdtm::shared_counter(), zdtm::shared_counter());
    let wait_go = || {
        while go.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let c_pid = clone(0);
    if c_pid == 0 {
        let s_pid = clone(libc::CLONE_PARENT | libc::CLONE_FILES);
        if s_pid == 0 {
            wait_go();
            if zdtm::sabotaged() {
                // SAFETY: unshare takes an integer.
                unsafe { libc::unshare(libc::CLONE_FILES) };
            }
            let fd = zdtm::open_or_fail(&path, libc::O_RDONLY);
            s.store(1 | (fd as u64) << 8, Ordering::SeqCst);
            let mut c = Checks::new();
            c.check(wait_step(checked, 1), || "S: C never looked at its fd".into());
            leave(c)
        }
        checked.store((s_pid as u64) << 8, Ordering::SeqCst);
        wait_go();
        let mut c = Checks::new();
        c.check(wait_step(s, 1), || "C: S never opened its file".into());
        let fd = (s.load(Ordering::SeqCst) >> 8) as i32;
        c.eq("C: the inode at S's fd", fd_ino(fd), Some(ino));
        checked.store(1, Ordering::SeqCst);
        leave(c)
    }
    // S's pid, from C.
    let t = std::time::Instant::now();
    while checked.load(Ordering::SeqCst) == 0 {
        if t.elapsed().as_secs() > 10 {
            zdtm::fail("C never cloned S");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let s_pid = (checked.load(Ordering::SeqCst) >> 8) as i32;
    checked.store(0, Ordering::SeqCst);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    go.store(1, Ordering::SeqCst);
    let mut c = Checks::new();
    c.check(zdtm::exited_ok(c_pid), || format!("C ({c_pid}) failed its checks (see the log)"));
    c.check(zdtm::exited_ok(s_pid), || format!("S ({s_pid}) failed its checks (see the log)"));
    c.finish()
}
