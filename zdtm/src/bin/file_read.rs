//! file_read: regular files open at offsets keep position, flags and
//! contents; a dup()ed fd still shares its file (offset) with the original;
//! close-on-exec survives; an O_APPEND fd still appends.

use std::os::unix::fs::MetadataExt;
use zdtm::Checks;

const LEN: usize = 64 * 1024;
const OFF: i64 = 12345;

fn open(path: &std::path::Path, flags: libc::c_int) -> libc::c_int {
    let p = zdtm::cpath(path);
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(p.as_ptr(), flags) };
    if fd < 0 {
        zdtm::fail(&format!("open {}: {}", path.display(), zdtm::last_err()));
    }
    fd
}

fn pos(fd: libc::c_int) -> i64 {
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }
}

fn fl(fd: libc::c_int) -> (libc::c_int, libc::c_int) {
    // SAFETY: fcntl F_GETFL/F_GETFD on an fd take only integers and
    // touch no memory of ours.
    unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
        )
    }
}

fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    let mut data = vec![0u8; LEN];
    zdtm::datagen(&mut data, std::process::id() as u64 + 99);
    std::fs::write(&path, &data)
        .unwrap_or_else(|e| zdtm::fail(&format!("write {}: {e}", path.display())));
    let ino = std::fs::metadata(&path)
        .map(|m| (m.dev(), m.ino()))
        .unwrap();

    let rd = open(&path, libc::O_RDONLY);
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    unsafe { libc::lseek(rd, OFF, libc::SEEK_SET) };
    // SAFETY: dup of our fd takes only integer arguments and touches no memory of ours; the new fd is ours.
    let dup = unsafe { libc::dup(rd) };
    let rw = open(&path, libc::O_RDWR | libc::O_CLOEXEC);
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    unsafe { libc::lseek(rw, 777, libc::SEEK_SET) };
    let app = open(&path, libc::O_WRONLY | libc::O_APPEND);
    let fds = [rd, dup, rw, app];
    let flags0: Vec<_> = fds.iter().map(|&f| fl(f)).collect();
    let pos0: Vec<_> = fds.iter().map(|&f| pos(f)).collect();

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
        unsafe { libc::lseek(rd, 0, libc::SEEK_SET) };
    }
    let mut c = Checks::new();
    c.eq(
        "positions [rd, dup, rw, append]",
        fds.iter().map(|&f| pos(f)).collect::<Vec<_>>(),
        pos0,
    );
    c.eq(
        "flags [F_GETFL, F_GETFD]",
        fds.iter().map(|&f| fl(f)).collect::<Vec<_>>(),
        flags0,
    );
    for &fd in &fds {
        // SAFETY: a zeroed stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a live stat the call writes; the fd is ours.
        unsafe { libc::fstat(fd, &mut st) };
        c.eq(&format!("fd {fd} file"), (st.st_dev, st.st_ino), ino);
    }
    // Read on from the offset.
    let mut buf = vec![0u8; 1000];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), buf.len()) };
    c.eq("read at the offset", n, 1000);
    c.check(buf[..] == data[OFF as usize..OFF as usize + 1000], || {
        "contents at the offset differ".into()
    });
    c.eq("dup shares the offset", pos(dup), OFF + 1000);
    // O_APPEND still appends.
    // SAFETY: writing our buffer.
    unsafe { libc::write(app, b"tail".as_ptr().cast(), 4) };
    c.eq(
        "file size after an append",
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        LEN as u64 + 4,
    );
    let _ = std::fs::remove_file(&path);
    c.finish()
}
