//! ping00 (ping: the runner widens net.ipv4.ping_group_range): ICMP ping
//! sockets, IPv4 and IPv6: one bound to the loopback address (its ident
//! picked by the kernel), one connected to port 7 of it (IP_TTL 33), one
//! only created. After the restore each has its family, type, protocol,
//! address and ident, peer and TTL; the bound one and the connected one
//! get echo replies carrying their idents, the created one has none yet
//! and still pings.

use std::net::SocketAddr;

use zdtm::inet::{self, name, opt};
use zdtm::{ping, Checks};

struct Sk {
    what: String,
    fd: i32,
    family: i32,
    to: SocketAddr,
}

fn main() {
    zdtm::test_init();
    let v6 = inet::have_ipv6();
    let mut sks = Vec::new();
    for (family, lo, port7) in [(libc::AF_INET, "127.0.0.1:0", "127.0.0.1:7"), (libc::AF_INET6, "[::1]:0", "[::1]:7")] {
        if family == libc::AF_INET6 && !v6 {
            zdtm::test_msg!("no IPv6 loopback here: IPv4 ping sockets only");
            continue;
        }
        let to: SocketAddr = lo.parse().unwrap_or_else(|_| zdtm::fail("address"));
        let seven: SocketAddr = port7.parse().unwrap_or_else(|_| zdtm::fail("address"));
        let v = if family == libc::AF_INET { "v4" } else { "v6" };
        let bound = ping::socket(family);
        inet::bind(bound, lo);
        let peer = ping::socket(family);
        if family == libc::AF_INET {
            inet::set_opt(peer, libc::SOL_IP, libc::IP_TTL, 33, "IP_TTL");
        }
        if let Err(e) = inet::connect(peer, &seven) {
            zdtm::fail(&format!("connect to {seven}: {e}"));
        }
        let fresh = ping::socket(family);
        for (w, fd) in [("bound", bound), ("connected", peer), ("created", fresh)] {
            sks.push(Sk { what: format!("{v} {w}"), fd, family, to });
        }
    }
    // Each pings once before (nothing left queued); the created one stays unbound.
    for s in sks.iter().filter(|s| !s.what.ends_with("created")) {
        let to = (!s.what.ends_with("connected")).then_some(&s.to);
        if let Err(e) = ping::echo(s.fd, to, b"before") {
            zdtm::fail(&format!("{}: {e}", s.what));
        }
    }
    let before: Vec<_> = sks.iter().map(|s| (name(s.fd, false), name(s.fd, true))).collect();

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // The bound one is another socket now, with another ident.
        let other = ping::socket(libc::AF_INET);
        // SAFETY: dup2 over our own fd.
        unsafe { libc::dup2(other, sks[0].fd) };
    }

    let mut c = Checks::new();
    for (i, s) in sks.iter().enumerate() {
        let w = &s.what;
        let proto = if s.family == libc::AF_INET { libc::IPPROTO_ICMP } else { libc::IPPROTO_ICMPV6 };
        c.eq(&format!("{w}: SO_DOMAIN"), opt(s.fd, libc::SOL_SOCKET, libc::SO_DOMAIN), Some(s.family));
        c.eq(&format!("{w}: SO_TYPE"), opt(s.fd, libc::SOL_SOCKET, libc::SO_TYPE), Some(libc::SOCK_DGRAM));
        c.eq(&format!("{w}: SO_PROTOCOL"), opt(s.fd, libc::SOL_SOCKET, libc::SO_PROTOCOL), Some(proto));
        c.eq(&format!("{w}: (address and ident, peer)"), (name(s.fd, false), name(s.fd, true)), before[i]);
        if w.ends_with("created") {
            c.eq(&format!("{w}: ident"), ping::ident(s.fd), 0);
        }
        let to = (!w.ends_with("connected")).then_some(&s.to);
        match ping::echo(s.fd, to, b"after") {
            Ok(id) => c.eq(&format!("{w}: the reply's identifier (the ident)"), id, ping::ident(s.fd)),
            Err(e) => c.check(false, || format!("{w}: {e}")),
        }
    }
    if let Some(p) = sks.iter().find(|s| s.what == "v4 connected") {
        c.eq("v4 connected: IP_TTL", opt(p.fd, libc::SOL_IP, libc::IP_TTL), Some(33));
    }
    c.finish()
}
