//! fifo_loop00: a token goes round a ring of three FIFOs through three
//! tasks (this one and two children), each adding one as it passes it on.
//! Each task checks every token it reads is three more than the last it
//! saw. After each restore (also repeated: --iters) the token still goes
//! round, no task saw a wrong one, and none was lost.

use std::sync::atomic::Ordering;

use zdtm::Checks;

const TASKS: usize = 3;

/// One task's part of the ring: read from `rd`, check, add one, write to
/// `wr`, until `stop` is set. Records a wrong token in `bad`.
fn run(rd: i32, wr: i32, hops: &std::sync::atomic::AtomicU64, bad: &std::sync::atomic::AtomicU64, stop: &std::sync::atomic::AtomicU64) {
    let mut last: Option<u64> = None;
    while stop.load(Ordering::SeqCst) == 0 {
        let mut b = [0u8; 8];
        // SAFETY: reading into our buffer from our fd.
        let n = unsafe { libc::read(rd, b.as_mut_ptr().cast(), 8) };
        if n != 8 {
            continue;
        }
        let t = u64::from_ne_bytes(b);
        if t == u64::MAX {
            break; // the stop token
        }
        if last.is_some_and(|l| t != l + TASKS as u64) {
            bad.fetch_add(1, Ordering::SeqCst);
        }
        last = Some(t);
        hops.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(1));
        let out = (t + 1).to_ne_bytes();
        // SAFETY: writing our bytes to our fd.
        unsafe { libc::write(wr, out.as_ptr().cast(), 8) };
    }
}

fn main() {
    zdtm::test_init();
    let base = zdtm::dirname().to_path_buf();
    std::fs::create_dir_all(&base).unwrap_or_else(|e| zdtm::fail(&format!("mkdir: {e}")));
    let paths: Vec<_> = (0..TASKS).map(|k| base.join(format!("ring{k}"))).collect();
    for p in &paths {
        zdtm::mkfifo_or_fail(p, 0o600);
    }
    let (hops, bad, stop) = (zdtm::shared_counter(), zdtm::shared_counter(), zdtm::shared_counter());
    let mut kids = Vec::new();
    for k in 1..TASKS {
        // SAFETY: the child only runs its part of the ring and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let rd = zdtm::open_or_fail(&paths[k], libc::O_RDWR);
            let wr = zdtm::open_or_fail(&paths[(k + 1) % TASKS], libc::O_RDWR);
            run(rd, wr, hops, bad, stop);
            // SAFETY: leaving the child.
            unsafe { libc::_exit(0) };
        }
        kids.push(pid);
    }
    let rd = zdtm::open_or_fail(&paths[0], libc::O_RDWR);
    let wr = zdtm::open_or_fail(&paths[1], libc::O_RDWR);
    // The token: 0, into this task's ring slot; it runs its part in a thread.
    // SAFETY: writing our bytes to our fd.
    unsafe { libc::write(rd, 0u64.to_ne_bytes().as_ptr().cast(), 8) };
    let ring = std::thread::spawn(move || run(rd, wr, hops, bad, stop));
    std::thread::sleep(std::time::Duration::from_millis(50));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // A second token: every task sees a wrong one soon.
        // SAFETY: writing our bytes to our fd.
        unsafe { libc::write(rd, 1000u64.to_ne_bytes().as_ptr().cast(), 8) };
    }

    let mut ck = Checks::new();
    let h0 = hops.load(Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let h1 = hops.load(Ordering::SeqCst);
    ck.check(h1 >= h0 + 10, || format!("the token does not go round: {h0} then {h1} hops"));
    ck.eq("wrong tokens seen", bad.load(Ordering::SeqCst), 0);
    stop.store(1, Ordering::SeqCst);
    // Wake every reader so it sees the stop.
    for p in &paths {
        let fd = zdtm::open_or_fail(p, libc::O_RDWR);
        // SAFETY: writing our bytes to a fresh fd of ours.
        unsafe { libc::write(fd, u64::MAX.to_ne_bytes().as_ptr().cast(), 8) };
    }
    let _ = ring.join();
    for pid in kids {
        let mut ws = 0;
        // SAFETY: waiting for our child.
        unsafe { libc::waitpid(pid, &mut ws, 0) };
        ck.check(libc::WIFEXITED(ws) && libc::WEXITSTATUS(ws) == 0, || format!("child {pid}: wait status {ws:#x}"));
    }
    ck.finish()
}
