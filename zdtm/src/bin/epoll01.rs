//! epoll01 (crfail): an epoll set watching a pipe's read end under fd X,
//! which was then dup'ed to Y and closed, /dev/null taking number X. The
//! kernel keeps the watch keyed by (that pipe, X): our fdinfo says tfd X,
//! EPOLL_CTL_MOD on Y finds no watch, the pipe is reported when readable.
//! A restore adds watches by fd number, and X holds another file, so the
//! dump must refuse it (naming the epoll fd) and leave us running; CRIU
//! 4.2 re-keys the watch under Y instead.

use zdtm::Checks;

const WORD: u64 = 0x5eed;

fn wait(ep: i32) -> Vec<u64> {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
    // SAFETY: epoll_wait into our array, no waiting.
    let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), 4, 0) };
    evs[..n.max(0) as usize].iter().map(|e| e.u64).collect()
}

/// The fd numbers of the tfd lines of our epoll fd's fdinfo.
fn tfds(ep: i32) -> Vec<i32> {
    let s = std::fs::read_to_string(format!("/proc/self/fdinfo/{ep}")).unwrap_or_default();
    s.lines().filter_map(|l| l.strip_prefix("tfd:")).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

fn main() {
    zdtm::test_init();
    let mut p = [0; 2];
    let null = zdtm::cpath(std::path::Path::new("/dev/null"));
    // SAFETY: plain syscalls on our own fds and structs.
    let (ep, x, y, devnull) = unsafe {
        libc::pipe(p.as_mut_ptr());
        let ep = libc::epoll_create1(0);
        let x = libc::dup(p[0]);
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: WORD };
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, x, &mut ev);
        let y = libc::dup(x);
        libc::close(x);
        let devnull = libc::open(null.as_ptr(), libc::O_RDONLY);
        (ep, x, y, devnull)
    };
    if devnull != x || tfds(ep) != vec![x] {
        zdtm::fail(&format!("setup: /dev/null at {devnull}, not {x}; watches {:?}", tfds(ep)));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: WORD };
        // SAFETY: watching the pipe under Y too, as a re-keyed restore would.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, y, &mut ev) };
    }

    let mut c = Checks::new();
    c.eq("watched fd numbers", tfds(ep), vec![x]);
    c.eq("nothing ready", wait(ep), Vec::new());
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 1 };
    // SAFETY: plain syscall on our fds.
    let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_MOD, y, &mut ev) };
    c.eq("EPOLL_CTL_MOD on the dup", (r, zdtm::last_err().raw_os_error()), (-1, Some(libc::ENOENT)));
    // SAFETY: writing a byte into our pipe.
    unsafe { libc::write(p[1], b"x".as_ptr().cast(), 1) };
    c.eq("pipe ready", wait(ep), vec![WORD]);
    c.finish()
}
