//! opath01: an O_PATH|O_NOFOLLOW fd on a symlink that is then deleted.
//! After restore the fd is a symlink again, still deleted (no link, the
//! path free), with its target read through it, its owner and its times.

use zdtm::Checks;

fn lstat_fd(fd: i32) -> libc::stat {
    // SAFETY: a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat with AT_EMPTY_PATH on our fd fills `st`; the path is an empty literal.
    if unsafe { libc::fstatat(fd, c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) } != 0 {
        zdtm::fail(&format!("fstatat: {}", zdtm::last_err()));
    }
    st
}

fn target(fd: i32) -> String {
    let mut b = [0u8; 256];
    // SAFETY: readlinkat into our buffer; the path is an empty literal.
    let n = unsafe { libc::readlinkat(fd, c"".as_ptr(), b.as_mut_ptr().cast(), b.len()) };
    String::from_utf8_lossy(&b[..n.max(0) as usize]).into_owned()
}

fn main() {
    zdtm::test_init();
    let link = zdtm::filename().to_path_buf();
    std::os::unix::fs::symlink("some/where/else", &link).unwrap_or_else(|e| zdtm::fail(&format!("symlink: {e}")));
    let fd = zdtm::open_or_fail(&link, libc::O_PATH | libc::O_NOFOLLOW);
    std::fs::remove_file(&link).unwrap_or_else(|e| zdtm::fail(&format!("unlink: {e}")));
    let before = lstat_fd(fd);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        std::os::unix::fs::symlink("x", &link).ok();
    }

    let mut ck = Checks::new();
    let st = lstat_fd(fd);
    ck.eq("type", st.st_mode & libc::S_IFMT, libc::S_IFLNK);
    ck.eq("links", st.st_nlink, 0);
    ck.eq("owner", (st.st_uid, st.st_gid), (before.st_uid, before.st_gid));
    ck.eq("mtime", (st.st_mtime, st.st_mtime_nsec / 1000), (before.st_mtime, before.st_mtime_nsec / 1000));
    ck.eq("target", target(fd), "some/where/else".to_string());
    ck.check(std::fs::symlink_metadata(&link).is_err(), || format!("{} exists again", link.display()));
    // SAFETY: fcntl query.
    ck.eq("still O_PATH", unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_PATH, libc::O_PATH);
    ck.finish()
}
