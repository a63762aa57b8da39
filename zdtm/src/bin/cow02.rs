//! cow02: copy-on-write sharing kept where a parent's and its children's
//! VMAs only overlap. The root fills 32 pages it took with sbrk (the heap)
//! and a 64-page mmap'ed area, then forks 3 children; after the forks the
//! root grows its heap (sbrk, writing the new pages and rewriting heap
//! page 5) and grows the area in place to 128 pages (mremap
//! MREMAP_MAYMOVE, not moved), writing the new pages. Child 0 rewrites
//! area page 9; child 1 makes area pages 0..16 read-only (mprotect: one
//! VMA of the root's is two of its own); child 2 grows the area in place to
//! 192 pages and its heap further than the root's, writing the new pages.
//! After the restore each task checks its contents page by page; every
//! child checks from /proc/self/pagemap that each page of the 32 and the
//! 64 nobody touched after the forks is still the root's frame (the root
//! publishes its frames in a shared mapping made before the forks), and
//! child 2 that its grown area is one VMA (the kernel would refuse an
//! mremap across a split). Frame numbers need CAP_SYS_ADMIN: a suid test.
//! Sabotage: every child rewrites area page 0 with the same bytes.

use zdtm::Checks;

const HEAP_PAGES: usize = 32;
const AREA_PAGES: usize = 64;
const KIDS: usize = 3;
/// The root grows its heap by this many pages after the forks, child 2 by twice as many.
const HEAP_GROW: usize = 16;
/// The root rewrites this heap page after the forks.
const ROOT_WROTE: usize = 5;
/// Child 0 rewrites this area page.
const CHILD0_WROTE: usize = 9;
/// Child 1 makes area pages 0..this read-only.
const CHILD1_RO: usize = 16;

const PFN_MASK: u64 = (1 << 55) - 1;
const PRESENT: u64 = 1 << 63;

fn heap_seed(i: usize) -> u64 {
    0x1000_0000 + i as u64
}
fn area_seed(i: usize) -> u64 {
    0x2000_0000 + i as u64
}
/// Pages written after the forks: by the root (heap page 5, grown heap
/// and area) and by child k.
fn root_seed(i: usize) -> u64 {
    0x3000_0000 + i as u64
}
fn child_seed(k: usize, i: usize) -> u64 {
    0x4000_0000 + ((k as u64) << 16) + i as u64
}

fn fork() -> i32 {
    // SAFETY: we are single-threaded here; the child runs only this
    // program's code and leaves with _exit.
    let p = unsafe { libc::fork() };
    if p < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    p
}

fn map(len: usize, flags: i32) -> usize {
    // SAFETY: a fresh anonymous mapping of our own.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags | libc::MAP_ANONYMOUS, -1, 0) };
    if p == libc::MAP_FAILED {
        zdtm::fail(&format!("mmap {len} bytes: {}", zdtm::last_err()));
    }
    p as usize
}

/// `n` pages of ours at `addr`.
fn pages(addr: usize, n: usize, page: usize) -> &'static mut [u8] {
    // SAFETY: a range of our own mappings (heap or area) kept for the whole run.
    unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, n * page) }
}

/// Grow the heap by `n` pages: their address (page aligned: the break is kept so).
fn sbrk_pages(n: usize, page: usize) -> usize {
    // SAFETY: moving the break up; glibc's malloc copes with a foreign sbrk.
    let cur = unsafe { libc::sbrk(0) } as usize;
    let pad = cur.next_multiple_of(page) - cur;
    // SAFETY: moving the break up past a page boundary; glibc's malloc
    // copes with a foreign sbrk and the pages are only used through `pages`.
    let p = unsafe { libc::sbrk((pad + n * page) as libc::intptr_t) };
    if p as isize == -1 {
        zdtm::fail(&format!("sbrk: {}", zdtm::last_err()));
    }
    p as usize + pad
}

