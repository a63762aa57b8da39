//! filemap_mode00: a file mapping keeps the open mode of its file.
//!
//! A file opened O_RDWR is mapped MAP_SHARED with PROT_READ only, then the
//! fd is closed. After the restore mprotect(PROT_WRITE) must succeed (the
//! file behind the mapping is still open for writing) and a write through
//! the mapping must reach the file. A second file opened O_RDONLY, mapped
//! the same way, must still refuse PROT_WRITE (EACCES): the mode is not
//! widened either.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use zdtm::Checks;
use zdtm::mem::{bytes, map};

fn make(path: &std::path::Path, len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    zdtm::datagen(&mut data, seed);
    std::fs::write(path, &data).unwrap_or_else(|e| zdtm::fail(&format!("write {}: {e}", path.display())));
    data
}

fn mprotect(p: *mut u8, len: usize, prot: libc::c_int) -> std::io::Result<()> {
    // SAFETY: p..p+len is one of our mappings.
    if unsafe { libc::mprotect(p.cast(), len, prot) } != 0 {
        return Err(zdtm::last_err());
    }
    Ok(())
}

fn main() {
    zdtm::test_init();
    let len = 4 * zdtm::page_size();
    let seed = std::process::id() as u64;
    let rw_path = zdtm::filename().with_extension("rw");
    let ro_path = zdtm::filename().with_extension("ro");
    let rw_data = make(&rw_path, len, seed + 1);
    make(&ro_path, len, seed + 2);
    let rw = {
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&rw_path).unwrap_or_else(|e| zdtm::fail(&e.to_string()));
        map("O_RDWR file", len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0)
    };
    let ro = {
        let f = std::fs::File::open(&ro_path).unwrap_or_else(|e| zdtm::fail(&e.to_string()));
        map("O_RDONLY file", len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0)
    };

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut ck = Checks::new();
    if zdtm::sabotaged() {
        // The same mapping, remade from a read-only open of its file.
        let f = std::fs::File::open(&rw_path).unwrap_or_else(|e| zdtm::fail(&e.to_string()));
        // SAFETY: replacing our own mapping in place.
        unsafe { libc::mmap(rw.cast(), len, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_FIXED, f.as_raw_fd(), 0) };
    }
    ck.check(bytes(rw, len) == rw_data.as_slice(), || "O_RDWR mapping: contents differ".into());
    match mprotect(rw, len, libc::PROT_READ | libc::PROT_WRITE) {
        Err(e) => ck.check(false, || format!("mprotect(PROT_WRITE) of the O_RDWR file's mapping: {e}")),
        Ok(()) => {
            bytes(rw, len)[100] ^= 0xff;
            let f = std::fs::File::open(&rw_path).unwrap_or_else(|e| zdtm::fail(&e.to_string()));
            let mut b = [0u8];
            let _ = f.read_exact_at(&mut b, 100);
            ck.eq("write through the mapping, read from the file", b[0], rw_data[100] ^ 0xff);
        }
    }
    let r = mprotect(ro, len, libc::PROT_READ | libc::PROT_WRITE);
    ck.check(r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EACCES), || {
        format!("mprotect(PROT_WRITE) of the O_RDONLY file's mapping: {r:?}, want EACCES")
    });
    let _ = std::fs::remove_file(&rw_path);
    let _ = std::fs::remove_file(&ro_path);
    ck.finish()
}
