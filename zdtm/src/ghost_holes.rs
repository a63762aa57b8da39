//! The sparse ghost test shared by ghost_holes00 and ghost_holes02: a
//! sparse file of `size` bytes with data `islands`, held open and
//! unlinked. After the restore it is still sparse (about the blocks it
//! used), SEEK_DATA/SEEK_HOLE find the same extents, the islands hold
//! their bytes, the holes read as zeros; size, offset and link count as
//! before.

use std::os::unix::fs::MetadataExt;

use crate::Checks;

/// Run the test (after `test_init`) for a file of `size` bytes whose data
/// is `islands` ((offset, length) each); `holes` are offsets that must
/// read as zero.
pub fn run(size: i64, islands_at: &[(i64, usize)], holes: &[i64]) -> ! {
    let path = crate::filename().to_path_buf();
    let p = crate::cpath(&path);
    // SAFETY: a valid C string; plain syscalls on our fd.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600) };
    // SAFETY: ftruncate on our fd takes only integer arguments and touches no memory of ours.
    if fd < 0 || unsafe { libc::ftruncate(fd, size) } != 0 {
        crate::fail(&format!("create {}: {}", path.display(), crate::last_err()));
    }
    let mut islands = Vec::new();
    for (i, (off, len)) in islands_at.iter().enumerate() {
        let mut d = vec![0u8; *len];
        crate::datagen(&mut d, i as u64 + 11);
        // SAFETY: writing our buffer.
        if unsafe { libc::pwrite(fd, d.as_ptr().cast(), d.len(), *off) } != d.len() as isize {
            crate::fail(&format!("pwrite: {}", crate::last_err()));
        }
        islands.push(d);
    }
    // SAFETY: fsync and lseek on our fd take only integer arguments
    // and touch no memory of ours.
    unsafe {
        libc::fsync(fd);
        libc::lseek(fd, 12345, libc::SEEK_SET);
    }
    let before = crate::extents(fd);
    let blocks_before = std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|m| m.blocks()).unwrap_or(0);
    if before.len() < 2 || blocks_before * 512 >= size as u64 / 2 {
        crate::skip(&format!("{} does not keep holes (extents {before:?}, {blocks_before} blocks)", path.display()));
    }
    std::fs::remove_file(&path).unwrap_or_else(|e| crate::fail(&format!("unlink: {e}")));

    crate::test_daemon();
    crate::test_waitsig();
    if crate::sabotaged() {
        // Fill a hole.
        // SAFETY: writing one byte into our file.
        unsafe { libc::pwrite(fd, b"x".as_ptr().cast(), 1, holes[1]) };
    }

    let mut c = Checks::new();
    let md = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap();
    c.eq("size", md.size() as i64, size);
    c.eq("nlink", md.nlink(), 0);
    c.check(md.blocks() <= blocks_before + 64, || format!("{} blocks in use, {blocks_before} before: the holes are gone", md.blocks()));
    c.eq("data extents", crate::extents(fd), before);
    for ((off, len), want) in islands_at.iter().zip(&islands) {
        c.check(crate::pread(fd, *off, *len) == *want, || format!("island at {off} differs"));
    }
    for &off in holes {
        c.check(crate::pread(fd, off, 1) == [0], || format!("hole byte at {off} is not zero"));
    }
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    c.eq("offset", unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }, 12345);
    c.finish()
}
