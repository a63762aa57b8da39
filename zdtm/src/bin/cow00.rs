//! cow00: private anonymous memory shared copy-on-write between a parent
//! and the children it forked. The root maps 16 MiB, fills every page with
//! its own pattern and forks 4 children; then child 0 rewrites 3 pages with
//! data of its own, child 1 drops a page (MADV_DONTNEED: it reads zeroes),
//! and the root rewrites one page and drops another (the children keep
//! the old ones); child 2 forks a grandchild that shares them all on.
//! After the restore each task checks its contents page by page, and
//! every child (and the grandchild) checks from /proc/self/pagemap that each page
//! nobody touched after the forks is still the root's frame (the root
//! publishes its frame numbers in a shared mapping made before the forks);
//! each task also checks that the area's Private_Dirty in smaps stayed a
//! few pages, not 16 MiB. Frame numbers need CAP_SYS_ADMIN: a suid test.
//! Sabotage: every child rewrites its page 0 with the same bytes (the
//! contents stay right, the sharing is gone).

use zdtm::Checks;

/// 16 MiB of 4 KiB pages.
const PAGES: usize = 4096;
const KIDS: usize = 4;
/// The root rewrites this page after the forks.
const ROOT_WROTE: usize = 7;
/// The root drops this page after the forks.
const ROOT_DROPPED: usize = 13;
/// Child 0 rewrites these pages with its own data.
const CHILD0_WROTE: [usize; 3] = [3, 100, 2000];
/// Child 1 drops this page.
const CHILD1_DROPPED: usize = 11;
/// Private_Dirty the area may show per task: the pages it owns alone
/// (its own writes, and the copies of pages the root rewrote) and slack.
const PRIVATE_LIMIT_KB: u64 = 16 * 4;

const PFN_MASK: u64 = (1 << 55) - 1;
const PRESENT: u64 = 1 << 63;

/// What page `i` holds for task `who` (None: the root, Some(k): child k).
enum Want {
    Seed(u64),
    Zero,
}

fn want(who: Option<usize>, i: usize) -> Want {
    match who {
        None if i == ROOT_WROTE => Want::Seed(0x2000_0000 + i as u64),
        None if i == ROOT_DROPPED => Want::Zero,
        Some(0) if CHILD0_WROTE.contains(&i) => Want::Seed(0x3000_0000 + i as u64),
        Some(1) if i == CHILD1_DROPPED => Want::Zero,
        _ => Want::Seed(0x1000_0000 + i as u64),
    }
}

/// Whether child `k`'s page `i` must still be the root's frame.
fn shared_with_root(k: usize, i: usize) -> bool {
    !(i == ROOT_WROTE || i == ROOT_DROPPED || (k == 0 && CHILD0_WROTE.contains(&i)) || (k == 1 && i == CHILD1_DROPPED))
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

fn map(len: usize, flags: i32) -> &'static mut [u8] {
    // SAFETY: a fresh anonymous mapping of our own.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags | libc::MAP_ANONYMOUS, -1, 0) };
    if p == libc::MAP_FAILED {
        zdtm::fail(&format!("mmap {len} bytes: {}", zdtm::last_err()));
    }
    // SAFETY: the mapping is ours, `len` bytes, for the whole run.
    unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) }
}

fn drop_page(mem: &mut [u8], i: usize, page: usize) {
    // SAFETY: a page of our own mapping.
    if unsafe { libc::madvise(mem[i * page..].as_mut_ptr().cast(), page, libc::MADV_DONTNEED) } != 0 {
        zdtm::fail(&format!("MADV_DONTNEED: {}", zdtm::last_err()));
    }
}

/// /proc/self/pagemap's entries for the area.
fn pagemap(mem: &[u8], page: usize) -> Result<Vec<u64>, String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/self/pagemap").map_err(|e| format!("opening /proc/self/pagemap: {e}"))?;
    let mut raw = vec![0u8; PAGES * 8];
    f.read_exact_at(&mut raw, (mem.as_ptr() as usize / page * 8) as u64).map_err(|e| format!("reading /proc/self/pagemap: {e}"))?;
    Ok(raw.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())).collect())
}

/// The frame of a present page (None: not present).
fn pfn(entry: u64) -> Option<u64> {
    (entry & PRESENT != 0).then_some(entry & PFN_MASK)
}

