//! opath00: O_PATH fds on a regular file, a directory and a symlink
//! (O_PATH|O_NOFOLLOW). After the restore each is still an O_PATH fd
//! (read refused with EBADF) on the same inode; the symlink fd is the link
//! itself (its target read through it); the directory fd resolves names.

use std::os::unix::fs::MetadataExt;

use zdtm::Checks;

fn open(p: &std::path::Path, flags: i32) -> i32 {
    let c = zdtm::cpath(p);
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_PATH) };
    if fd < 0 {
        zdtm::fail(&format!("open {} O_PATH: {}", p.display(), zdtm::last_err()));
    }
    fd
}

/// (dev, ino, type bits) of what fd is open on.
fn fd_ids(fd: i32) -> (u64, u64, u32) {
    // SAFETY: fstatat with AT_EMPTY_PATH on our fd fills st.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live stat the call writes; the path is an empty NUL-terminated literal (AT_EMPTY_PATH).
    unsafe { libc::fstatat(fd, c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) };
    (st.st_dev, st.st_ino, st.st_mode & libc::S_IFMT)
}

fn main() {
    zdtm::test_init();
    let dir = zdtm::dirname().to_path_buf();
    std::fs::create_dir(&dir).unwrap_or_else(|e| zdtm::fail(&format!("mkdir {}: {e}", dir.display())));
    let dir = std::fs::canonicalize(&dir).unwrap_or_else(|e| zdtm::fail(&format!("canonicalize: {e}")));
    let file = dir.join("file");
    let link = dir.join("link");
    std::fs::write(&file, b"data").unwrap_or_else(|e| zdtm::fail(&format!("write: {e}")));
    std::os::unix::fs::symlink("file", &link).unwrap_or_else(|e| zdtm::fail(&format!("symlink: {e}")));
    let ffd = open(&file, 0);
    let dfd = open(&dir, 0);
    let lfd = open(&link, libc::O_NOFOLLOW);
    let want = [
        (ffd, std::fs::metadata(&file).map(|m| (m.dev(), m.ino())).unwrap(), libc::S_IFREG),
        (dfd, std::fs::metadata(&dir).map(|m| (m.dev(), m.ino())).unwrap(), libc::S_IFDIR),
        (lfd, std::fs::symlink_metadata(&link).map(|m| (m.dev(), m.ino())).unwrap(), libc::S_IFLNK),
    ];

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: the file fd becomes a readable fd on the same file.
        unsafe { libc::dup2(libc::open(zdtm::cpath(&file).as_ptr(), libc::O_RDONLY), ffd) };
    }

    let mut c = Checks::new();
    for (fd, (dev, ino), ty) in want {
        // SAFETY: F_GETFL on our fd takes only integer arguments and touches no memory of ours.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        c.check(fl >= 0 && fl & libc::O_PATH != 0, || format!("fd {fd}: flags {fl:o} lack O_PATH"));
        c.eq(&format!("fd {fd} inode"), fd_ids(fd), (dev, ino, ty));
        let mut b = [0u8; 4];
        // SAFETY: reading into our buffer: an O_PATH fd refuses.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 4) };
        c.check(n < 0 && zdtm::last_err().raw_os_error() == Some(libc::EBADF), || format!("fd {fd}: read gave {n}, not EBADF"));
    }
    let mut t = [0u8; 64];
    // SAFETY: readlinkat on our O_PATH symlink fd with an empty path.
    let n = unsafe { libc::readlinkat(lfd, c"".as_ptr(), t.as_mut_ptr().cast(), t.len()) };
    c.eq("symlink target", t[..n.max(0) as usize].to_vec(), b"file".to_vec());
    // SAFETY: openat relative to our O_PATH directory fd.
    let f = unsafe { libc::openat(dfd, c"file".as_ptr(), libc::O_RDONLY) };
    let mut b = [0u8; 8];
    // SAFETY: reading into our buffer.
    let n = if f >= 0 { unsafe { libc::read(f, b.as_mut_ptr().cast(), 8) } } else { -1 };
    c.eq("file through the directory fd", b[..n.max(0) as usize].to_vec(), b"data".to_vec());
    c.finish()
}
