//! cow01: guard regions in memory a parent shares copy-on-write with its
//! children (a fork copies the guard markers). The root fills 8 pages and
//! installs guards on pages 2 and 5, then forks A and B; A removes the
//! guard on page 2 (it reads zeroes there), B adds one on page 6. After
//! the restore each task's guards are exactly its own (a guard faults, a
//! page without one reads) and every other page holds its data: a child
//! must not keep a guard of its parent's it had removed.
//! Without guard regions (MADV_GUARD_INSTALL, Linux 6.13) the test skips.
//! Sabotage: A puts its removed guard back.

use zdtm::{probe_readable, Checks};

const NP: usize = 8;
const MADV_GUARD_INSTALL: libc::c_int = 102;
const MADV_GUARD_REMOVE: libc::c_int = 103;

fn advise(mem: &mut [u8], i: usize, page: usize, advice: libc::c_int) -> bool {
    // SAFETY: advice on a page of our own mapping.
    unsafe { libc::madvise(mem[i * page..].as_mut_ptr().cast(), page, advice) == 0 }
}

/// Which pages of task `who` ('R' the root, 'A', 'B') are guards.
fn guards(who: char) -> &'static [usize] {
    match who {
        'A' => &[5],
        'B' => &[2, 5, 6],
        _ => &[2, 5],
    }
}

fn check(who: char, mem: &[u8], page: usize) -> Checks {
    let mut c = Checks::new();
    for i in 0..NP {
        let p = &mem[i * page..(i + 1) * page];
        let readable = probe_readable(p.as_ptr() as usize);
        if guards(who).contains(&i) {
            c.check(!readable, || format!("{who}: page {i} is no guard"));
        } else if !readable {
            c.check(false, || format!("{who}: page {i} is a guard it does not have"));
        } else if who == 'A' && i == 2 {
            c.check(p.iter().all(|&b| b == 0), || format!("{who}: page {i}, its guard removed, is not zero"));
        } else {
            c.check(zdtm::datachk(p, 0xc0f1 + i as u64).is_none(), || format!("{who}: page {i} holds the wrong data"));
        }
    }
    c
}

fn fork() -> i32 {
    // SAFETY: single-threaded; the child runs this program's code and
    // leaves with _exit.
    let p = unsafe { libc::fork() };
    if p < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    p
}

fn main() {
    zdtm::test_init();
    let page = zdtm::page_size();
    // SAFETY: a fresh anonymous mapping of our own.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), NP * page, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    if p == libc::MAP_FAILED {
        zdtm::fail("mmap");
    }
    // SAFETY: the mapping is ours, NP pages, for the whole run.
    let mem: &'static mut [u8] = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), NP * page) };
    for i in 0..NP {
        zdtm::datagen(&mut mem[i * page..(i + 1) * page], 0xc0f1 + i as u64);
    }
    if !advise(mem, 2, page, MADV_GUARD_INSTALL) {
        zdtm::skip(&format!("no guard regions here (MADV_GUARD_INSTALL: {})", zdtm::last_err()));
    }
    if !advise(mem, 5, page, MADV_GUARD_INSTALL) {
        zdtm::fail("MADV_GUARD_INSTALL on page 5");
    }
    let mut ready = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let mut kids = Vec::new();
    for who in ['A', 'B'] {
        let pid = fork();
        if pid == 0 {
            let ok = match who {
                'A' => advise(mem, 2, page, MADV_GUARD_REMOVE),
                _ => advise(mem, 6, page, MADV_GUARD_INSTALL),
            };
            // SAFETY: one byte to our pipe, then closing our ends.
            unsafe {
                libc::close(ready[0]);
                libc::write(ready[1], if ok { b"r" } else { b"e" }.as_ptr().cast(), 1);
                libc::close(ready[1]);
            }
            zdtm::test_waitsig();
            if zdtm::sabotaged() && who == 'A' {
                advise(mem, 2, page, MADV_GUARD_INSTALL);
            }
            let c = check(who, mem, page);
            // SAFETY: _exit leaves at once (the root reports).
            unsafe { libc::_exit(i32::from(c.failed())) }
        }
        kids.push(pid);
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready[1]) };
    for _ in 0..kids.len() {
        let mut b = [0u8; 1];
        // SAFETY: reading into our buffer.
        if unsafe { libc::read(ready[0], b.as_mut_ptr().cast(), 1) } != 1 || b[0] != b'r' {
            zdtm::fail("a child could not set its guards up");
        }
    }
    zdtm::wait_ready_closed(ready[0]);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c = check('R', mem, page);
    for (&k, who) in kids.iter().zip(['A', 'B']) {
        // SAFETY: kill takes only integer arguments and touches no memory of ours.
        unsafe { libc::kill(k, libc::SIGTERM) };
        let mut st = 0;
        // SAFETY: a valid out-pointer.
        let r = unsafe { libc::waitpid(k, &mut st, 0) };
        c.check(r == k && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, || format!("child {who} ({k}) failed its checks (see the log)"));
    }
    c.finish()
}
