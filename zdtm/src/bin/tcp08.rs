//! tcp08 (--tcp-established): the closing states whose FIN is not
//! acknowledged, made on loopback by a reader that does not read (its
//! window closed, our FIN waits behind our unsent bytes), both ends of
//! each connection in the test:
//! - FIN_WAIT1 (the client shut down its write side, its peer ESTABLISHED);
//! - CLOSING (both shut down: the server's FIN came to the client, whose
//!   own FIN waits; the server end in FIN_WAIT2);
//! - LAST_ACK (the server shut down first, then the client, whose FIN
//!   waits; the server end in FIN_WAIT2).
//!
//! After restore each end is in its state; each reader takes every byte
//! in order, then end of file, and the states move on to the end.

use zdtm::tcp;
use zdtm::Checks;

/// Fill `fd`'s peer's window and our send buffer (its size set: the
/// kernel tunes an unset one as acknowledgements come, at its own pace):
/// the count written.
fn jam(fd: i32, seed: u8) -> usize {
    let buf: libc::c_int = 1 << 20;
    // SAFETY: setsockopt on our socket with a local int.
    unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, (&buf as *const libc::c_int).cast(), 4) };
    let n = tcp::fill(fd, seed, 0, 8 << 20);
    std::thread::sleep(std::time::Duration::from_millis(100));
    n + tcp::fill(fd, seed, n, 8 << 20)
}

fn main() {
    zdtm::test_init();
    let (l, port) = tcp::listen(4096);
    let pair = || {
        let c = tcp::connect(port);
        (c, tcp::accept(l))
    };
    let ((c1, s1), (c2, s2), (c3, s3)) = (pair(), pair(), pair());
    // SAFETY: the listener is not needed any more.
    unsafe { libc::close(l) };
    let n1 = jam(c1, 1);
    tcp::shut_wr(c1);
    let n2 = jam(c2, 2);
    tcp::shut_wr(c2);
    tcp::shut_wr(s2);
    tcp::shut_wr(s3);
    if !tcp::wait_state(c3, tcp::CLOSE_WAIT) {
        zdtm::fail("the third connection's client is not in CLOSE_WAIT");
    }
    let n3 = jam(c3, 3);
    tcp::shut_wr(c3);
    let want = [(c1, tcp::FIN_WAIT1), (s1, tcp::ESTABLISHED), (c2, tcp::CLOSING), (s2, tcp::FIN_WAIT2), (c3, tcp::LAST_ACK), (s3, tcp::FIN_WAIT2)];
    for (fd, st) in want {
        if !tcp::wait_state(fd, st) {
            zdtm::fail(&format!("fd {fd} is in TCP state {}, not {st}", tcp::state(fd)));
        }
    }
    zdtm::log_line(&format!("jammed {n1}, {n2} and {n3} bytes"));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::read_some(s1, 1);
    }

    let mut ck = Checks::new();
    for (fd, st) in want {
        ck.eq(&format!("TCP state of fd {fd} after restore"), tcp::state(fd), st);
    }
    for (what, reader, seed, n) in [("FIN_WAIT1", s1, 1, n1), ("CLOSING", s2, 2, n2), ("LAST_ACK", s3, 3, n3)] {
        let got = tcp::read_n(reader, n);
        ck.eq(&format!("{what}: bytes its peer reads"), got.len(), n);
        ck.eq(&format!("{what}: first wrong byte"), tcp::mismatch(&got, seed, 0), None);
        ck.eq(&format!("{what}: end of file after them"), tcp::at_eof(reader), true);
    }
    ck.eq("CLOSING: end of file at the client", tcp::at_eof(c2), true);
    ck.eq("FIN_WAIT1: the server end sends on", tcp::fill(s1, 4, 0, 100), 100);
    let more = tcp::read_n(c1, 100);
    ck.eq("FIN_WAIT1: the client reads it", more.len() == 100 && tcp::mismatch(&more, 4, 0).is_none(), true);
    ck.finish()
}
