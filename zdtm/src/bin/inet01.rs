//! inet01 (crfail): TCP connections inside the test: one established
//! (both ends held), one whose client shut its sending side (the server
//! end in CLOSE_WAIT, the client in FIN_WAIT2). Without
//! --tcp-established the dump must refuse them by name and leave the
//! task running: after it, each end is in its state and the established
//! connection still carries bytes both ways, the half-closed one from the
//! server to the client.

use zdtm::inet;
use zdtm::Checks;

fn state(fd: i32) -> u8 {
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes of struct tcp_info.
    unsafe { libc::getsockopt(fd, libc::SOL_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &mut len) };
    info[0]
}

fn main() {
    zdtm::test_init();
    let l = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    inet::bind(l, "127.0.0.1:0");
    inet::listen(l, 4);
    let (c1, s1) = inet::tcp_pair(l);
    let (c2, s2) = inet::tcp_pair(l);
    // SAFETY: shutdown of our socket.
    unsafe { libc::shutdown(c2, libc::SHUT_WR) };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let states = [state(c1), state(s1), state(c2), state(s2)];
    if states != [1, 1, 5, 8] {
        zdtm::fail(&format!("states before: {states:?}, want ESTABLISHED x2, FIN_WAIT2, CLOSE_WAIT"));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: shutdown of our socket.
        unsafe { libc::shutdown(s1, libc::SHUT_RDWR) };
    }
    let mut ck = Checks::new();
    ck.eq("states", [state(c1), state(s1), state(c2), state(s2)], states);
    ck.check(inet::through(c1, s1, b"c1->s1") && inet::through(s1, c1, b"s1->c1"), || "the established connection lost its way".into());
    ck.check(inet::through(s2, c2, b"s2->c2"), || "the half-closed connection can't carry bytes to the client".into());
    ck.finish()
}
