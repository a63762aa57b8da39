//! chroot00 (suid): a task chrooted into a scratch directory, its cwd a
//! subdirectory inside. After the restore "/" is that directory (same
//! inode; its marker file is there, the host's files are not), the cwd is
//! the subdirectory (getcwd says /sub). The test writes its pid file
//! relative to a directory fd it kept of the real root, and leaves the
//! chroot through that fd to write its verdict.

use std::os::unix::fs::MetadataExt;

use zdtm::Checks;

fn ids(p: &str) -> Option<(u64, u64)> {
    std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok()
}

/// What zdtm::test_daemon does, through the real root's fd (the pid
/// file's path does not resolve inside the chroot).
fn ready(real_root: i32) {
    let pidfile = zdtm::opts().pidfile.to_string_lossy().trim_start_matches('/').to_string();
    let (tmp, dst) = (zdtm::cpath(std::path::Path::new(&format!("{pidfile}.tmp"))), zdtm::cpath(std::path::Path::new(&pidfile)));
    let pid = format!("{}\n", std::process::id());
    // SAFETY: valid C strings relative to our directory fd; writing our bytes.
    let ok = unsafe {
        let fd = libc::openat(real_root, tmp.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
        let w = fd >= 0 && libc::write(fd, pid.as_ptr().cast(), pid.len()) == pid.len() as isize;
        if fd >= 0 {
            libc::close(fd);
        }
        w && libc::renameat(real_root, tmp.as_ptr(), real_root, dst.as_ptr()) == 0
    };
    if !ok {
        zdtm::fail(&format!("can't write the pid file {pidfile}: {}", zdtm::last_err()));
    }
}

fn main() {
    zdtm::test_init();
    let dir = zdtm::dirname().to_path_buf();
    std::fs::create_dir_all(dir.join("sub")).unwrap_or_else(|e| zdtm::fail(&format!("mkdir {}: {e}", dir.display())));
    std::fs::write(dir.join("marker"), b"inside").unwrap_or_else(|e| zdtm::fail(&format!("marker: {e}")));
    let dir = std::fs::canonicalize(&dir).unwrap_or_else(|e| zdtm::fail(&format!("canonicalize: {e}")));
    let root_ids = ids(dir.to_str().unwrap_or(""));
    let sub_ids = ids(dir.join("sub").to_str().unwrap_or(""));
    let slash = zdtm::cpath(std::path::Path::new("/"));
    // SAFETY: a valid C string; a directory fd of the real root, kept.
    let real_root = unsafe { libc::open(slash.as_ptr(), libc::O_RDONLY) };
    let d = zdtm::cpath(&dir);
    // SAFETY: valid C strings; plain syscalls.
    if real_root < 0 || unsafe { libc::chroot(d.as_ptr()) } != 0 {
        zdtm::fail(&format!("chroot {}: {}", dir.display(), zdtm::last_err()));
    }
    std::env::set_current_dir("/sub").unwrap_or_else(|e| zdtm::fail(&format!("chdir /sub: {e}")));

    ready(real_root);
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        let _ = std::env::set_current_dir("/");
    }

    let mut c = Checks::new();
    c.eq("stat /", ids("/"), root_ids);
    c.eq("stat .", ids("."), sub_ids);
    c.eq("getcwd", std::env::current_dir().ok(), Some(std::path::PathBuf::from("/sub")));
    c.eq("/marker", std::fs::read("/marker").ok(), Some(b"inside".to_vec()));
    c.check(std::fs::metadata(dir.join("marker")).is_err(), || format!("{} is visible: not chrooted", dir.display()));
    // Out of the chroot, to write the verdict.
    let dot = zdtm::cpath(std::path::Path::new("."));
    // SAFETY: plain syscalls on our fd and a valid C string.
    if unsafe { libc::fchdir(real_root) } != 0 || unsafe { libc::chroot(dot.as_ptr()) } != 0 {
        zdtm::fail(&format!("leaving the chroot: {}", zdtm::last_err()));
    }
    c.finish()
}