/// Grow the area at `addr` from `from` to `to` pages, where it is.
fn grow_area(addr: usize, from: usize, to: usize, page: usize) {
    // SAFETY: our own mapping; MREMAP_MAYMOVE only if it must (checked).
    let p = unsafe { libc::mremap(addr as *mut libc::c_void, from * page, to * page, libc::MREMAP_MAYMOVE) };
    if p == libc::MAP_FAILED {
        zdtm::fail(&format!("mremap to {to} pages: {}", zdtm::last_err()));
    }
    if p as usize != addr {
        zdtm::fail(&format!("mremap moved the area from {addr:#x} to {:#x}", p as usize));
    }
}

fn fill(addr: usize, range: std::ops::Range<usize>, page: usize, seed: impl Fn(usize) -> u64) {
    let mem = pages(addr, range.end, page);
    for i in range {
        zdtm::datagen(&mut mem[i * page..(i + 1) * page], seed(i));
    }
}

/// The heap pages grown after the forks, numbered on from the first 32.
fn fill_grown((addr, n): (usize, usize), page: usize, seed: impl Fn(usize) -> u64) {
    fill(addr, 0..n, page, |i| seed(HEAP_PAGES + i));
}

/// /proc/self/pagemap's entries for `n` pages at `addr`.
fn pagemap(addr: usize, n: usize, page: usize) -> Result<Vec<u64>, String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/self/pagemap").map_err(|e| format!("opening /proc/self/pagemap: {e}"))?;
    let mut raw = vec![0u8; n * 8];
    f.read_exact_at(&mut raw, (addr / page * 8) as u64).map_err(|e| format!("reading /proc/self/pagemap: {e}"))?;
    Ok(raw.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())).collect())
}

fn pfn(entry: u64) -> Option<u64> {
    (entry & PRESENT != 0).then_some(entry & PFN_MASK)
}

/// Where everything is (the same addresses in every task).
#[derive(Clone, Copy)]
struct Layout {
    heap: usize,
    area: usize,
    /// Where the heap grew after the forks in this task, and by how many pages.
    grown: (usize, usize),
    page: usize,
}

/// Page by page: `(what, addr, seeds)`; the first few bad pages named.
fn check_pages(c: &mut Checks, what: &str, addr: usize, seeds: &[u64], page: usize) {
    let mem = pages(addr, seeds.len(), page);
    let bad: Vec<usize> = (0..seeds.len()).filter(|&i| zdtm::datachk(&mem[i * page..(i + 1) * page], seeds[i]).is_some()).collect();
    c.check(bad.is_empty(), || format!("{what}: {} page(s) hold the wrong data, first {:?}", bad.len(), &bad[..bad.len().min(8)]));
}

/// What task `who` (None: the root, Some(k): child k) holds, page by page.
fn check_contents(c: &mut Checks, l: &Layout, who: Option<usize>) {
    let heap: Vec<u64> = (0..HEAP_PAGES).map(|i| if who.is_none() && i == ROOT_WROTE { root_seed(i) } else { heap_seed(i) }).collect();
    check_pages(c, "heap", l.heap, &heap, l.page);
    let grown: Vec<u64> = (0..l.grown.1).map(|i| who.map_or(root_seed(HEAP_PAGES + i), |k| child_seed(k, HEAP_PAGES + i))).collect();
    check_pages(c, "grown heap", l.grown.0, &grown, l.page);
    let area_len = match who {
        None => 2 * AREA_PAGES,
        Some(2) => 3 * AREA_PAGES,
        Some(_) => AREA_PAGES,
    };
    let area: Vec<u64> = (0..area_len)
        .map(|i| match who {
            _ if i < AREA_PAGES && !(who == Some(0) && i == CHILD0_WROTE) => area_seed(i),
            None => root_seed(i),
            Some(k) => child_seed(k, i),
        })
        .collect();
    check_pages(c, "area", l.area, &area, l.page);
}

