//! pstree00: a process tree. The root (a session leader, as every test)
//! has a zombie child that exited with 42, a child A leading its own
//! process group with a grandchild G in it, and a child B sharing a pipe
//! with the root (B holds the write end, the root the read end, data
//! already queued). The runner's SIGTERM goes to the root, which passes it
//! on (A to G); each task checks its own pid, parent, group and session and
//! says how it went in its exit code; the root also reads the pipe to its
//! end (B's data from before and after), and reaps the zombie and gets 42.
//! An anonymous shared mapping made before the forks is one object for
//! all: what G writes there after the restore, the root reads.

use zdtm::Checks;

fn fork() -> i32 {
    // SAFETY: we are single-threaded here; the child only runs this
    // program's own code and leaves with _exit.
    let p = unsafe { libc::fork() };
    if p < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    p
}

/// A child's verdict: its exit code (0: fine), with the reason in the log.
fn child_exit(errs: &[String]) -> ! {
    for e in errs {
        zdtm::test_msg!("child {}: {e}", std::process::id());
    }
    // SAFETY: _exit leaves at once (no verdict file, no atexit).
    unsafe { libc::_exit(if errs.is_empty() { 0 } else { 1 }) }
}

/// (pid, ppid, pgid, sid) of the calling process.
fn ids() -> (i32, i32, i32, i32) {
    // SAFETY: plain queries.
    unsafe { (libc::getpid(), libc::getppid(), libc::getpgrp(), libc::getsid(0)) }
}

fn check_ids(want: (i32, i32, i32, i32)) -> Vec<String> {
    let got = ids();
    if got == want { Vec::new() } else { vec![format!("(pid, ppid, pgid, sid) {got:?}, want {want:?}")] }
}

fn wait_status(pid: i32) -> Result<i32, String> {
    let mut st = 0;
    // SAFETY: a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    if r != pid { Err(format!("waitpid({pid}): {}", zdtm::last_err())) } else { Ok(st) }
}

fn say_ready(fd: i32) {
    // SAFETY: one byte from our stack to our pipe, then closing our copy.
    unsafe {
        libc::write(fd, b"r".as_ptr().cast(), 1);
        libc::close(fd);
    }
}

