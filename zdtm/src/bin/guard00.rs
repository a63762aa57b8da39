//! guard00: guard regions (MADV_GUARD_INSTALL) come back where they were.
//!
//! Guards at the first and the last page of an anonymous mapping, several
//! in a row plus a lone one in another, at the first and last page of a
//! private file mapping, and, where the kernel allows guards there, in a
//! shared file mapping and in shared anonymous memory; two anonymous
//! mappings side by side with guards on both sides of their border. After
//! the restore each guard page must fault, every other page hold its data,
//! and a removed guard read as the mapping's memory (zero, or the file).

use std::os::fd::AsRawFd;

use zdtm::Checks;
use zdtm::mem::{bytes, madvise, map};

const MADV_GUARD_INSTALL: libc::c_int = 102;
const MADV_GUARD_REMOVE: libc::c_int = 103;
const NP: usize = 8;

/// (name, mapping, guard pages, what a removed guard reads) before filling.
type Planned = (&'static str, *mut u8, Vec<usize>, Option<Vec<u8>>);

struct Area {
    name: &'static str,
    p: *mut u8,
    want: Vec<u8>,
    guards: Vec<usize>,
    /// What a removed guard page reads (the file's page, the shared
    /// object's: empty, as `want`); None: zero.
    file: Option<Vec<u8>>,
}

fn main() {
    zdtm::test_init();
    let ps = zdtm::page_size();
    let len = NP * ps;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let seed = std::process::id() as u64 * 100;
    let path = zdtm::filename().with_extension("guarded");
    let mut file_data = vec![0u8; len];
    zdtm::datagen(&mut file_data, seed);
    std::fs::write(&path, &file_data).unwrap_or_else(|e| zdtm::fail(&format!("write {}: {e}", path.display())));
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap_or_else(|e| zdtm::fail(&e.to_string()));

    // Two anonymous mappings side by side (different advice keeps them apart).
    let pair = map("pair", 2 * len, rw, anon, -1, 0);
    // SAFETY: the second half of our own mapping.
    let pair2 = unsafe { pair.add(len) };
    if let Err(e) = madvise(pair2, len, libc::MADV_RANDOM) {
        zdtm::fail(&format!("MADV_RANDOM: {e}"));
    }

    let plan: Vec<Planned> = vec![
        ("anon first+last", map("anon1", len, rw, anon, -1, 0), vec![0, NP - 1], None),
        ("anon run", map("anon2", len, rw, anon, -1, 0), vec![2, 3, 4, 6], None),
        ("file private", map("file private", len, rw, libc::MAP_PRIVATE, f.as_raw_fd(), 0), vec![1, NP - 1], Some(file_data.clone())),
        ("pair, first", pair, vec![NP - 1], None),
        ("pair, second", pair2, vec![0, 5], None),
        ("file shared", map("file shared", len, rw, libc::MAP_SHARED, f.as_raw_fd(), 0), vec![0, 3, NP - 1], Some(file_data.clone())),
        ("anon shared", map("anon shared", len, rw, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0), vec![2, NP - 1], Some(Vec::new())),
    ];
    let mut areas = Vec::new();
    for (i, (name, p, guards, file)) in plan.into_iter().enumerate() {
        let mut want = vec![0u8; len];
        zdtm::datagen(&mut want, seed + 1 + i as u64);
        if name == "file shared" {
            want = file_data.clone();
        } else {
            bytes(p, len).copy_from_slice(&want);
        }
        let mut ok = true;
        for &g in &guards {
            // SAFETY: page g of our own mapping.
            if let Err(e) = madvise(unsafe { p.add(g * ps) }, ps, MADV_GUARD_INSTALL) {
                if i == 0 {
                    zdtm::skip(&format!("MADV_GUARD_INSTALL: {e}"));
                }
                zdtm::test_msg!("{name}: no guards here ({e}): left out");
                ok = false;
                break;
            }
        }
        if ok {
            areas.push(Area { name, p, want, guards, file });
        }
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let a = &areas[1];
        // SAFETY: page of our own mapping.
        let _ = madvise(unsafe { a.p.add(a.guards[1] * ps) }, ps, MADV_GUARD_REMOVE);
    }
    let mut ck = Checks::new();
    for a in &areas {
        for n in 0..NP {
            // SAFETY: page n of our own mapping.
            let page = unsafe { a.p.add(n * ps) };
            if a.guards.contains(&n) {
                ck.check(!zdtm::probe_readable(page as usize), || format!("{}: page {n} is no longer a guard", a.name));
            } else {
                ck.check(bytes(page, ps) == &a.want[n * ps..(n + 1) * ps], || format!("{}: page {n} differs", a.name));
            }
        }
        for &g in &a.guards {
            // SAFETY: page g of our own mapping.
            let page = unsafe { a.p.add(g * ps) };
            if madvise(page, ps, MADV_GUARD_REMOVE).is_err() || !zdtm::probe_readable(page as usize) {
                ck.check(false, || format!("{}: guard at page {g} can't be removed", a.name));
                continue;
            }
            let want = match &a.file {
                None => vec![0u8; ps],
                Some(d) if d.is_empty() => a.want[g * ps..(g + 1) * ps].to_vec(),
                Some(d) => d[g * ps..(g + 1) * ps].to_vec(),
            };
            ck.check(bytes(page, ps) == want.as_slice(), || format!("{}: removed guard at page {g} reads wrong", a.name));
        }
    }
    let _ = std::fs::remove_file(&path);
    ck.finish()
}
