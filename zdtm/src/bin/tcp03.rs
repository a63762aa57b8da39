//! tcp03 (--tcp-established): a connection in FIN_WAIT2: the test wrote
//! 1000 bytes and shut down its write side, the server outside the dumped
//! tree took the FIN (unread, behind the bytes) and keeps sending: 1000
//! bytes wait to be read by the test. After restore the socket is in
//! FIN_WAIT2, the test reads the server's 1000 bytes, tells the server
//! (over a unix datagram socket) to go on, reads its 100 more bytes and
//! its end of file; the server checks it got the test's 1000 bytes in
//! order and then end of file, and answers on a datagram socket of the
//! test.

use zdtm::tcp;
use zdtm::unixsk as u;
use zdtm::Checks;

const TO_CLIENT: usize = 1000;
const TO_SERVER: usize = 1000;

fn main() {
    zdtm::test_init();
    let o = tcp::outside_server(4096, |s, ctl, reply, ready| {
        tcp::fill_or_leave(s, 1, TO_CLIENT);
        ready();
        if u::recv_blocking(ctl).is_none() {
            // SAFETY: leaving the server process.
            unsafe { libc::_exit(2) }
        }
        let more: Vec<u8> = (TO_CLIENT..TO_CLIENT + 100).map(|i| tcp::pattern(1, i)).collect();
        tcp::fill_bytes(s, &more);
        tcp::shut_wr(s);
        let got = tcp::read_n(s, TO_SERVER);
        let verdict = match tcp::mismatch(&got, 2, 0) {
            _ if got.len() != TO_SERVER => format!("the server got {} bytes of {TO_SERVER}", got.len()),
            Some(at) => format!("byte {at} at the server is wrong"),
            None if !tcp::at_eof(s) => "no end of file after the test's bytes".into(),
            None => "ok".into(),
        };
        u::send_to(ctl, verdict.as_bytes(), reply);
        std::thread::sleep(std::time::Duration::from_secs(2));
        // SAFETY: leaving the server process.
        unsafe { libc::_exit(0) }
    });
    let (c, ctl_name, verdict_name) = (o.fd, o.ctl, o.reply);
    if tcp::fill(c, 2, 0, TO_SERVER) != TO_SERVER {
        zdtm::fail("the test could not queue its bytes");
    }
    tcp::shut_wr(c);
    if !tcp::wait_state(c, tcp::FIN_WAIT2) {
        zdtm::fail(&format!("the connection is in TCP state {}, not FIN_WAIT2", tcp::state(c)));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::read_some(c, 1);
    }

    let mut ck = Checks::new();
    ck.eq("TCP state after restore", tcp::state(c), tcp::FIN_WAIT2);
    let got = tcp::read_n(c, TO_CLIENT);
    ck.eq("bytes from the server", got.len(), TO_CLIENT);
    ck.eq("first wrong byte from the server", tcp::mismatch(&got, 1, 0), None);
    let v = u::socket(libc::SOCK_DGRAM);
    u::bind(v, &verdict_name);
    let go = u::socket(libc::SOCK_DGRAM);
    u::send_to(go, b"go", &ctl_name);
    let more = tcp::read_n(c, 100);
    ck.eq("the server's bytes sent after restore", more.len() == 100 && tcp::mismatch(&more, 1, TO_CLIENT).is_none(), true);
    ck.eq("end of file after the server's bytes", tcp::at_eof(c), true);
    let answer = if u::wait_readable(v) || u::wait_readable(v) { u::recv(v).unwrap_or_default() } else { b"no answer".to_vec() };
    ck.eq("the server's verdict", String::from_utf8_lossy(&answer).to_string(), "ok".to_string());
    ck.finish()
}