/// Child `k` after the signal: contents, frames against the root's
/// (heap then area, in `table`), its area's VMAs. Exits with the verdict.
fn child_check(k: usize, l: &Layout, table: &[u8]) -> ! {
    let page = l.page;
    if zdtm::sabotaged() {
        // The same bytes written back: a private copy of area page 0.
        let mem = pages(l.area, 1, page);
        if k == 1 {
            // SAFETY: our own read-only pages made writable again, as the check wants them.
            unsafe { libc::mprotect(l.area as *mut libc::c_void, page, libc::PROT_READ | libc::PROT_WRITE) };
        }
        // SAFETY: a volatile write to our own memory.
        unsafe { std::ptr::write_volatile(mem.as_mut_ptr(), mem[0]) };
        if k == 1 {
            // SAFETY: as it was.
            unsafe { libc::mprotect(l.area as *mut libc::c_void, page, libc::PROT_READ) };
        }
    }
    let mut c = Checks::new();
    check_contents(&mut c, l, Some(k));
    let root: Vec<u64> = table.chunks(8).map(|x| u64::from_le_bytes(x.try_into().unwrap_or_default())).collect();
    for (what, addr, n, base, differ) in
        [("heap", l.heap, HEAP_PAGES, 0, ROOT_WROTE), ("area", l.area, AREA_PAGES, HEAP_PAGES, if k == 0 { CHILD0_WROTE } else { usize::MAX })]
    {
        match pagemap(addr, n, page) {
            Ok(own) => {
                let apart: Vec<usize> = (0..n).filter(|&i| i != differ && (pfn(own[i]).is_none() || pfn(own[i]) != pfn(root[base + i]))).collect();
                c.check(apart.is_empty(), || {
                    format!("{what}: {} page(s) are no longer the root's frames, first {:?}", apart.len(), &apart[..apart.len().min(8)])
                });
                if differ < n {
                    c.check(pfn(own[differ]).is_some_and(|f| Some(f) != pfn(root[base + differ])), || {
                        format!("{what} page {differ}, which differs from the root's, is not a frame of its own")
                    });
                }
            }
            Err(e) => c.check(false, || e),
        }
    }
    let vma = |addr: usize| zdtm::maps_entry(addr).unwrap_or_default();
    match k {
        1 => c.check(vma(l.area).contains(" r--p ") && vma(l.area + CHILD1_RO * page).contains(" rw-p "), || {
            format!("the area's read-only part is gone: {:?}, {:?}", vma(l.area), vma(l.area + CHILD1_RO * page))
        }),
        2 => {
            let range = vma(l.area).split_whitespace().next().unwrap_or("").to_string();
            let (a, b) = range.split_once('-').unwrap_or(("", ""));
            let (a, b) = (usize::from_str_radix(a, 16).unwrap_or(usize::MAX), usize::from_str_radix(b, 16).unwrap_or(0));
            c.check(a <= l.area && b >= l.area + 3 * AREA_PAGES * page, || format!("the grown area is not one VMA: {range}"));
        }
        _ => {}
    }
    if c.failed() {
        zdtm::test_msg!("child {k} ({}) failed", std::process::id());
    }
    // SAFETY: _exit leaves at once (no verdict file: the root reports).
    unsafe { libc::_exit(if c.failed() { 1 } else { 0 }) }
}

