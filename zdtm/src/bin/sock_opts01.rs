//! sock_opts01 (suid: SO_BINDTODEVICE needs CAP_NET_RAW): what sock_opts00
//! leaves out, on IPv6 and in the shutdown states: an IPv6 UDP socket
//! (IPV6_RECVPKTINFO, SO_REUSEADDR, bound device lo, a bigger SO_RCVBUF),
//! an IPv6-only listener with keepalive and its knobs, TCP_NODELAY and
//! SO_LINGER, a dual-stack UDP socket connected to an IPv4 one through its
//! IPv4-mapped address, and connected IPv4 UDP sockets shut for writing
//! and both ways. After the restore every option and address reads as
//! before; the pktinfo socket gets its ancillary data, the mapped pair
//! talks both ways, the listener accepts, the shut ones refuse to send
//! (EPIPE) and the both-ways one reads end of file.

use std::net::SocketAddr;

use zdtm::inet::{self, name, opt};
use zdtm::Checks;

const V6_OPTS: &[(i32, i32, &str)] = &[
    (libc::SOL_IPV6, libc::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO"),
    (libc::SOL_IPV6, libc::IPV6_V6ONLY, "IPV6_V6ONLY"),
    (libc::SOL_SOCKET, libc::SO_REUSEADDR, "SO_REUSEADDR"),
    (libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF"),
];

const L_OPTS: &[(i32, i32, &str)] = &[
    (libc::SOL_IPV6, libc::IPV6_V6ONLY, "IPV6_V6ONLY"),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE, "SO_KEEPALIVE"),
    (libc::SOL_TCP, libc::TCP_KEEPCNT, "TCP_KEEPCNT"),
    (libc::SOL_TCP, libc::TCP_KEEPIDLE, "TCP_KEEPIDLE"),
    (libc::SOL_TCP, libc::TCP_KEEPINTVL, "TCP_KEEPINTVL"),
    (libc::SOL_TCP, libc::TCP_NODELAY, "TCP_NODELAY"),
    (libc::SOL_SOCKET, libc::SO_REUSEADDR, "SO_REUSEADDR"),
];

fn snapshot(fd: i32, list: &[(i32, i32, &str)]) -> Vec<(String, Option<i32>)> {
    list.iter().map(|(l, o, w)| (w.to_string(), opt(fd, *l, *o))).collect()
}

fn dev(fd: i32) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    let mut l = 16 as libc::socklen_t;
    // SAFETY: the kernel writes at most `l` bytes.
    if unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, b.as_mut_ptr().cast(), &mut l) } != 0 {
        return Vec::new();
    }
    b.truncate(l as usize);
    b
}

fn linger(fd: i32) -> (i32, i32) {
    let mut v = [0i32; 2];
    let mut l = 8 as libc::socklen_t;
    // SAFETY: the kernel writes a struct linger (two ints).
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, v.as_mut_ptr().cast(), &mut l) };
    (v[0], v[1])
}

fn send(fd: i32, m: &[u8]) -> Result<(), i32> {
    // SAFETY: sending our buffer, without blocking.
    let n = unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n == m.len() as isize { Ok(()) } else { Err(zdtm::last_err().raw_os_error().unwrap_or(0)) }
}

fn recv(fd: i32) -> Vec<u8> {
    if !inet::wait_for(fd, libc::POLLIN, 5000) {
        return b"(nothing)".to_vec();
    }
    let mut b = vec![0u8; 256];
    // SAFETY: receiving into our buffer, without blocking.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    b.truncate(n.max(0) as usize);
    b
}

/// A datagram to `fd` from a new socket; whether an IPV6_PKTINFO
/// control message came with it.
fn pktinfo_comes(fd: i32, to: &SocketAddr) -> bool {
    let s = inet::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
    if inet::connect(s, to).is_err() || send(s, b"pkt").is_err() || !inet::wait_for(fd, libc::POLLIN, 5000) {
        return false;
    }
    let mut data = [0u8; 16];
    let mut ctl = [0u64; 16];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: plain data; zeroes are valid.
    let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = ctl.as_mut_ptr().cast();
    h.msg_controllen = std::mem::size_of_val(&ctl);
    // SAFETY: the header points at our buffers, alive for the call.
    if unsafe { libc::recvmsg(fd, &mut h, libc::MSG_DONTWAIT) } != 3 {
        return false;
    }
    // SAFETY: walking the control buffer the kernel filled, within msg_controllen.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&h) };
    while !c.is_null() {
        // SAFETY: c points at a header inside our buffer.
        let (level, ty) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
        if level == libc::SOL_IPV6 && ty == libc::IPV6_PKTINFO {
            return true;
        }
        // SAFETY: as above.
        c = unsafe { libc::CMSG_NXTHDR(&h, c) };
    }
    false
}

