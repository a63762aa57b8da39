//! fdt_shared02: one fd table shared by three processes around tasks with
//! tables of their own. The root P clones C with CLONE_FILES; C forks G
//! (a copy of the table) and clones D with CLONE_FILES (P's table again);
//! P forks N (a copy). G and N each put a file at an fd number of their
//! own (90, 91), which P, C and D never see. After the restore D opens
//! file B, and P and C must find it at D's number, while G must not (its
//! table is its own); G and N still hold their files, and P still lacks
//! them.
//! Sabotage: D leaves the shared table (unshare CLONE_FILES) after the
//! restore, before it opens B.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use zdtm::{fd_ino, wait_step, Checks};

/// Where G and N put their files.
const G_AT: i32 = 90;
const N_AT: i32 = 91;

fn ino_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.ino()).unwrap_or_else(|e| zdtm::fail(&format!("stat {}: {e}", path.display())))
}

fn create(path: &Path) -> u64 {
    if let Err(e) = std::fs::write(path, path.as_os_str().as_encoded_bytes()) {
        zdtm::fail(&format!("create {}: {e}", path.display()));
    }
    ino_of(path)
}

/// clone(2) like fork, with `flags` added (CLONE_FILES); 0 in the child.
fn clone(flags: libc::c_int) -> i32 {
    // SAFETY: a fork-like clone (no new stack, no CLONE_VM) of a
    // single-threaded process; every child leaves with _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        zdtm::fail(&format!("clone: {}", zdtm::last_err()));
    }
    pid as i32
}

/// Open `path` at fd `at` (closing the fd it was opened at).
fn open_at(path: &Path, at: i32) {
    let fd = zdtm::open_or_fail(path, libc::O_RDONLY);
    // SAFETY: dup2 and close on integers.
    unsafe {
        if libc::dup2(fd, at) != at {
            zdtm::fail(&format!("dup2 to {at}: {}", zdtm::last_err()));
        }
        libc::close(fd);
    }
}

fn leave(c: Checks) -> ! {
    // SAFETY: _exit leaves at once (the root reports).
    unsafe { libc::_exit(i32::from(c.failed())) }
}

/// The shared steps: `go` (P: restored), `d` (D: its fd of B), `g`/`n`
/// (G, N: their files are in place), `p` (P: checked D's fd).
struct Steps {
    go: &'static AtomicU64,
    d: &'static AtomicU64,
    g: &'static AtomicU64,
    n: &'static AtomicU64,
    p: &'static AtomicU64,
}

fn main() {
    zdtm::test_init();
    let base = zdtm::filename().to_path_buf();
    let (b, g_file, n_file) = (base.with_extension("b"), base.with_extension("g"), base.with_extension("n"));
    let (ino_b, ino_g, ino_n) = (create(&b), create(&g_file), create(&n_file));
    let s = Steps { go: zdtm::shared_counter(), d: zdtm::shared_counter(), g: zdtm::shared_counter(), n: zdtm::shared_counter(), p: zdtm::shared_counter() };
    let wait_go = || {
        while s.go.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };

    let c_pid = clone(libc::CLONE_FILES);
    if c_pid == 0 {
        // C: G with a copy of the table, D with the table itself.
        let g_pid = clone(0);
        if g_pid == 0 {
            open_at(&g_file, G_AT);
            s.g.store(1, Ordering::SeqCst);
            wait_go();
            let mut c = Checks::new();
            c.eq("G: its file at its fd", fd_ino(G_AT), Some(ino_g));
            c.check(wait_step(s.d, 1), || "G: D never opened B".into());
            let d_fd = (s.d.load(Ordering::SeqCst) >> 8) as i32;
            c.check(fd_ino(d_fd) != Some(ino_b), || format!("G: D's fd {d_fd} of B is in G's own table"));
            leave(c)
        }
        let d_pid = clone(libc::CLONE_FILES);
        if d_pid == 0 {
            wait_go();
            if zdtm::sabotaged() {
                // SAFETY: unshare takes an integer.
                unsafe { libc::unshare(libc::CLONE_FILES) };
            }
            let fd = zdtm::open_or_fail(&b, libc::O_RDONLY);
            s.d.store(1 | (fd as u64) << 8, Ordering::SeqCst);
            let mut c = Checks::new();
            c.check(wait_step(s.p, 1), || "D: P never looked at its fd".into());
            c.eq("D: its fd of B", fd_ino(fd), Some(ino_b));
            leave(c)
        }
        wait_go();
        let mut c = Checks::new();
        c.check(wait_step(s.d, 1), || "C: D never opened B".into());
        let d_fd = (s.d.load(Ordering::SeqCst) >> 8) as i32;
        c.eq("C: the inode at D's fd of B", fd_ino(d_fd), Some(ino_b));
        c.check(fd_ino(G_AT).is_none(), || format!("C: G's fd {G_AT} is in the shared table"));
        c.check(zdtm::exited_ok(g_pid), || format!("G ({g_pid}) failed its checks"));
        c.check(zdtm::exited_ok(d_pid), || format!("D ({d_pid}) failed its checks"));
        leave(c)
    }
    let n_pid = clone(0);
    if n_pid == 0 {
        open_at(&n_file, N_AT);
        s.n.store(1, Ordering::SeqCst);
        wait_go();
        let mut c = Checks::new();
        c.eq("N: its file at its fd", fd_ino(N_AT), Some(ino_n));
        c.check(fd_ino(G_AT).is_none(), || format!("N: G's fd {G_AT} is in N's table"));
        leave(c)
    }
    if !wait_step(s.g, 1) || !wait_step(s.n, 1) {
        zdtm::fail("G or N never put its file in place");
    }
    if fd_ino(G_AT).is_some() || fd_ino(N_AT).is_some() {
        zdtm::fail("G's or N's fd is in the shared table before the dump");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    s.go.store(1, Ordering::SeqCst);
    let mut c = Checks::new();
    c.check(wait_step(s.d, 1), || "D never opened B".into());
    let d_fd = (s.d.load(Ordering::SeqCst) >> 8) as i32;
    c.eq("the inode at D's fd of B", fd_ino(d_fd), Some(ino_b));
    c.check(fd_ino(G_AT).is_none() && fd_ino(N_AT).is_none(), || format!("G's fd {G_AT} or N's fd {N_AT} is in the shared table"));
    s.p.store(1, Ordering::SeqCst);
    c.check(zdtm::exited_ok(c_pid), || format!("C ({c_pid}) failed its checks (or G's or D's)"));
    c.check(zdtm::exited_ok(n_pid), || format!("N ({n_pid}) failed its checks"));
    c.finish()
}
