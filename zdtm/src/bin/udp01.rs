//! udp01 (crfail): a UDP socket with two datagrams queued. The image has
//! no place for an inet socket's receive queue, so the dump must refuse
//! it by name and leave the task running; the datagrams are still there,
//! in order, after.

use zdtm::inet::{self, name};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let s = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    inet::bind(s, "127.0.0.1:0");
    let to = name(s, false).unwrap_or_else(|| zdtm::fail("no address"));
    let c = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    if let Err(e) = inet::connect(c, &to) {
        zdtm::fail(&format!("connect to {to}: {e}"));
    }
    for m in [&b"first"[..], b"second"] {
        // SAFETY: sending our buffer.
        if unsafe { libc::send(c, m.as_ptr().cast(), m.len(), 0) } != m.len() as isize {
            zdtm::fail(&format!("send: {}", zdtm::last_err()));
        }
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    let mut b = [0u8; 64];
    if zdtm::sabotaged() {
        // SAFETY: receiving into our buffer.
        unsafe { libc::recv(s, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    }
    let mut ck = Checks::new();
    for want in [&b"first"[..], b"second"] {
        // SAFETY: receiving into our buffer, without blocking.
        let n = unsafe { libc::recv(s, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
        ck.eq("queued datagram", b[..n.max(0) as usize].to_vec(), want.to_vec());
    }
    ck.finish()
}
