//! tcp01 (--tcp-established): both ends of a loopback TCP connection in
//! the test, with data queued both ways: 1000 bytes waiting to be read by
//! the client, and the client's writes filling the server's small receive
//! buffer until its own send queue holds bytes not yet taken. After
//! restore each end reads exactly what was sent to it, in order, and the
//! connection carries new bytes both ways.

use zdtm::tcp;
use zdtm::Checks;

const TO_CLIENT: usize = 1000;

fn main() {
    zdtm::test_init();
    let (l, port) = tcp::listen(4096);
    let c = tcp::connect(port);
    let s = tcp::accept(l);
    if tcp::fill(s, 1, 0, TO_CLIENT) != TO_CLIENT {
        zdtm::fail("the server could not queue its bytes");
    }
    let sent = tcp::fill(c, 2, 0, 256 << 10);
    // Let the window close and the queues settle.
    std::thread::sleep(std::time::Duration::from_millis(200));
    zdtm::log_line(&format!("client queued {sent} bytes, {} still in its send queue", tcp::outq(c)));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::read_some(c, 1);
    }

    let mut ck = Checks::new();
    let got = tcp::read_n(c, TO_CLIENT);
    ck.eq("bytes the client reads", got.len(), TO_CLIENT);
    ck.eq("first wrong byte at the client", tcp::mismatch(&got, 1, 0), None);
    let got = tcp::read_n(s, sent);
    ck.eq("bytes the server reads", got.len(), sent);
    ck.eq("first wrong byte at the server", tcp::mismatch(&got, 2, 0), None);
    ck.eq("client writes more", tcp::fill(c, 2, sent, 100), 100);
    let more = tcp::read_n(s, 100);
    ck.eq("server reads the new bytes", tcp::mismatch(&more, 2, sent).is_none() && more.len() == 100, true);
    ck.eq("server writes more", tcp::fill(s, 1, TO_CLIENT, 100), 100);
    let more = tcp::read_n(c, 100);
    ck.eq("client reads the new bytes", tcp::mismatch(&more, 1, TO_CLIENT).is_none() && more.len() == 100, true);
    ck.finish()
}
