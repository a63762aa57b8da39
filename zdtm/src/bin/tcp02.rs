//! tcp02 (--tcp-established): a connection in CLOSE_WAIT: the server
//! outside the dumped tree sent 1000 bytes and shut down its write side;
//! the test's writes fill the server's small receive buffer (it reads only
//! when told), so the test's send queue holds bytes too. After restore the
//! socket is in CLOSE_WAIT, the test reads exactly the server's 1000 bytes
//! and then end of file, writes 100 more bytes, and the server (told over
//! a unix datagram socket how many to expect) reads them all in order with
//! nothing after, and answers on a datagram socket of the test.

use zdtm::tcp;
use zdtm::unixsk as u;
use zdtm::Checks;

const TO_CLIENT: usize = 1000;

fn main() {
    zdtm::test_init();
    let o = tcp::outside_server(4096, |s, ctl, reply, ready| {
        tcp::fill_or_leave(s, 1, TO_CLIENT);
        tcp::shut_wr(s);
        ready();
        let Some(m) = u::recv_blocking(ctl) else {
            // SAFETY: leaving the server process.
            unsafe { libc::_exit(2) }
        };
        let n: usize = String::from_utf8_lossy(m.strip_prefix(b"go ").unwrap_or(b"")).parse().unwrap_or(0);
        let got = tcp::read_n(s, n);
        let verdict = match tcp::mismatch(&got, 2, 0) {
            _ if got.len() != n => format!("the server got {} bytes of {n}", got.len()),
            Some(at) => format!("byte {at} of {n} at the server is wrong"),
            None => "ok".into(),
        };
        u::send_to(ctl, verdict.as_bytes(), reply);
        std::thread::sleep(std::time::Duration::from_secs(2));
        // SAFETY: leaving the server process.
        unsafe { libc::_exit(0) }
    });
    let (c, ctl_name, verdict_name) = (o.fd, o.ctl, o.reply);
    let sent = tcp::fill(c, 2, 0, 256 << 10);
    if !tcp::wait_state(c, tcp::CLOSE_WAIT) {
        zdtm::fail(&format!("the connection is in TCP state {}, not CLOSE_WAIT", tcp::state(c)));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    zdtm::log_line(&format!("queued {sent} bytes, {} still in the send queue", tcp::outq(c)));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::read_some(c, 1);
    }

    let mut ck = Checks::new();
    ck.eq("TCP state after restore", tcp::state(c), tcp::CLOSE_WAIT);
    let got = tcp::read_n(c, TO_CLIENT);
    ck.eq("bytes from the server", got.len(), TO_CLIENT);
    ck.eq("first wrong byte from the server", tcp::mismatch(&got, 1, 0), None);
    ck.eq("end of file after the server's bytes", tcp::at_eof(c), true);
    let v = u::socket(libc::SOCK_DGRAM);
    u::bind(v, &verdict_name);
    let go = u::socket(libc::SOCK_DGRAM);
    u::send_to(go, format!("go {}", sent + 100).as_bytes(), &ctl_name);
    let more: Vec<u8> = (sent..sent + 100).map(|i| tcp::pattern(2, i)).collect();
    tcp::fill_bytes(c, &more);
    let answer = if u::wait_readable(v) || u::wait_readable(v) { u::recv(v).unwrap_or_default() } else { b"no answer".to_vec() };
    ck.eq("the server's verdict", String::from_utf8_lossy(&answer).to_string(), "ok".to_string());
    ck.finish()
}
