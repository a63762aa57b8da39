//! maps00: all sorts of mappings keep their contents, protections, flags
//! and file offsets, byte for byte.
//!
//! - anonymous private and shared, read-write, filled with a pattern (each
//!   page of the private one starts with a marker the runner's
//!   corrupt-pages self-test looks for in pages-*.img);
//! - a file mapped private (some pages written: copy-on-write copies) and
//!   shared (written through the mapping: the file changes too; after the
//!   restore the mapping must still be shared with the file);
//! - a read-only file mapping at a non-zero offset;
//! - read-only and PROT_NONE anonymous mappings holding data;
//! - a sparse anonymous mapping (two pages touched, the rest must read 0);
//! - a guard page (MADV_GUARD_INSTALL; a PROT_NONE gap where the kernel has
//!   no guard regions) in the middle of a filled mapping: it must still
//!   fault, its neighbours keep their data.

use std::os::unix::fs::FileExt;
use zdtm::{Checks, datagen, probe_readable};

const NP: usize = 16;
const MARKER: &[u8; 16] = b"ZDTM-MAPS00-PAGE";
const MADV_GUARD_INSTALL: libc::c_int = 102;
const MADV_GUARD_REMOVE: libc::c_int = 103;

fn mmap(len: usize, prot: libc::c_int, flags: libc::c_int, fd: libc::c_int, off: usize) -> *mut u8 {
    // SAFETY: a fresh mapping chosen by the kernel.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            flags,
            fd,
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        zdtm::fail(&format!("mmap: {}", zdtm::last_err()));
    }
    p.cast()
}

fn mprotect(p: *mut u8, len: usize, prot: libc::c_int) {
    // SAFETY: p..p+len is one of our mappings.
    if unsafe { libc::mprotect(p.cast(), len, prot) } != 0 {
        zdtm::fail(&format!("mprotect: {}", zdtm::last_err()));
    }
}

fn slice<'a>(p: *mut u8, len: usize) -> &'a mut [u8] {
    // SAFETY: p..p+len is a readable mapping of ours (callers make sure).
    unsafe { std::slice::from_raw_parts_mut(p, len) }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    datagen(&mut v, seed);
    v
}

/// The private anonymous pattern: random bytes, each page led by the marker.
fn marked_pattern(len: usize, seed: u64, ps: usize) -> Vec<u8> {
    let mut v = pattern(len, seed);
    for (i, page) in v.chunks_mut(ps).enumerate() {
        page[..16].copy_from_slice(MARKER);
        page[16..20].copy_from_slice(&(i as u32).to_le_bytes());
    }
    v
}

fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    if a.len() != b.len() {
        return Some(a.len().min(b.len()));
    }
    a.iter().zip(b).position(|(x, y)| x != y)
}

fn perms_of(addr: *mut u8) -> String {
    zdtm::maps_entry(addr as usize)
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "<unmapped>".into())
}

fn offset_of_map(addr: *mut u8) -> String {
    zdtm::maps_entry(addr as usize)
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_default()
}

fn make_file(path: &std::path::Path, data: &[u8]) -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap_or_else(|e| zdtm::fail(&format!("create {}: {e}", path.display())));
    f.write_all_at(data, 0)
        .unwrap_or_else(|e| zdtm::fail(&format!("write {}: {e}", path.display())));
    f
}

