//! link_remap00: a file opened through one of its two names, that name
//! then unlinked (the other remains), dumped with --link-remap. After
//! restore the fd is that very file again (the other name's inode, one
//! link, the unlinked name shown deleted), at its offset and with its
//! flags, and what is written through it shows through the other name.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let a = zdtm::filename().to_path_buf();
    let b = a.with_extension("other");
    std::fs::write(&a, b"0123456789").unwrap_or_else(|e| zdtm::fail(&format!("write {}: {e}", a.display())));
    std::fs::hard_link(&a, &b).unwrap_or_else(|e| zdtm::fail(&format!("link: {e}")));
    let fd = zdtm::open_or_fail(&a, libc::O_RDWR | libc::O_APPEND);
    // SAFETY: lseek on our fd.
    unsafe { libc::lseek(fd, 4, libc::SEEK_SET) };
    std::fs::remove_file(&a).unwrap_or_else(|e| zdtm::fail(&format!("unlink: {e}")));
    // SAFETY: fcntl query.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: lseek on our fd.
        unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    }

    let mut ck = Checks::new();
    let st = zdtm::fstat_or_fail(fd);
    let other = std::fs::metadata(&b).map(|m| (std::os::unix::fs::MetadataExt::dev(&m), std::os::unix::fs::MetadataExt::ino(&m))).unwrap_or_default();
    ck.eq("the other name's inode", (st.st_dev, st.st_ino), other);
    ck.eq("links", st.st_nlink, 1);
    ck.check(!a.exists(), || format!("{} exists again", a.display()));
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    ck.eq("fd link", link, format!("{} (deleted)", a.display()));
    // SAFETY: lseek and fcntl queries on our fd.
    ck.eq("offset", unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }, 4);
    // SAFETY: as above.
    ck.eq("flags", unsafe { libc::fcntl(fd, libc::F_GETFL) }, flags);
    // SAFETY: writing a literal (O_APPEND: at the end).
    ck.eq("write", unsafe { libc::write(fd, b"ab".as_ptr().cast(), 2) }, 2);
    ck.eq("seen through the other name", std::fs::read(&b).unwrap_or_default(), b"0123456789ab".to_vec());
    let dir = a.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let strays: Vec<String> = std::fs::read_dir(&dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("link_remap.")).collect())
        .unwrap_or_default();
    ck.eq("link_remap names left", strays, Vec::<String>::new());
    ck.finish()
}
