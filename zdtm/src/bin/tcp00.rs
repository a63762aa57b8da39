//! tcp00 (--tcp-established): a loopback TCP connection to a server
//! outside the dumped tree, with data queued both ways: 1000 bytes from
//! the server waiting to be read, and the test's writes filling the
//! server's small receive buffer (the server does not read until told)
//! so that its own send queue holds bytes not taken yet. After restore the
//! test reads exactly the server's 1000 bytes, writes 100 more, and tells
//! the server (over a unix datagram socket) how many it sent in all; the
//! server reads them, checks count and order, and answers "ok" on the
//! connection.

use zdtm::tcp;
use zdtm::unixsk as u;
use zdtm::Checks;

const TO_CLIENT: usize = 1000;

/// The outside server on accepted connection `s`: waits for "go N", reads
/// N bytes of pattern 2, answers "ok" or what went wrong.
fn serve(s: i32, ctl: i32) -> ! {
    let Some(m) = u::recv_blocking(ctl) else {
        // SAFETY: leaving the server process.
        unsafe { libc::_exit(2) }
    };
    let n: usize = String::from_utf8_lossy(m.strip_prefix(b"go ").unwrap_or(b"")).parse().unwrap_or(0);
    let got = tcp::read_n(s, n);
    let verdict = match tcp::mismatch(&got, 2, 0) {
        _ if got.len() != n => format!("got {} bytes of {n}", got.len()),
        Some(at) => format!("byte {at} of {n} is wrong"),
        None => "ok".into(),
    };
    let v = format!("{verdict:<40}");
    tcp::fill_bytes(s, v.as_bytes());
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: leaving the server process.
    unsafe { libc::_exit(0) }
}

fn main() {
    zdtm::test_init();
    let o = tcp::outside_server(4096, |s, ctl, _reply, ready| {
        tcp::fill_or_leave(s, 1, TO_CLIENT);
        ready();
        serve(s, ctl);
    });
    let (c, ctl_name) = (o.fd, o.ctl);
    let sent = tcp::fill(c, 2, 0, 256 << 10);
    std::thread::sleep(std::time::Duration::from_millis(200));
    zdtm::log_line(&format!("queued {sent} bytes, {} still in the send queue", tcp::outq(c)));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::read_some(c, 1);
    }

    let mut ck = Checks::new();
    let got = tcp::read_n(c, TO_CLIENT);
    ck.eq("bytes from the server", got.len(), TO_CLIENT);
    ck.eq("first wrong byte from the server", tcp::mismatch(&got, 1, 0), None);
    ck.eq("bytes written after restore", tcp::fill(c, 2, sent, 100), 100);
    let go = u::socket(libc::SOCK_DGRAM);
    u::send_to(go, format!("go {}", sent + 100).as_bytes(), &ctl_name);
    let v = tcp::read_n(c, 40);
    ck.eq("the server's verdict", String::from_utf8_lossy(&v).trim_end().to_string(), "ok".to_string());
    ck.finish()
}