fn main() {
    zdtm::test_init();
    let page = zdtm::page_size();
    if page != 4096 {
        zdtm::skip(&format!("the page size is {page}, not 4 KiB"));
    }
    let heap = sbrk_pages(HEAP_PAGES, page);
    fill(heap, 0..HEAP_PAGES, page, heap_seed);
    // Room to grow in place: 192 pages mapped, the top 128 unmapped again.
    let area = map(3 * AREA_PAGES * page, libc::MAP_PRIVATE);
    // SAFETY: unmapping and advising parts of our own mapping.
    unsafe {
        libc::munmap((area + AREA_PAGES * page) as *mut libc::c_void, 2 * AREA_PAGES * page);
        libc::madvise(area as *mut libc::c_void, AREA_PAGES * page, libc::MADV_NOHUGEPAGE);
    }
    fill(area, 0..AREA_PAGES, page, area_seed);
    match pagemap(area, 1, page) {
        Ok(m) if pfn(m[0]).unwrap_or(0) != 0 => {}
        Ok(_) => zdtm::skip("/proc/self/pagemap shows no frame numbers (needs CAP_SYS_ADMIN)"),
        Err(e) => zdtm::fail(&e),
    }
    let table = pages(map((HEAP_PAGES + AREA_PAGES) * 8, libc::MAP_SHARED), 1, page);
    let table = &mut table[..(HEAP_PAGES + AREA_PAGES) * 8];

    let mut ready = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let mut kids = Vec::new();
    for k in 0..KIDS {
        let pid = fork();
        if pid == 0 {
            let mut grown = (heap, 0);
            match k {
                0 => fill(area, CHILD0_WROTE..CHILD0_WROTE + 1, page, |i| child_seed(0, i)),
                1 => {
                    // SAFETY: our own pages.
                    if unsafe { libc::mprotect(area as *mut libc::c_void, CHILD1_RO * page, libc::PROT_READ) } != 0 {
                        zdtm::fail(&format!("mprotect: {}", zdtm::last_err()));
                    }
                }
                _ => {
                    grow_area(area, AREA_PAGES, 3 * AREA_PAGES, page);
                    fill(area, AREA_PAGES..3 * AREA_PAGES, page, |i| child_seed(2, i));
                    grown = (sbrk_pages(2 * HEAP_GROW, page), 2 * HEAP_GROW);
                    fill_grown(grown, page, |i| child_seed(2, i));
                }
            }
            zdtm::say_ready(ready);
            zdtm::test_waitsig();
            child_check(k, &Layout { heap, area, grown, page }, table);
        }
        kids.push(pid);
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready[1]) };
    let mut got = 0;
    while got < KIDS {
        let mut b = [0u8; KIDS];
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(ready[0], b.as_mut_ptr().cast(), KIDS - got) };
        if n <= 0 {
            zdtm::fail("a child died before it was ready");
        }
        got += n as usize;
    }
    zdtm::wait_ready_closed(ready[0]);
    let grown = (sbrk_pages(HEAP_GROW, page), HEAP_GROW);
    fill_grown(grown, page, root_seed);
    fill(heap, ROOT_WROTE..ROOT_WROTE + 1, page, root_seed);
    grow_area(area, AREA_PAGES, 2 * AREA_PAGES, page);
    fill(area, AREA_PAGES..2 * AREA_PAGES, page, root_seed);
    zdtm::test_msg!("children {kids:?}: heap at {heap:#x}, area at {area:#x}");

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let l = Layout { heap, area, grown, page };
    let mut c = Checks::new();
    check_contents(&mut c, &l, None);
    for (addr, n, base) in [(heap, HEAP_PAGES, 0), (area, AREA_PAGES, HEAP_PAGES)] {
        match pagemap(addr, n, page) {
            Ok(m) => {
                for (i, e) in m.iter().enumerate() {
                    table[(base + i) * 8..(base + i + 1) * 8].copy_from_slice(&e.to_le_bytes());
                }
            }
            Err(e) => c.check(false, || e),
        }
    }
    for &k in &kids {
        // SAFETY: kill takes only integer arguments and touches no memory of ours.
        unsafe { libc::kill(k, libc::SIGTERM) };
    }
    for (n, &k) in kids.iter().enumerate() {
        c.check(zdtm::exited_ok(k), || format!("child {n} ({k}) failed its checks (see the log)"));
    }
    c.finish()
}
