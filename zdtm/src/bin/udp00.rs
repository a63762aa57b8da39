//! udp00: UDP and UDP-Lite sockets, IPv4 and IPv6: one bound to
//! 127.0.0.1 (SO_BROADCAST, a 64 KiB receive buffer), a pair connected to
//! each other on [::1], a UDP-Lite one bound to 127.0.0.1 and a created
//! IPv6-only UDP-Lite one, one connected with its receive side shut
//! (SHUT_RD). After the restore each has its family, protocol, addresses
//! and options; the bound one receives a datagram, the pair still talks
//! both ways, the UDP-Lite one receives, the shut one still sends.

use std::net::SocketAddr;

use zdtm::inet::{self, name, opt};
use zdtm::Checks;

fn send(fd: i32, m: &[u8]) -> bool {
    // SAFETY: sending our buffer.
    unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), 0) == m.len() as isize }
}

fn recv(fd: i32) -> Vec<u8> {
    if !inet::wait_for(fd, libc::POLLIN, 5000) {
        return Vec::new();
    }
    let mut b = vec![0u8; 2048];
    // SAFETY: receiving into our buffer, without blocking.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    b.truncate(n.max(0) as usize);
    b
}

fn client_to(a: &SocketAddr, proto: i32) -> i32 {
    let family = if a.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let c = inet::socket(family, libc::SOCK_DGRAM, proto);
    if let Err(e) = inet::connect(c, a) {
        zdtm::fail(&format!("connect to {a}: {e}"));
    }
    c
}

fn main() {
    zdtm::test_init();
    if !inet::have_ipv6() {
        zdtm::skip("no IPv6 loopback here ([::1] can't be bound)");
    }
    let bound = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    inet::set_opt(bound, libc::SOL_SOCKET, libc::SO_BROADCAST, 1, "SO_BROADCAST");
    inet::set_opt(bound, libc::SOL_SOCKET, libc::SO_RCVBUF, 32768, "SO_RCVBUF");
    inet::bind(bound, "127.0.0.1:0");
    let a = inet::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
    let b = inet::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
    inet::bind(a, "[::1]:0");
    inet::bind(b, "[::1]:0");
    let (aa, ba) = (name(a, false).unwrap_or_else(|| zdtm::fail("a's address")), name(b, false).unwrap_or_else(|| zdtm::fail("b's address")));
    for (fd, to) in [(a, ba), (b, aa)] {
        if let Err(e) = inet::connect(fd, &to) {
            zdtm::fail(&format!("connect to {to}: {e}"));
        }
    }
    let lite = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE);
    inet::bind(lite, "127.0.0.1:0");
    let lite6 = inet::socket(libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE);
    inet::set_opt(lite6, libc::SOL_IPV6, libc::IPV6_V6ONLY, 1, "IPV6_V6ONLY");
    let shut = client_to(&name(bound, false).unwrap_or_else(|| zdtm::fail("bound's address")), 0);
    // SAFETY: shutdown of our socket.
    if unsafe { libc::shutdown(shut, libc::SHUT_RD) } != 0 {
        zdtm::fail(&format!("shutdown: {}", zdtm::last_err()));
    }
    let sks = [
        ("bound", bound, libc::AF_INET, libc::IPPROTO_UDP),
        ("pair a", a, libc::AF_INET6, libc::IPPROTO_UDP),
        ("pair b", b, libc::AF_INET6, libc::IPPROTO_UDP),
        ("UDP-Lite", lite, libc::AF_INET, libc::IPPROTO_UDPLITE),
        ("UDP-Lite v6", lite6, libc::AF_INET6, libc::IPPROTO_UDPLITE),
        ("shut", shut, libc::AF_INET, libc::IPPROTO_UDP),
    ];
    let before: Vec<_> = sks.iter().map(|s| (name(s.1, false), name(s.1, true))).collect();
    let rcvbuf = opt(bound, libc::SOL_SOCKET, libc::SO_RCVBUF);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // The pair's a end is connected elsewhere.
        let _ = inet::connect(a, &"[::1]:9".parse().unwrap_or_else(|_| zdtm::fail("address")));
    }

    let mut c = Checks::new();
    for (i, (w, fd, family, proto)) in sks.iter().enumerate() {
        c.eq(&format!("{w}: SO_DOMAIN"), opt(*fd, libc::SOL_SOCKET, libc::SO_DOMAIN), Some(*family));
        c.eq(&format!("{w}: SO_TYPE"), opt(*fd, libc::SOL_SOCKET, libc::SO_TYPE), Some(libc::SOCK_DGRAM));
        c.eq(&format!("{w}: SO_PROTOCOL"), opt(*fd, libc::SOL_SOCKET, libc::SO_PROTOCOL), Some(*proto));
        c.eq(&format!("{w}: (address, peer)"), (name(*fd, false), name(*fd, true)), before[i]);
    }
    c.eq("bound: SO_BROADCAST", opt(bound, libc::SOL_SOCKET, libc::SO_BROADCAST), Some(1));
    c.eq("bound: SO_RCVBUF", opt(bound, libc::SOL_SOCKET, libc::SO_RCVBUF), rcvbuf);
    c.eq("UDP-Lite v6: IPV6_V6ONLY", opt(lite6, libc::SOL_IPV6, libc::IPV6_V6ONLY), Some(1));

    if let Some(to) = before[0].0 {
        let s = client_to(&to, 0);
        c.check(send(s, b"to bound"), || "send to the bound socket".into());
        c.eq("bound receives", recv(bound), b"to bound".to_vec());
    }
    c.check(send(a, b"a to b") && send(b, b"b to a"), || "the pair can't send".into());
    c.eq("pair: b receives", recv(b), b"a to b".to_vec());
    c.eq("pair: a receives", recv(a), b"b to a".to_vec());
    if let Some(to) = before[3].0 {
        let s = client_to(&to, libc::IPPROTO_UDPLITE);
        c.check(send(s, b"lite"), || "send to the UDP-Lite socket".into());
        c.eq("UDP-Lite receives", recv(lite), b"lite".to_vec());
    }
    c.check(send(shut, b"from shut"), || "the shut socket can't send".into());
    c.eq("bound receives from the shut one", recv(bound), b"from shut".to_vec());
    c.finish()
}
