//! epoll00: an epoll set watching two pipe read ends with their own data
//! words: after restore it reports exactly the ready one, with its word.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let (mut p1, mut p2) = ([0; 2], [0; 2]);
    // SAFETY: plain syscalls on our own fds and structs.
    let ep = unsafe {
        libc::pipe(p1.as_mut_ptr());
        libc::pipe(p2.as_mut_ptr());
        let ep = libc::epoll_create1(0);
        for (fd, word) in [(p1[0], 0x1111u64), (p2[0], 0x2222)] {
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: word };
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev);
        }
        ep
    };
    zdtm::test_daemon();
    zdtm::test_waitsig();
    // SAFETY: writing one byte to our pipe; epoll_wait into our array.
    let (n, evs) = unsafe {
        let w = if zdtm::sabotaged() { p1[1] } else { p2[1] };
        libc::write(w, b"x".as_ptr().cast(), 1);
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let n = libc::epoll_wait(ep, evs.as_mut_ptr(), 4, 1000);
        (n, evs)
    };
    let mut c = Checks::new();
    c.eq("ready", n, 1);
    let (events, word) = (evs[0].events, evs[0].u64);
    c.eq("event", (events, word), (libc::EPOLLIN as u32, 0x2222));
    c.finish()
}