fn main() {
    zdtm::test_init();
    if !inet::have_ipv6() {
        zdtm::skip("no IPv6 loopback here ([::1] can't be bound)");
    }
    let u6 = inet::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
    inet::set_opt(u6, libc::SOL_IPV6, libc::IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
    inet::set_opt(u6, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1, "SO_REUSEADDR");
    inet::set_opt(u6, libc::SOL_SOCKET, libc::SO_RCVBUF, 40000, "SO_RCVBUF");
    inet::set_bytes(u6, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, b"lo", "SO_BINDTODEVICE");
    inet::bind(u6, "[::1]:0");

    let l6 = inet::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
    for (l, o, v, w) in [
        (libc::SOL_IPV6, libc::IPV6_V6ONLY, 1, "IPV6_V6ONLY"),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1, "SO_KEEPALIVE"),
        (libc::SOL_TCP, libc::TCP_KEEPCNT, 5, "TCP_KEEPCNT"),
        (libc::SOL_TCP, libc::TCP_KEEPIDLE, 91, "TCP_KEEPIDLE"),
        (libc::SOL_TCP, libc::TCP_KEEPINTVL, 13, "TCP_KEEPINTVL"),
        (libc::SOL_TCP, libc::TCP_NODELAY, 1, "TCP_NODELAY"),
        (libc::SOL_SOCKET, libc::SO_REUSEADDR, 1, "SO_REUSEADDR"),
    ] {
        inet::set_opt(l6, l, o, v, w);
    }
    inet::set_bytes(l6, libc::SOL_SOCKET, libc::SO_LINGER, &[1, 0, 0, 0, 3, 0, 0, 0], "SO_LINGER");
    inet::bind(l6, "[::1]:0");
    inet::listen(l6, 5);

    // A dual-stack socket and an IPv4 one, connected through ::ffff:127.0.0.1.
    let v4 = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    inet::bind(v4, "127.0.0.1:0");
    let dual = inet::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
    inet::set_opt(dual, libc::SOL_IPV6, libc::IPV6_V6ONLY, 0, "IPV6_V6ONLY");
    inet::bind(dual, "[::ffff:127.0.0.1]:0");
    let (v4a, duala) = (name(v4, false).unwrap_or_else(|| zdtm::fail("v4 address")), name(dual, false).unwrap_or_else(|| zdtm::fail("dual address")));
    let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{}", v4a.port()).parse().unwrap_or_else(|_| zdtm::fail("address"));
    let back: SocketAddr = format!("127.0.0.1:{}", duala.port()).parse().unwrap_or_else(|_| zdtm::fail("address"));
    for (fd, to) in [(dual, mapped), (v4, back)] {
        if let Err(e) = inet::connect(fd, &to) {
            zdtm::fail(&format!("connect to {to}: {e}"));
        }
    }

    // Connected IPv4 UDP sockets shut for writing and both ways.
    let mut shut = Vec::new();
    for how in [libc::SHUT_WR, libc::SHUT_RDWR] {
        let s = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if let Err(e) = inet::connect(s, &v4a) {
            zdtm::fail(&format!("connect to {v4a}: {e}"));
        }
        // SAFETY: shutdown of our socket.
        if unsafe { libc::shutdown(s, how) } != 0 {
            zdtm::fail(&format!("shutdown({how}): {}", zdtm::last_err()));
        }
        shut.push((how, s));
    }

    let all = [u6, l6, v4, dual, shut[0].1, shut[1].1];
    let names: Vec<_> = all.iter().map(|fd| (name(*fd, false), name(*fd, true))).collect();
    let before = (snapshot(u6, V6_OPTS), snapshot(l6, L_OPTS), linger(l6), dev(u6), opt(dual, libc::SOL_IPV6, libc::IPV6_V6ONLY));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        inet::set_opt(u6, libc::SOL_IPV6, libc::IPV6_RECVPKTINFO, 0, "IPV6_RECVPKTINFO");
        inet::set_opt(l6, libc::SOL_TCP, libc::TCP_KEEPCNT, 6, "TCP_KEEPCNT");
    }

    let mut c = Checks::new();
    let after = (snapshot(u6, V6_OPTS), snapshot(l6, L_OPTS), linger(l6), dev(u6), opt(dual, libc::SOL_IPV6, libc::IPV6_V6ONLY));
    for (w, a, b) in [("IPv6 UDP", &after.0, &before.0), ("IPv6 listener", &after.1, &before.1)] {
        for (x, y) in a.iter().zip(b.iter()) {
            c.eq(&format!("{w}: {}", x.0), x.1, y.1);
        }
    }
    c.eq("IPv6 listener: SO_LINGER", after.2, before.2);
    c.eq("IPv6 UDP: SO_BINDTODEVICE", &after.3, &before.3);
    c.eq("dual-stack: IPV6_V6ONLY", after.4, before.4);
    for (i, (fd, w)) in all.iter().zip(["IPv6 UDP", "IPv6 listener", "IPv4 UDP", "dual-stack UDP", "shut for writing", "shut both ways"]).enumerate() {
        c.eq(&format!("{w}: (address, peer)"), (name(*fd, false), name(*fd, true)), names[i]);
    }
    if let Some(a) = names[0].0 {
        c.check(pktinfo_comes(u6, &a), || "IPv6 UDP: no IPV6_PKTINFO with a datagram".into());
    }
    if let Some(Err(e)) = names[1].0.map(|a| inet::listener_works(l6, &a)) {
        c.check(false, || format!("IPv6 listener: {e}"));
    }
    c.check(send(dual, b"to v4").is_ok() && send(v4, b"to dual").is_ok(), || "the mapped pair can't send".into());
    c.eq("IPv4 receives from the dual-stack one", recv(v4), b"to v4".to_vec());
    c.eq("the dual-stack one receives from IPv4", recv(dual), b"to dual".to_vec());
    for (how, s) in &shut {
        c.eq(&format!("shut {how}: send"), send(*s, b"x"), Err(libc::EPIPE));
    }
    c.eq("shut both ways: reads end of file", recv(shut[1].1), Vec::new());
    c.finish()
}
