//! fs_shared00: a parent and a child sharing their fs information
//! (clone with CLONE_FS: cwd, root, umask). After the restore they must
//! still share it: the child changes into a sibling directory by a
//! relative path and sets a umask, the parent sees both; then the parent
//! changes them again and the child sees that.
//! Sabotage: the parent leaves the shared fs (unshare CLONE_FS) first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zdtm::Checks;

fn chdir(p: &Path) {
    if let Err(e) = std::env::set_current_dir(p) {
        zdtm::fail(&format!("chdir {}: {e}", p.display()));
    }
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_default()
}

fn umask_now() -> u32 {
    // SAFETY: umask takes and returns an integer; set back at once.
    unsafe {
        let old = libc::umask(0);
        libc::umask(old);
        old
    }
}

fn set_umask(m: u32) {
    // SAFETY: umask takes an integer.
    unsafe { libc::umask(m) };
}

/// Wait (at most 10 s) until the shared step counter reaches `n`.
fn wait_step(step: &AtomicU64, n: u64) -> bool {
    let t = Instant::now();
    while step.load(Ordering::SeqCst) < n {
        if t.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn main() {
    zdtm::test_init();
    let top = zdtm::dirname();
    for d in [top.to_path_buf(), top.join("a"), top.join("b")] {
        if let Err(e) = std::fs::create_dir(&d) {
            zdtm::fail(&format!("mkdir {}: {e}", d.display()));
        }
    }
    let top = std::fs::canonicalize(top).unwrap_or_else(|e| zdtm::fail(&format!("canonicalize: {e}")));
    chdir(&top.join("a"));
    set_umask(0o022);
    let step = zdtm::shared_counter();
    let mut ready = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    // SAFETY: a fork-like clone (no new stack, no CLONE_VM) of a
    // single-threaded process; the child leaves with _exit.
    let child = unsafe { libc::syscall(libc::SYS_clone, (libc::CLONE_FS | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if child < 0 {
        zdtm::fail(&format!("clone(CLONE_FS): {}", zdtm::last_err()));
    }
    let child = child as i32;
    if child == 0 {
        zdtm::say_ready(ready);
        zdtm::test_waitsig();
        // Relative: from the shared cwd.
        chdir(Path::new("../b"));
        set_umask(0o027);
        step.store(1, Ordering::SeqCst);
        let mut c = Checks::new();
        c.check(wait_step(step, 2), || "child: the parent never took its turn".into());
        c.eq("child: cwd the parent set", cwd(), top.clone());
        c.eq("child: umask the parent set", umask_now(), 0o077);
        // SAFETY: _exit leaves at once (the parent reports).
        unsafe { libc::_exit(i32::from(c.failed())) }
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready[1]) };
    zdtm::wait_ready_closed(ready[0]);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: unshare takes an integer.
        unsafe { libc::unshare(libc::CLONE_FS) };
    }
    // SAFETY: kill takes only integer arguments.
    unsafe { libc::kill(child, libc::SIGTERM) };
    let mut c = Checks::new();
    c.check(wait_step(step, 1), || "the child never changed directory".into());
    c.eq("parent: cwd the child set", cwd(), top.join("b"));
    c.eq("parent: umask the child set", umask_now(), 0o027);
    chdir(&top);
    set_umask(0o077);
    step.store(2, Ordering::SeqCst);
    c.check(zdtm::exited_ok(child), || format!("the child ({child}) failed its checks (see the log)"));
    c.finish()
}