/// The area's Private_Dirty in /proc/self/smaps, in kB.
fn private_dirty_kb(mem: &[u8]) -> Result<u64, String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|e| format!("reading smaps: {e}"))?;
    let (lo, hi) = (mem.as_ptr() as u64, mem.as_ptr() as u64 + mem.len() as u64);
    let mut inside = false;
    let mut kb = 0;
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        {
            inside = a < hi && lo < b;
            continue;
        }
        if inside && let Some(v) = l.strip_prefix("Private_Dirty:") {
            kb += v.trim().trim_end_matches("kB").trim().parse::<u64>().map_err(|e| format!("smaps {l:?}: {e}"))?;
        }
    }
    Ok(kb)
}

/// Page by page, what task `who` holds against what it should.
fn check_contents(c: &mut Checks, mem: &[u8], who: Option<usize>, page: usize) {
    let mut bad = Vec::new();
    for i in 0..PAGES {
        let p = &mem[i * page..(i + 1) * page];
        let ok = match want(who, i) {
            Want::Seed(s) => zdtm::datachk(p, s).is_none(),
            Want::Zero => p.iter().all(|&b| b == 0),
        };
        if !ok {
            bad.push(i);
        }
    }
    c.check(bad.is_empty(), || format!("{} page(s) hold the wrong data, first {:?}", bad.len(), &bad[..bad.len().min(8)]));
}

fn check_private(c: &mut Checks, mem: &[u8]) {
    match private_dirty_kb(mem) {
        Ok(kb) => c.check(kb <= PRIVATE_LIMIT_KB, || format!("the area's Private_Dirty is {kb} kB (at most {PRIVATE_LIMIT_KB} kB: its pages are shared)")),
        Err(e) => c.check(false, || e),
    }
}

