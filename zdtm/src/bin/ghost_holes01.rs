//! ghost_holes01: small sparse unlinked files held open: 256 KiB with two
//! data islands, 64 KiB all hole, 200 KiB with a hole past its last
//! data, and two under CRIU's 12 KiB chunk threshold (8 KiB with a hole
//! before its data, 10000 bytes with a hole after it). After the restore
//! each has its size, about the blocks in use it had (a densified hole
//! shows as many more), the same SEEK_DATA/SEEK_HOLE extents, its bytes,
//! zeros in its holes, its offset and no link.

use std::os::unix::fs::MetadataExt;

use zdtm::Checks;

/// A file: name suffix, size, (offset, length) of each data island.
struct Sparse {
    tag: &'static str,
    size: i64,
    islands: &'static [(i64, usize)],
}

const FILES: [Sparse; 5] = [
    Sparse { tag: "islands", size: 256 << 10, islands: &[(16 << 10, 4096), (128 << 10, 8192)] },
    Sparse { tag: "allhole", size: 64 << 10, islands: &[] },
    Sparse { tag: "tailhole", size: 200 << 10, islands: &[(0, 12288)] },
    Sparse { tag: "small-headhole", size: 8192, islands: &[(4096, 4096)] },
    Sparse { tag: "small-tailhole", size: 10000, islands: &[(0, 4096)] },
];

/// Blocks (512 bytes) a restored file may use beyond what it used: less
/// than the smallest hole (4 KiB), so a filled hole fails.
const MARGIN: u64 = 4;

fn blocks(fd: i32) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|m| m.blocks()).unwrap_or(0)
}

/// What one file held before the dump.
struct Before {
    fd: i32,
    contents: Vec<u8>,
    extents: Vec<(i64, i64)>,
    blocks: u64,
    pos: i64,
}

fn main() {
    zdtm::test_init();
    let base = zdtm::filename().to_path_buf();
    let mut held = Vec::new();
    for (i, s) in FILES.iter().enumerate() {
        let path = base.with_file_name(format!("{}.{}", base.file_name().unwrap().to_string_lossy(), s.tag));
        let p = zdtm::cpath(&path);
        // SAFETY: a valid C string; plain syscalls on our fd.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o640) };
        // SAFETY: ftruncate on our fd takes only integer arguments and touches no memory of ours.
        if fd < 0 || unsafe { libc::ftruncate(fd, s.size) } != 0 {
            zdtm::fail(&format!("create {}: {}", path.display(), zdtm::last_err()));
        }
        let mut contents = vec![0u8; s.size as usize];
        for (j, (off, len)) in s.islands.iter().enumerate() {
            let d = &mut contents[*off as usize..*off as usize + len];
            zdtm::datagen(d, (i * 10 + j) as u64 + 21);
            // SAFETY: writing our buffer.
            if unsafe { libc::pwrite(fd, d.as_ptr().cast(), d.len(), *off) } != d.len() as isize {
                zdtm::fail(&format!("pwrite {}: {}", path.display(), zdtm::last_err()));
            }
        }
        let pos = 1000 + i as i64 * 777;
        // SAFETY: fsync and lseek on our fd take only integer arguments
        // and touch no memory of ours.
        unsafe {
            libc::fsync(fd);
            libc::lseek(fd, pos, libc::SEEK_SET);
        }
        let ext = zdtm::extents(fd);
        let want: Vec<(i64, i64)> = s.islands.iter().map(|(o, l)| (*o, *o + *l as i64)).collect();
        if ext != want {
            zdtm::skip(&format!("{} does not keep holes as written (extents {ext:?}, wrote {want:?})", path.display()));
        }
        std::fs::remove_file(&path).unwrap_or_else(|e| zdtm::fail(&format!("unlink {}: {e}", path.display())));
        held.push(Before { fd, contents, extents: ext, blocks: blocks(fd), pos });
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // Fill the small file's hole, where a raw image would have.
        let fd = held[3].fd;
        // SAFETY: writing our zeros into our file.
        unsafe { libc::pwrite(fd, [0u8; 4096].as_ptr().cast(), 4096, 0) };
    }

    let mut c = Checks::new();
    for (s, b) in FILES.iter().zip(&held) {
        let md = match std::fs::metadata(format!("/proc/self/fd/{}", b.fd)) {
            Ok(m) => m,
            Err(e) => zdtm::fail(&format!("{}: stat fd {}: {e}", s.tag, b.fd)),
        };
        c.eq(&format!("{} size", s.tag), md.size() as i64, s.size);
        c.eq(&format!("{} nlink", s.tag), md.nlink(), 0);
        c.check(md.blocks() <= b.blocks + MARGIN, || {
            format!("{}: {} blocks in use, {} before: holes were filled", s.tag, md.blocks(), b.blocks)
        });
        c.eq(&format!("{} data extents", s.tag), zdtm::extents(b.fd), b.extents.clone());
        c.check(zdtm::pread(b.fd, 0, s.size as usize + 1) == b.contents, || format!("{}: the bytes differ", s.tag));
        // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
        c.eq(&format!("{} offset", s.tag), unsafe { libc::lseek(b.fd, 0, libc::SEEK_CUR) }, b.pos);
    }
    c.finish()
}