fn term(pid: i32) {
    // SAFETY: kill takes only integer arguments and touches no memory of ours.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

const BEFORE: &[u8] = b"written by B before the dump;";
const AFTER: &[u8] = b"and after the restore";

fn main() {
    zdtm::test_init();
    let root = std::process::id() as i32;
    let mut ready = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }

    // Shared by every task forked below: a pattern now, G's mark later.
    let page = zdtm::page_size();
    // SAFETY: a fresh anonymous shared mapping of our own.
    let shm = unsafe {
        libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
    };
    if shm == libc::MAP_FAILED {
        zdtm::fail("mmap");
    }
    // SAFETY: the mapping is ours and 2 pages long.
    let shm: &'static mut [u8] = unsafe { std::slice::from_raw_parts_mut(shm.cast::<u8>(), 2 * page) };
    zdtm::datagen(&mut shm[..page], 0x5eed);

    // The zombie: exits at once with 42; nobody reaps it until the end.
    let zombie = fork();
    if zombie == 0 {
        // SAFETY: _exit.
        unsafe { libc::_exit(42) };
    }

    // A: its own process group, with the grandchild G in it.
    let a = fork();
    if a == 0 {
        // SAFETY: close of our own pipe end (not used again here) and
        // setpgid take only integers.
        unsafe {
            libc::close(ready[0]);
            libc::setpgid(0, 0);
        }
        let me = std::process::id() as i32;
        let g = fork();
        if g == 0 {
            say_ready(ready[1]);
            zdtm::test_waitsig();
            let mut errs = check_ids((std::process::id() as i32, me, me, root));
            if zdtm::datachk(&shm[..page], 0x5eed).is_some() {
                errs.push("the shared pattern changed".into());
            }
            shm[page..page + 8].copy_from_slice(b"G-was-hr");
            child_exit(&errs);
        }
        say_ready(ready[1]);
        zdtm::test_waitsig();
        let mut errs = check_ids((me, root, me, root));
        term(g);
        match wait_status(g) {
            Ok(st) if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 => {}
            Ok(st) => errs.push(format!("grandchild {g} ended with status {st:#x}")),
            Err(e) => errs.push(e),
        }
        child_exit(&errs);
    }

    // B: the pipe's write end, data queued before the dump.
    let mut p = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    let b = fork();
    if b == 0 {
        // SAFETY: plain syscalls on our fds.
        unsafe {
            libc::close(ready[0]);
            libc::close(p[0]);
            libc::write(p[1], BEFORE.as_ptr().cast(), BEFORE.len());
        }
        say_ready(ready[1]);
        zdtm::test_waitsig();
        let errs = check_ids((std::process::id() as i32, root, root, root));
        // SAFETY: writing our buffer to our pipe.
        unsafe { libc::write(p[1], AFTER.as_ptr().cast(), AFTER.len()) };
        child_exit(&errs);
    }
    // SAFETY: closing our copies.
    unsafe {
        libc::close(p[1]);
        libc::close(ready[1]);
    }
    let mut got = [0u8; 3];
    // SAFETY: reading into our buffer (G, A and B say ready once each).
    let n = unsafe { libc::read(ready[0], got.as_mut_ptr().cast(), 3) };
    let mut total = n.max(0) as usize;
    while total < 3 {
        // SAFETY: `got[total..]` is a live buffer of 3 - total bytes the read
        // fills at most.
        let n = unsafe { libc::read(ready[0], got[total..].as_mut_ptr().cast(), 3 - total) };
        if n <= 0 {
            zdtm::fail("a child died before it was ready");
        }
        total += n as usize;
    }
    // SAFETY: closing our fd.
    unsafe { libc::close(ready[0]) };
    while !std::fs::read_to_string(format!("/proc/{zombie}/stat")).unwrap_or_default().contains(") Z ") {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    zdtm::test_msg!("zombie {zombie}, group leader {a}, pipe writer {b}");

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c = Checks::new();
    c.eq("root (pid, ppid, pgid, sid)", (ids().0, ids().2, ids().3), (root, root, root));
    term(a);
    term(b);
    match wait_status(b) {
        Ok(st) => c.check(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, || format!("child B ended with status {st:#x}")),
        Err(e) => c.check(false, || e),
    }
    if zdtm::sabotaged() {
        let mut x = [0u8; 1];
        // SAFETY: reading into our buffer.
        unsafe { libc::read(p[0], x.as_mut_ptr().cast(), 1) };
    }
    // B is gone and was the only writer: the pipe reads to its end.
    let mut data = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(p[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            c.check(n == 0, || format!("reading the pipe: {}", zdtm::last_err()));
            break;
        }
        data.extend_from_slice(&buf[..n as usize]);
    }
    c.eq("pipe data", String::from_utf8_lossy(&data).into_owned(), format!("{}{}", String::from_utf8_lossy(BEFORE), String::from_utf8_lossy(AFTER)));
    match wait_status(a) {
        Ok(st) => c.check(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, || format!("child A ended with status {st:#x}")),
        Err(e) => c.check(false, || e),
    }
    c.check(&shm[page..page + 8] == b"G-was-hr", || "the grandchild's mark is not in the shared memory".into());
    c.check(zdtm::datachk(&shm[..page], 0x5eed).is_none(), || "the shared pattern changed".into());
    match wait_status(zombie) {
        Ok(st) => c.check(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 42, || format!("the zombie's status is {st:#x}, want exit 42")),
        Err(e) => c.check(false, || e),
    }
    // Nobody else: every child was ours and is reaped.
    let mut st = 0;
    // SAFETY: a valid out-pointer.
    let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
    c.check(r == -1, || format!("an unexpected child: waitpid(-1) gave {r}"));
    c.finish()
}