/// A child after the signal (`k`: its number; the grandchild is `KIDS`):
/// its contents, its frames against the root's (published in `table`),
/// its private memory, its own child's verdict. Exits with the verdict.
fn child_check(k: usize, mem: &mut [u8], table: &[u8], page: usize, child: Option<i32>) -> ! {
    if zdtm::sabotaged() {
        // The same bytes written back: a private copy of page 0.
        let b = mem[0];
        // SAFETY: a volatile write to our own memory.
        unsafe { std::ptr::write_volatile(mem.as_mut_ptr(), b) };
    }
    let mut c = Checks::new();
    check_contents(&mut c, mem, Some(k), page);
    // The kernel may migrate a shared page (compaction) between the root's
    // reading of its frames and ours: the root keeps publishing them until
    // its children are done, so a page still apart after 2 s is not shared.
    let compare = || -> Result<(Vec<usize>, Vec<usize>), String> {
        let root: Vec<u64> = table.chunks(8).map(|x| u64::from_le_bytes(x.try_into().unwrap_or_default())).collect();
        let own = pagemap(mem, page)?;
        let (mut apart, mut shared_own) = (Vec::new(), Vec::new());
        for i in 0..PAGES {
            let (mine, theirs) = (pfn(own[i]), pfn(root[i]));
            if shared_with_root(k, i) {
                if mine.is_none() || mine != theirs {
                    apart.push(i);
                }
            } else if i != CHILD1_DROPPED && i != ROOT_DROPPED && mine.is_some() && mine == theirs {
                shared_own.push(i);
            }
        }
        Ok((apart, shared_own))
    };
    let mut got = compare();
    for _ in 0..100 {
        if !matches!(&got, Ok((apart, _)) if !apart.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        got = compare();
    }
    match got {
        Ok((apart, shared_own)) => {
            c.check(apart.is_empty(), || {
                format!("{} page(s) are no longer the root's frames, first {:?}", apart.len(), &apart[..apart.len().min(8)])
            });
            c.check(shared_own.is_empty(), || format!("pages {shared_own:?} that differ from the root's share its frames"));
        }
        Err(e) => c.check(false, || e),
    }
    check_private(&mut c, mem);
    if let Some(g) = child {
        // SAFETY: kill takes only integer arguments and touches no memory of ours.
        unsafe { libc::kill(g, libc::SIGTERM) };
        c.check(zdtm::exited_ok(g), || format!("the grandchild {g} failed its checks"));
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
    let mem = map(PAGES * page, libc::MAP_PRIVATE);
    // Whole pages stay 4 KiB pages (no huge page collapses them meanwhile).
    // SAFETY: advice on our own mapping.
    unsafe { libc::madvise(mem.as_mut_ptr().cast(), mem.len(), libc::MADV_NOHUGEPAGE) };
    for i in 0..PAGES {
        zdtm::datagen(&mut mem[i * page..(i + 1) * page], 0x1000_0000 + i as u64);
    }
    match pagemap(mem, page) {
        Ok(m) if pfn(m[0]).unwrap_or(0) != 0 => {}
        Ok(_) => zdtm::skip("/proc/self/pagemap shows no frame numbers (needs CAP_SYS_ADMIN)"),
        Err(e) => zdtm::fail(&e),
    }
    // The root's frame numbers, for the children after the restore.
    let table = map(PAGES * 8, libc::MAP_SHARED);

    let mut ready = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let mut kids = Vec::new();
    for k in 0..KIDS {
        let pid = fork();
        if pid == 0 {
            match k {
                0 => {
                    for &i in &CHILD0_WROTE {
                        zdtm::datagen(&mut mem[i * page..(i + 1) * page], 0x3000_0000 + i as u64);
                    }
                }
                1 => drop_page(mem, CHILD1_DROPPED, page),
                _ => {}
            }
            let grandchild = (k == 2).then(fork);
            if grandchild == Some(0) {
                zdtm::say_ready(ready);
                zdtm::test_waitsig();
                child_check(KIDS, mem, table, page, None);
            }
            zdtm::say_ready(ready);
            zdtm::test_waitsig();
            child_check(k, mem, table, page, grandchild);
        }
        kids.push(pid);
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready[1]) };
    // Every child and the grandchild say ready.
    let mut got = 0;
    while got < KIDS + 1 {
        let mut b = [0u8; KIDS + 1];
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(ready[0], b.as_mut_ptr().cast(), KIDS + 1 - got) };
        if n <= 0 {
            zdtm::fail("a child died before it was ready");
        }
        got += n as usize;
    }
    zdtm::wait_ready_closed(ready[0]);
    zdtm::datagen(&mut mem[ROOT_WROTE * page..(ROOT_WROTE + 1) * page], 0x2000_0000 + ROOT_WROTE as u64);
    drop_page(mem, ROOT_DROPPED, page);
    zdtm::test_msg!("children {kids:?} share {} MiB with the root", (PAGES * page) >> 20);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c = Checks::new();
    check_contents(&mut c, mem, None, page);
    match pagemap(mem, page) {
        Ok(m) => {
            let missing: Vec<usize> = (0..PAGES).filter(|&i| i != ROOT_DROPPED && pfn(m[i]).unwrap_or(0) == 0).collect();
            c.check(missing.is_empty(), || format!("pages {:?}... are not present in the root", &missing[..missing.len().min(8)]));
            for (i, e) in m.iter().enumerate() {
                table[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
            }
        }
        Err(e) => c.check(false, || e),
    }
    check_private(&mut c, mem);
    // Publish our frames again and again while the children compare
    // theirs (a page the kernel migrates meanwhile moves for all sharers).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let done = done.clone();
        let (mem_at, table_at) = (mem.as_ptr() as usize, table.as_mut_ptr() as usize);
        std::thread::spawn(move || {
            // SAFETY: both mappings live for the program's life; the table is
            // shared memory the children only read (a torn read is retried).
            let (mem, table) = unsafe {
                (std::slice::from_raw_parts(mem_at as *const u8, PAGES * page), std::slice::from_raw_parts_mut(table_at as *mut u8, PAGES * 8))
            };
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(m) = pagemap(mem, page) {
                    for (i, e) in m.iter().enumerate() {
                        table[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    for &k in &kids {
        // SAFETY: kill takes only integer arguments and touches no memory of ours.
        unsafe { libc::kill(k, libc::SIGTERM) };
    }
    for (n, &k) in kids.iter().enumerate() {
        c.check(zdtm::exited_ok(k), || format!("child {n} ({k}) failed its checks (see the log)"));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = publisher.join();
    c.finish()
}
