//! sock_opts02 (crfail): a UDP socket with IP_MTU_DISCOVER set to
//! IP_PMTUDISC_DO (don't fragment) and an IPv6 one with IPV6_TCLASS 0x28:
//! inet_sk_entry has no place for either, so the dump must refuse the
//! first by name and leave the task running; both options are as set
//! after, and the sockets still receive.

use zdtm::inet::{self, name, opt};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let u = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    inet::set_opt(u, libc::SOL_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO, "IP_MTU_DISCOVER");
    inet::bind(u, "127.0.0.1:0");
    let mut sks = vec![(u, libc::SOL_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO, "IP_MTU_DISCOVER")];
    if inet::have_ipv6() {
        let u6 = inet::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
        inet::set_opt(u6, libc::SOL_IPV6, libc::IPV6_TCLASS, 0x28, "IPV6_TCLASS");
        inet::bind(u6, "[::1]:0");
        sks.push((u6, libc::SOL_IPV6, libc::IPV6_TCLASS, 0x28, "IPV6_TCLASS"));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        inet::set_opt(u, libc::SOL_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_WANT, "IP_MTU_DISCOVER");
    }
    let mut c = Checks::new();
    for (s, level, o, v, what) in &sks {
        c.eq(what, opt(*s, *level, *o), Some(*v));
        let Some(to) = name(*s, false) else {
            c.check(false, || format!("{what}: no address"));
            continue;
        };
        let tx = inet::socket(if to.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 }, libc::SOCK_DGRAM, 0);
        // SAFETY: sending our buffer.
        let sent = inet::connect(tx, &to).is_ok() && unsafe { libc::send(tx, b"opt".as_ptr().cast(), 3, 0) } == 3;
        let mut b = [0u8; 8];
        // SAFETY: receiving into our buffer.
        let got = sent && inet::wait_for(*s, libc::POLLIN, 5000) && unsafe { libc::recv(*s, b.as_mut_ptr().cast(), 8, libc::MSG_DONTWAIT) } == 3;
        c.check(got, || format!("{what}: a datagram to {to}"));
    }
    c.finish()
}
