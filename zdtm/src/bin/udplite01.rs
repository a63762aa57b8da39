//! udplite01 (crfail): UDP-Lite sockets with a partial checksum coverage
//! (IPv4: UDPLITE_SEND_CSCOV 20; IPv6 where there is a loopback for it:
//! UDPLITE_RECV_CSCOV 12). The image has no place for the coverage, so
//! the dump must refuse them by name and leave the task running; after
//! it both coverages are as set and a datagram still flows.

use zdtm::inet::{self, name, opt};
use zdtm::Checks;

const SEND_CSCOV: i32 = 10;
const RECV_CSCOV: i32 = 11;

fn main() {
    zdtm::test_init();
    let mut sks = Vec::new();
    for (family, lo, cov, what) in [(libc::AF_INET, "127.0.0.1:0", SEND_CSCOV, "UDPLITE_SEND_CSCOV"), (libc::AF_INET6, "[::1]:0", RECV_CSCOV, "UDPLITE_RECV_CSCOV")] {
        if family == libc::AF_INET6 && !inet::have_ipv6() {
            zdtm::test_msg!("no IPv6 loopback here: IPv4 only");
            continue;
        }
        let s = inet::socket(family, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE);
        let v = if cov == SEND_CSCOV { 20 } else { 12 };
        inet::set_opt(s, libc::IPPROTO_UDPLITE, cov, v, what);
        inet::bind(s, lo);
        sks.push((s, cov, v, what));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        inet::set_opt(sks[0].0, libc::IPPROTO_UDPLITE, sks[0].1, 0, "coverage");
    }
    let mut c = Checks::new();
    for (s, cov, v, what) in &sks {
        c.eq(what, opt(*s, libc::IPPROTO_UDPLITE, *cov), Some(*v));
        let Some(to) = name(*s, false) else {
            c.check(false, || format!("{what}: no address"));
            continue;
        };
        let family = if to.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let tx = inet::socket(family, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE);
        let sent = inet::connect(tx, &to).is_ok()
            // SAFETY: sending our buffer.
            && unsafe { libc::send(tx, b"lite".as_ptr().cast(), 4, 0) } == 4;
        c.check(sent, || format!("{what}: send to {to}"));
        let mut b = [0u8; 16];
        let got = inet::wait_for(*s, libc::POLLIN, 5000)
            // SAFETY: receiving into our buffer.
            && unsafe { libc::recv(*s, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) } == 4;
        c.check(got && &b[..4] == b"lite", || format!("{what}: the datagram sent to {to}"));
    }
    c.finish()
}
