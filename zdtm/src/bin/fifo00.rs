//! fifo00: a named pipe (FIFO) held three ways — read-write, read-only
//! (non-blocking) and write-only — with 1000 bytes queued in it and its
//! buffer enlarged to 128 KiB. After restore every fd is that FIFO again
//! (the inode at its path), with its flags, its size and its bytes, and
//! the ends still talk to each other.

use std::os::unix::fs::MetadataExt;
use zdtm::Checks;

const DATA: usize = 1000;
const SIZE: libc::c_int = 128 << 10;

fn fstat_ino(fd: libc::c_int) -> (u64, u32) {
    // SAFETY: a zeroed stat buffer filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat into our buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        zdtm::fail(&format!("fstat {fd}: {}", zdtm::last_err()));
    }
    (st.st_ino, st.st_mode & libc::S_IFMT)
}

fn getfl(fd: libc::c_int) -> libc::c_int {
    // SAFETY: fcntl query.
    unsafe { libc::fcntl(fd, libc::F_GETFL) }
}

fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    zdtm::mkfifo_or_fail(&path, 0o600);
    // Read-write first: the other opens then never wait.
    let rw = zdtm::open_or_fail(&path, libc::O_RDWR);
    let ro = zdtm::open_or_fail(&path, libc::O_RDONLY | libc::O_NONBLOCK);
    let wo = zdtm::open_or_fail(&path, libc::O_WRONLY);
    // SAFETY: fcntl on our fd.
    if unsafe { libc::fcntl(wo, libc::F_SETPIPE_SZ, SIZE) } < 0 {
        zdtm::skip(&format!("F_SETPIPE_SZ({SIZE}): {}", zdtm::last_err()));
    }
    let mut data = [0u8; DATA];
    zdtm::datagen(&mut data, 42);
    // SAFETY: writing our buffer.
    if unsafe { libc::write(wo, data.as_ptr().cast(), DATA) } != DATA as isize {
        zdtm::fail("short write into the fifo");
    }
    let flags = [getfl(rw), getfl(ro), getfl(wo)];

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        zdtm::read_some(ro, 1);
    }
    let mut ck = Checks::new();
    let ino = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
    for (name, fd) in [("read-write", rw), ("read-only", ro), ("write-only", wo)] {
        ck.eq(&format!("{name} fd: inode and type"), fstat_ino(fd), (ino, libc::S_IFIFO));
    }
    ck.eq("flags", [getfl(rw), getfl(ro), getfl(wo)], flags);
    // SAFETY: fcntl query.
    ck.eq("buffer size", unsafe { libc::fcntl(rw, libc::F_GETPIPE_SZ) }, SIZE);
    let got = zdtm::read_some(ro, 2 * DATA);
    ck.check(got.len() == DATA && got[..] == data[..], || format!("read {} queued byte(s), want the {DATA} written", got.len()));
    // SAFETY: writing a literal.
    let n = unsafe { libc::write(wo, b"more".as_ptr().cast(), 4) };
    ck.eq("write after restore", n, 4);
    ck.eq("read it back", zdtm::read_some(rw, 16), b"more".to_vec());
    ck.finish()
}
