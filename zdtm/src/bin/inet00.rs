//! inet00: TCP sockets that are not connections, IPv4 and IPv6: listeners
//! on 127.0.0.1 (SO_REUSEADDR, SO_KEEPALIVE, SO_LINGER 5 s, backlog 5), on
//! [::1] (IPV6_V6ONLY) and on the IPv4-mapped [::ffff:127.0.0.1], a
//! socket only bound (IP_FREEBIND), a created one (O_NONBLOCK) and an
//! IPv6-only created one. After the restore each has its family, type,
//! protocol, address, listening state, flags and options; each listener
//! accepts a new loopback connection, the bound one listens and accepts,
//! the created one connects.

use std::net::SocketAddr;

use zdtm::inet::{self, listener_works, name, opt};
use zdtm::Checks;

struct Sk {
    what: &'static str,
    fd: i32,
    family: i32,
    listening: bool,
    addr: Option<SocketAddr>,
}

fn main() {
    zdtm::test_init();
    if !inet::have_ipv6() {
        zdtm::skip("no IPv6 loopback here ([::1] can't be bound)");
    }
    let l4 = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    inet::set_opt(l4, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1, "SO_REUSEADDR");
    inet::set_opt(l4, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1, "SO_KEEPALIVE");
    inet::set_bytes(l4, libc::SOL_SOCKET, libc::SO_LINGER, &[1, 0, 0, 0, 5, 0, 0, 0], "SO_LINGER");
    inet::bind(l4, "127.0.0.1:0");
    inet::listen(l4, 5);
    let l6 = inet::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
    inet::set_opt(l6, libc::SOL_IPV6, libc::IPV6_V6ONLY, 1, "IPV6_V6ONLY");
    inet::bind(l6, "[::1]:0");
    inet::listen(l6, 3);
    let mapped = inet::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
    inet::set_opt(mapped, libc::SOL_IPV6, libc::IPV6_V6ONLY, 0, "IPV6_V6ONLY");
    inet::bind(mapped, "[::ffff:127.0.0.1]:0");
    inet::listen(mapped, 2);
    let bound = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    inet::set_opt(bound, libc::SOL_IP, libc::IP_FREEBIND, 1, "IP_FREEBIND");
    inet::bind(bound, "127.0.0.1:0");
    let fresh = inet::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
    let fresh6 = inet::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
    inet::set_opt(fresh6, libc::SOL_IPV6, libc::IPV6_V6ONLY, 1, "IPV6_V6ONLY");
    let sks = [
        Sk { what: "IPv4 listener", fd: l4, family: libc::AF_INET, listening: true, addr: name(l4, false) },
        Sk { what: "IPv6 listener", fd: l6, family: libc::AF_INET6, listening: true, addr: name(l6, false) },
        Sk { what: "v4-mapped listener", fd: mapped, family: libc::AF_INET6, listening: true, addr: name(mapped, false) },
        Sk { what: "bound socket", fd: bound, family: libc::AF_INET, listening: false, addr: name(bound, false) },
        Sk { what: "created socket", fd: fresh, family: libc::AF_INET, listening: false, addr: name(fresh, false) },
        Sk { what: "created IPv6 socket", fd: fresh6, family: libc::AF_INET6, listening: false, addr: name(fresh6, false) },
    ];

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // Another listener takes the IPv4 one's place.
        let other = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        inet::bind(other, "127.0.0.1:0");
        inet::listen(other, 5);
        // SAFETY: dup2 over our own fd.
        unsafe { libc::dup2(other, l4) };
    }

    let mut c = Checks::new();
    for s in &sks {
        let w = s.what;
        c.eq(&format!("{w}: SO_DOMAIN"), opt(s.fd, libc::SOL_SOCKET, libc::SO_DOMAIN), Some(s.family));
        c.eq(&format!("{w}: SO_TYPE"), opt(s.fd, libc::SOL_SOCKET, libc::SO_TYPE), Some(libc::SOCK_STREAM));
        c.eq(&format!("{w}: SO_PROTOCOL"), opt(s.fd, libc::SOL_SOCKET, libc::SO_PROTOCOL), Some(libc::IPPROTO_TCP));
        c.eq(&format!("{w}: address"), name(s.fd, false), s.addr);
        c.eq(&format!("{w}: SO_ACCEPTCONN"), opt(s.fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN), Some(i32::from(s.listening)));
        c.eq(&format!("{w}: peer"), name(s.fd, true), None);
    }
    c.eq("IPv4 listener: SO_REUSEADDR", opt(l4, libc::SOL_SOCKET, libc::SO_REUSEADDR), Some(1));
    c.eq("IPv4 listener: SO_KEEPALIVE", opt(l4, libc::SOL_SOCKET, libc::SO_KEEPALIVE), Some(1));
    let mut lg = [0i32; 2];
    let mut len = 8 as libc::socklen_t;
    // SAFETY: the kernel writes a struct linger (two ints).
    unsafe { libc::getsockopt(l4, libc::SOL_SOCKET, libc::SO_LINGER, lg.as_mut_ptr().cast(), &mut len) };
    c.eq("IPv4 listener: SO_LINGER", lg, [1, 5]);
    for (fd, what) in [(l6, "IPv6 listener"), (mapped, "v4-mapped listener"), (fresh6, "created IPv6 socket"), (bound, "bound socket")] {
        c.eq(&format!("{what}: SO_REUSEADDR"), opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR), Some(0));
        c.eq(&format!("{what}: SO_REUSEPORT"), opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT), Some(0));
    }
    c.eq("IPv6 listener: IPV6_V6ONLY", opt(l6, libc::SOL_IPV6, libc::IPV6_V6ONLY), Some(1));
    c.eq("v4-mapped listener: IPV6_V6ONLY", opt(mapped, libc::SOL_IPV6, libc::IPV6_V6ONLY), Some(0));
    c.eq("created IPv6 socket: IPV6_V6ONLY", opt(fresh6, libc::SOL_IPV6, libc::IPV6_V6ONLY), Some(1));
    c.eq("bound socket: IP_FREEBIND", opt(bound, libc::SOL_IP, libc::IP_FREEBIND), Some(1));
    c.eq("IPv4 listener: IP_FREEBIND", opt(l4, libc::SOL_IP, libc::IP_FREEBIND), Some(0));
    // SAFETY: F_GETFL takes no pointer.
    let fl = unsafe { libc::fcntl(fresh, libc::F_GETFL) };
    c.check(fl & libc::O_NONBLOCK != 0, || format!("created socket lost O_NONBLOCK (flags {fl:#x})"));

    for s in sks.iter().filter(|s| s.listening) {
        if let Some(a) = s.addr {
            // The v4-mapped listener takes IPv4 clients.
            let to = if s.fd == mapped { SocketAddr::new("127.0.0.1".parse().unwrap_or_else(|_| zdtm::fail("addr")), a.port()) } else { a };
            if let Err(e) = listener_works(s.fd, &to) {
                c.check(false, || format!("{}: {e}", s.what));
            }
        }
    }
    if let Some(a) = sks[3].addr {
        inet::listen(bound, 1);
        if let Err(e) = listener_works(bound, &a) {
            c.check(false, || format!("bound socket, listening after: {e}"));
        }
    }
    if let Some(a) = sks[0].addr {
        let r = inet::connect(fresh, &a);
        c.check(r.is_ok() && inet::wait_for(fresh, libc::POLLOUT, 5000), || format!("created socket can't connect to {a}: {r:?}"));
        c.check(inet::wait_for(l4, libc::POLLIN, 5000), || "the IPv4 listener did not see the created socket connect".into());
    }
    c.finish()
}