fn main() {
    zdtm::test_init();
    let ps = zdtm::page_size();
    let len = NP * ps;
    let seed = std::process::id() as u64 * 1000 + 7;
    use std::os::fd::AsRawFd;
    let (rw, ro, none) = (
        libc::PROT_READ | libc::PROT_WRITE,
        libc::PROT_READ,
        libc::PROT_NONE,
    );
    let (priv_anon, shared_anon) = (
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        libc::MAP_SHARED | libc::MAP_ANONYMOUS,
    );

    // a) anonymous private, marked pattern
    let a = mmap(len, rw, priv_anon, -1, 0);
    let a_want = marked_pattern(len, seed + 1, ps);
    slice(a, len).copy_from_slice(&a_want);
    // b) anonymous shared
    let b = mmap(len, rw, shared_anon, -1, 0);
    let b_want = pattern(len, seed + 2);
    slice(b, len).copy_from_slice(&b_want);
    // c) file, private, pages 0..4 written (COW)
    let base = zdtm::filename();
    let f1_path = base.with_extension("private");
    let f1_data = pattern(len, seed + 3);
    let f1 = make_file(&f1_path, &f1_data);
    let c_map = mmap(len, rw, libc::MAP_PRIVATE, f1.as_raw_fd(), 0);
    let mut c_want = f1_data.clone();
    let cow = pattern(4 * ps, seed + 4);
    c_want[..4 * ps].copy_from_slice(&cow);
    slice(c_map, 4 * ps).copy_from_slice(&cow);
    // d) file, shared, pages 2..4 written through the mapping
    let f2_path = base.with_extension("shared");
    let f2 = make_file(&f2_path, &pattern(len, seed + 5));
    let d = mmap(len, rw, libc::MAP_SHARED, f2.as_raw_fd(), 0);
    let mut d_want = pattern(len, seed + 5);
    let shw = pattern(2 * ps, seed + 6);
    d_want[2 * ps..4 * ps].copy_from_slice(&shw);
    slice(d, len)[2 * ps..4 * ps].copy_from_slice(&shw);
    // h) file, read-only, at offset 4 pages
    let h = mmap(4 * ps, ro, libc::MAP_PRIVATE, f1.as_raw_fd(), 4 * ps);
    // e) anonymous read-only with data
    let e = mmap(len, rw, priv_anon, -1, 0);
    let e_want = pattern(len, seed + 7);
    slice(e, len).copy_from_slice(&e_want);
    mprotect(e, len, ro);
    // f) anonymous PROT_NONE with data
    let f = mmap(len, rw, priv_anon, -1, 0);
    let f_want = pattern(len, seed + 8);
    slice(f, len).copy_from_slice(&f_want);
    mprotect(f, len, none);
    // g) a guard page (page 3) inside a filled mapping
    let g = mmap(8 * ps, rw, priv_anon, -1, 0);
    let g_want = pattern(8 * ps, seed + 9);
    slice(g, 8 * ps).copy_from_slice(&g_want);
    // SAFETY: page 3 of our mapping.
    let guard_page = unsafe { g.add(3 * ps) };
    // SAFETY: madvise on our own mapping.
    let have_guard = unsafe { libc::madvise(guard_page.cast(), ps, MADV_GUARD_INSTALL) } == 0;
    if !have_guard {
        zdtm::test_msg!(
            "MADV_GUARD_INSTALL unsupported ({}): using a PROT_NONE gap",
            zdtm::last_err()
        );
        mprotect(guard_page, ps, none);
    }
    // i) sparse: pages 10 and 50 of 64 touched
    let i_len = 64 * ps;
    let i = mmap(i_len, rw, priv_anon, -1, 0);
    let i_pages = [
        (10usize, pattern(ps, seed + 10)),
        (50, pattern(ps, seed + 11)),
    ];
    for (n, data) in &i_pages {
        slice(i, i_len)[n * ps..(n + 1) * ps].copy_from_slice(data);
    }

    let expect_perms = [
        ("anon private", a, "rw-p"),
        ("anon shared", b, "rw-s"),
        ("file private", c_map, "rw-p"),
        ("file shared", d, "rw-s"),
        ("file read-only", h, "r--p"),
        ("anon read-only", e, "r--p"),
        ("anon PROT_NONE", f, "---p"),
        ("guarded", g, "rw-p"),
        ("sparse", i, "rw-p"),
    ];
    for (what, p, want) in expect_perms {
        if perms_of(p) != want {
            zdtm::fail(&format!(
                "{what} mapping has perms {} before the dump, want {want}",
                perms_of(p)
            ));
        }
    }
    let h_off = offset_of_map(h);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        slice(a, len)[5 * ps + 100] ^= 0x5a;
    }

    let mut ck = Checks::new();
    for (what, p, want) in expect_perms {
        ck.eq(&format!("{what} perms"), perms_of(p), want.to_string());
    }
    ck.eq("file read-only offset", offset_of_map(h), h_off.clone());
    ck.eq(
        "file read-only offset value",
        h_off,
        format!("{:08x}", 4 * ps),
    );
    let cmp = |ck: &mut Checks, what: &str, got: &[u8], want: &[u8]| {
        if let Some(off) = first_diff(got, want) {
            ck.check(false, || {
                format!("{what}: contents differ at byte {off:#x}")
            });
        }
    };
    cmp(&mut ck, "anon private", slice(a, len), &a_want);
    cmp(&mut ck, "anon shared", slice(b, len), &b_want);
    cmp(
        &mut ck,
        "file private (COW pages + file pages)",
        slice(c_map, len),
        &c_want,
    );
    cmp(&mut ck, "file shared", slice(d, len), &d_want);
    cmp(
        &mut ck,
        "file read-only at offset",
        slice(h, 4 * ps),
        &f1_data[4 * ps..8 * ps],
    );
    cmp(&mut ck, "anon read-only", slice(e, len), &e_want);
    // The private file mapping must not have leaked into the file.
    let mut on_disk = vec![0u8; len];
    let _ = f1.read_exact_at(&mut on_disk, 0);
    cmp(
        &mut ck,
        "file behind the private mapping",
        &on_disk,
        &f1_data,
    );
    // The shared mapping must still be shared with the file, both ways.
    let _ = f2.read_exact_at(&mut on_disk, 0);
    cmp(&mut ck, "file behind the shared mapping", &on_disk, &d_want);
    slice(d, len)[7 * ps + 3] ^= 0xff;
    let mut byte = [0u8];
    let _ = f2.read_exact_at(&mut byte, (7 * ps + 3) as u64);
    ck.eq(
        "write through the shared mapping reaches the file",
        byte[0],
        d_want[7 * ps + 3] ^ 0xff,
    );
    let _ = f2.write_all_at(&[0x42], 9 * ps as u64);
    ck.eq(
        "file write shows in the shared mapping",
        slice(d, len)[9 * ps],
        0x42,
    );
    // PROT_NONE: must not be readable; the data is still there.
    ck.check(!probe_readable(f as usize), || {
        "PROT_NONE mapping is readable".into()
    });
    mprotect(f, len, ro);
    cmp(
        &mut ck,
        "anon PROT_NONE (after mprotect)",
        slice(f, len),
        &f_want,
    );
    // The guard page faults, its neighbours keep their data.
    ck.check(!probe_readable(guard_page as usize), || {
        "guard page is readable".into()
    });
    cmp(
        &mut ck,
        "guarded mapping before the guard",
        &slice(g, 3 * ps)[..],
        &g_want[..3 * ps],
    );
    // SAFETY: pages 4..8 of g.
    cmp(
        &mut ck,
        "guarded mapping after the guard",
        slice(unsafe { g.add(4 * ps) }, 4 * ps),
        &g_want[4 * ps..],
    );
    if have_guard {
        // SAFETY: madvise on our own mapping.
        let r = unsafe { libc::madvise(guard_page.cast(), ps, MADV_GUARD_REMOVE) };
        ck.check(r == 0 && probe_readable(guard_page as usize), || {
            "guard page not removable after".into()
        });
        ck.check(
            r != 0 || slice(guard_page, ps).iter().all(|&x| x == 0),
            || "guard page is not zero once removed".into(),
        );
    }
    // Sparse: touched pages hold their data, the rest is zero.
    let sparse = slice(i, i_len);
    for (n, page) in sparse.chunks(ps).enumerate() {
        match i_pages.iter().find(|(k, _)| *k == n) {
            Some((_, data)) => cmp(&mut ck, &format!("sparse page {n}"), page, data),
            None => ck.check(page.iter().all(|&x| x == 0), || {
                format!("sparse page {n} is not zero")
            }),
        }
    }
    let _ = std::fs::remove_file(&f1_path);
    let _ = std::fs::remove_file(&f2_path);
    ck.finish()
}
