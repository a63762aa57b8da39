//! ping01 (ping): ICMP ping sockets connected the usual way, to port 0 of
//! the loopback address (IPv4 and IPv6): getpeername hides such a peer
//! (ENOTCONN), only the kernel's state and address say the socket is
//! connected. After the restore each keeps its ident and still sends
//! without an address (send(2), no EDESTADDRREQ), its echo reply carrying
//! the ident.

use std::net::SocketAddr;

use zdtm::inet::{self, name};
use zdtm::{ping, Checks};

fn main() {
    zdtm::test_init();
    let mut sks = Vec::new();
    for (family, to) in [(libc::AF_INET, "127.0.0.1:0"), (libc::AF_INET6, "[::1]:0")] {
        if family == libc::AF_INET6 && !inet::have_ipv6() {
            zdtm::test_msg!("no IPv6 loopback here: IPv4 only");
            continue;
        }
        let a: SocketAddr = to.parse().unwrap_or_else(|_| zdtm::fail("address"));
        let s = ping::socket(family);
        if let Err(e) = inet::connect(s, &a) {
            zdtm::fail(&format!("connect to {a}: {e}"));
        }
        if let Err(e) = ping::echo(s, None, b"before") {
            zdtm::fail(&format!("{to}: {e}"));
        }
        sks.push((to, s, ping::ident(s), name(s, false)));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // The first one is disconnected (AF_UNSPEC).
        let un = libc::sockaddr { sa_family: libc::AF_UNSPEC as u16, sa_data: [0; 14] };
        // SAFETY: connect with our address of its size.
        unsafe { libc::connect(sks[0].1, &un, std::mem::size_of::<libc::sockaddr>() as u32) };
    }

    let mut c = Checks::new();
    for (to, s, ident, addr) in &sks {
        c.eq(&format!("connected to {to}: address and ident"), name(*s, false), *addr);
        c.eq(&format!("connected to {to}: getpeername still hides the peer"), name(*s, true), None);
        match ping::echo(*s, None, b"after") {
            Ok(id) => c.eq(&format!("connected to {to}: the reply's identifier"), id, *ident),
            Err(e) => c.check(false, || format!("connected to {to}: {e}")),
        }
    }
    c.finish()
}
