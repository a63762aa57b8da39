//! tcp04 (--tcp-established): both ends of a half-closed loopback
//! connection in the test: the client wrote 1000 bytes and shut down its
//! write side (FIN_WAIT2), the server end (CLOSE_WAIT) has them unread and
//! sent 1000 bytes the client has not read. After restore each end is in
//! its state, the server reads the client's bytes and end of file, the
//! client reads the server's bytes, the server sends 100 more and shuts
//! down: the client reads them and end of file.

use zdtm::tcp;
use zdtm::Checks;

const TO_CLIENT: usize = 1000;
const TO_SERVER: usize = 1000;

fn main() {
    zdtm::test_init();
    let (l, port) = tcp::listen(4096);
    let c = tcp::connect(port);
    let s = tcp::accept(l);
    // SAFETY: the listener is not needed any more.
    unsafe { libc::close(l) };
    if tcp::fill(s, 1, 0, TO_CLIENT) != TO_CLIENT || tcp::fill(c, 2, 0, TO_SERVER) != TO_SERVER {
        zdtm::fail("the ends could not queue their bytes");
    }
    tcp::shut_wr(c);
    if !tcp::wait_state(c, tcp::FIN_WAIT2) || !tcp::wait_state(s, tcp::CLOSE_WAIT) {
        zdtm::fail(&format!("the ends are in TCP states {} and {}, not FIN_WAIT2 and CLOSE_WAIT", tcp::state(c), tcp::state(s)));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::read_some(s, 1);
    }

    let mut ck = Checks::new();
    ck.eq("the client's TCP state after restore", tcp::state(c), tcp::FIN_WAIT2);
    ck.eq("the server end's TCP state after restore", tcp::state(s), tcp::CLOSE_WAIT);
    let got = tcp::read_n(s, TO_SERVER);
    ck.eq("bytes the server reads", got.len(), TO_SERVER);
    ck.eq("first wrong byte at the server", tcp::mismatch(&got, 2, 0), None);
    ck.eq("end of file at the server", tcp::at_eof(s), true);
    let got = tcp::read_n(c, TO_CLIENT);
    ck.eq("bytes the client reads", got.len(), TO_CLIENT);
    ck.eq("first wrong byte at the client", tcp::mismatch(&got, 1, 0), None);
    ck.eq("server writes more", tcp::fill(s, 1, TO_CLIENT, 100), 100);
    tcp::shut_wr(s);
    let more = tcp::read_n(c, 100);
    ck.eq("the client reads the new bytes", more.len() == 100 && tcp::mismatch(&more, 1, TO_CLIENT).is_none(), true);
    ck.eq("end of file at the client", tcp::at_eof(c), true);
    ck.finish()
}
