//! freebind00: sockets bound, through IP_FREEBIND, to addresses no
//! interface has (TEST-NET 192.0.2.1 for UDP and a TCP listener, and
//! 2001:db8::1 for IPv6 UDP). After the restore each is bound to the
//! same address and port with IP_FREEBIND still on, the listener still
//! listens; a socket without IP_FREEBIND still can't bind there.

use zdtm::inet::{self, name, opt};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let mut sks = Vec::new();
    for (family, ty, at, what) in [
        (libc::AF_INET, libc::SOCK_DGRAM, "192.0.2.1:0", "IPv4 UDP"),
        (libc::AF_INET, libc::SOCK_STREAM, "192.0.2.1:0", "IPv4 listener"),
        (libc::AF_INET6, libc::SOCK_DGRAM, "[2001:db8::1]:0", "IPv6 UDP"),
    ] {
        if family == libc::AF_INET6 && !inet::have_ipv6() {
            zdtm::test_msg!("no IPv6 here: IPv4 only");
            continue;
        }
        let s = inet::socket(family, ty, 0);
        inet::set_opt(s, libc::SOL_IP, libc::IP_FREEBIND, 1, "IP_FREEBIND");
        inet::bind(s, at);
        if ty == libc::SOCK_STREAM {
            inet::listen(s, 2);
        }
        sks.push((what, s, name(s, false)));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        inet::set_opt(sks[0].1, libc::SOL_IP, libc::IP_FREEBIND, 0, "IP_FREEBIND");
    }
    let mut c = Checks::new();
    for (what, s, addr) in &sks {
        c.eq(&format!("{what}: address"), name(*s, false), *addr);
        c.eq(&format!("{what}: IP_FREEBIND"), opt(*s, libc::SOL_IP, libc::IP_FREEBIND), Some(1));
    }
    c.eq("IPv4 listener: SO_ACCEPTCONN", opt(sks[1].1, libc::SOL_SOCKET, libc::SO_ACCEPTCONN), Some(1));
    let plain = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    let (ss, len) = inet::raw_addr(&"192.0.2.1:0".parse().unwrap_or_else(|_| zdtm::fail("address")));
    // SAFETY: the kernel reads `len` bytes of our address.
    let r = unsafe { libc::bind(plain, (&ss as *const libc::sockaddr_storage).cast(), len) };
    c.check(r != 0, || "192.0.2.1 can be bound without IP_FREEBIND: the test proves nothing here".into());
    c.finish()
}
