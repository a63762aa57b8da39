//! ghost_holes00: a sparse unlinked file (64 MiB, three data islands)
//! held open. After the restore it is still sparse (few blocks used),
//! SEEK_DATA/SEEK_HOLE find the same data extents as before the dump, the
//! islands hold their bytes and the holes read as zeros; size, offset and
//! zero link count as before.

use std::os::unix::fs::MetadataExt;

use zdtm::Checks;

const SIZE: i64 = 64 << 20;
/// (offset, length) of each island of data.
const ISLANDS: [(i64, usize); 3] = [(1 << 20, 8192), ((20 << 20) + 4096, 65536), ((63 << 20) + 8192, 12288)];

fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    let p = zdtm::cpath(&path);
    // SAFETY: a valid C string; plain syscalls on our fd.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600) };
    // SAFETY: ftruncate on our fd takes only integer arguments and touches no memory of ours.
    if fd < 0 || unsafe { libc::ftruncate(fd, SIZE) } != 0 {
        zdtm::fail(&format!("create {}: {}", path.display(), zdtm::last_err()));
    }
    let mut islands = Vec::new();
    for (i, (off, len)) in ISLANDS.iter().enumerate() {
        let mut d = vec![0u8; *len];
        zdtm::datagen(&mut d, i as u64 + 11);
        // SAFETY: writing our buffer.
        if unsafe { libc::pwrite(fd, d.as_ptr().cast(), d.len(), *off) } != d.len() as isize {
            zdtm::fail(&format!("pwrite: {}", zdtm::last_err()));
        }
        islands.push(d);
    }
    // SAFETY: fsync and lseek on our fd take only integer arguments
    // and touch no memory of ours.
    unsafe {
        libc::fsync(fd);
        libc::lseek(fd, 12345, libc::SEEK_SET);
    }
    let before = zdtm::extents(fd);
    let blocks_before = std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|m| m.blocks()).unwrap_or(0);
    if before.len() < 2 || blocks_before * 512 >= SIZE as u64 / 2 {
        zdtm::skip(&format!("{} does not keep holes (extents {before:?}, {blocks_before} blocks)", path.display()));
    }
    std::fs::remove_file(&path).unwrap_or_else(|e| zdtm::fail(&format!("unlink: {e}")));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // Fill a hole.
        // SAFETY: writing one byte into our file.
        unsafe { libc::pwrite(fd, b"x".as_ptr().cast(), 1, 40 << 20) };
    }

    let mut c = Checks::new();
    let md = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap();
    c.eq("size", md.size() as i64, SIZE);
    c.eq("nlink", md.nlink(), 0);
    c.check(md.blocks() <= blocks_before + 64, || format!("{} blocks in use, {blocks_before} before: the holes are gone", md.blocks()));
    c.eq("data extents", zdtm::extents(fd), before);
    for ((off, len), want) in ISLANDS.iter().zip(&islands) {
        c.check(zdtm::pread(fd, *off, *len) == *want, || format!("island at {off} differs"));
    }
    for off in [0, 4 << 20, 40 << 20, SIZE - 1] {
        c.check(zdtm::pread(fd, off, 1) == [0], || format!("hole byte at {off} is not zero"));
    }
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    c.eq("offset", unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }, 12345);
    c.finish()
}
