//! dgram00 (ping): "UDP and ping sockets keep working": a UDP pair
//! connected to each other (IPv4, and IPv6 where there is a loopback for
//! it) and a ping socket bound to each loopback address exchange
//! datagrams before the dump (nothing left queued) and after the restore:
//! ten messages each way through the pair, in order, and echo requests
//! answered with the ping socket's own ident.

use std::net::SocketAddr;

use zdtm::inet::{self, name};
use zdtm::{ping, Checks};

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

/// Ten datagrams each way through the pair: what went wrong, if anything.
fn talk(a: i32, b: i32, tag: &str) -> Result<(), String> {
    for i in 0..10 {
        for (from, to, dir) in [(a, b, "a->b"), (b, a, "b->a")] {
            let m = format!("{tag} {dir} {i}");
            // SAFETY: sending our buffer.
            if unsafe { libc::send(from, m.as_ptr().cast(), m.len(), 0) } != m.len() as isize {
                return Err(format!("{dir} send {i}: {}", zdtm::last_err()));
            }
            let got = recv(to);
            if got != m.as_bytes() {
                return Err(format!("{dir} {i}: got {:?}, sent {m:?}", String::from_utf8_lossy(&got)));
            }
        }
    }
    Ok(())
}

/// An echo through ping socket `p` to `to`: its reply carries the ident.
fn pings(p: i32, to: &SocketAddr, tag: &[u8]) -> Result<(), String> {
    let id = ping::echo(p, Some(to), tag)?;
    let ident = ping::ident(p);
    if id != ident || ident == 0 {
        return Err(format!("echo reply for identifier {id}, the socket's ident is {ident}"));
    }
    Ok(())
}

fn main() {
    zdtm::test_init();
    let mut families = vec![(libc::AF_INET, "127.0.0.1:0")];
    if inet::have_ipv6() {
        families.push((libc::AF_INET6, "[::1]:0"));
    } else {
        zdtm::test_msg!("no IPv6 loopback here: IPv4 only");
    }
    let mut set = Vec::new();
    for (family, lo) in families {
        let (a, b) = (inet::socket(family, libc::SOCK_DGRAM, 0), inet::socket(family, libc::SOCK_DGRAM, 0));
        inet::bind(a, lo);
        inet::bind(b, lo);
        let (aa, ba) = (name(a, false).unwrap_or_else(|| zdtm::fail("a's address")), name(b, false).unwrap_or_else(|| zdtm::fail("b's address")));
        for (fd, to) in [(a, ba), (b, aa)] {
            if let Err(e) = inet::connect(fd, &to) {
                zdtm::fail(&format!("connect to {to}: {e}"));
            }
        }
        let p = ping::socket(family);
        inet::bind(p, lo);
        let to: SocketAddr = lo.parse().unwrap_or_else(|_| zdtm::fail("address"));
        let tag = if family == libc::AF_INET { "v4" } else { "v6" };
        if let Err(e) = talk(a, b, tag).and_then(|_| pings(p, &to, b"before")) {
            zdtm::fail(&format!("{tag} before the dump: {e}"));
        }
        set.push((tag, a, b, p, to));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // The first pair's b end is connected elsewhere.
        let _ = inet::connect(set[0].2, &set[0].4);
    }

    let mut c = Checks::new();
    for (tag, a, b, p, to) in &set {
        if let Err(e) = talk(*a, *b, tag) {
            c.check(false, || format!("{tag} UDP pair after: {e}"));
        }
        if let Err(e) = pings(*p, to, b"after") {
            c.check(false, || format!("{tag} ping after: {e}"));
        }
    }
    c.finish()
}
