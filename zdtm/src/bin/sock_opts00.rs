//! sock_opts00 (suid: SO_MARK needs CAP_NET_ADMIN, SO_BINDTODEVICE
//! CAP_NET_RAW): socket options on a bound UDP socket (priority, mark,
//! receive low-water mark, send/receive timeouts, bound device lo,
//! dontroute, reuseport, broadcast, no_check, buffer sizes, IP_TOS,
//! IP_TTL, IP_PKTINFO, a classic BPF filter passing only datagrams that
//! start with 'k'), a TCP listener (keepalive and its TCP knobs,
//! TCP_NODELAY, SO_OOBINLINE, SO_LINGER, IP_TOS, SO_BUF_LOCK) and a created
//! TCP socket (TCP_CORK, IP_FREEBIND). After the restore every option reads
//! as before, the filter still drops what it dropped and the listener
//! accepts.

use zdtm::inet::{self, name, opt};
use zdtm::Checks;

fn bytes(fd: i32, level: i32, o: i32, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    let mut l = len as libc::socklen_t;
    // SAFETY: the kernel writes at most `l` bytes.
    if unsafe { libc::getsockopt(fd, level, o, b.as_mut_ptr().cast(), &mut l) } != 0 {
        return Vec::new();
    }
    b.truncate(l as usize);
    b
}

/// SO_GET_FILTER: the instructions, 8 bytes each.
fn filter(fd: i32) -> Vec<u8> {
    let mut b = vec![0u8; 8 * 16];
    let mut n: libc::socklen_t = 16;
    // SAFETY: room for 16 instructions; the kernel counts in instructions.
    if unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_GET_FILTER, b.as_mut_ptr().cast(), &mut n) } != 0 {
        return Vec::new();
    }
    b.truncate(n as usize * 8);
    b
}

fn attach(fd: i32, prog: &[libc::sock_filter]) {
    let f = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
    // SAFETY: the kernel reads the program `f` points to, alive for the call.
    let r = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, (&f as *const libc::sock_fprog).cast(), std::mem::size_of::<libc::sock_fprog>() as u32)
    };
    if r != 0 {
        zdtm::fail(&format!("SO_ATTACH_FILTER: {}", zdtm::last_err()));
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn timeval(secs: i64, usecs: i64) -> Vec<u8> {
    let mut v = secs.to_ne_bytes().to_vec();
    v.extend_from_slice(&usecs.to_ne_bytes());
    v
}

const U_OPTS: &[(i32, i32, &str)] = &[
    (libc::SOL_SOCKET, libc::SO_PRIORITY, "SO_PRIORITY"),
    (libc::SOL_SOCKET, libc::SO_MARK, "SO_MARK"),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT, "SO_RCVLOWAT"),
    (libc::SOL_SOCKET, libc::SO_DONTROUTE, "SO_DONTROUTE"),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT, "SO_REUSEPORT"),
    (libc::SOL_SOCKET, libc::SO_BROADCAST, "SO_BROADCAST"),
    (libc::SOL_SOCKET, libc::SO_NO_CHECK, "SO_NO_CHECK"),
    (libc::SOL_SOCKET, libc::SO_SNDBUF, "SO_SNDBUF"),
    (libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF"),
    (libc::SOL_SOCKET, libc::SO_BUF_LOCK, "SO_BUF_LOCK"),
    (libc::SOL_IP, libc::IP_TOS, "IP_TOS"),
    (libc::SOL_IP, libc::IP_TTL, "IP_TTL"),
    (libc::SOL_IP, libc::IP_PKTINFO, "IP_PKTINFO"),
];

const T_OPTS: &[(i32, i32, &str)] = &[
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE, "SO_KEEPALIVE"),
    (libc::SOL_TCP, libc::TCP_KEEPCNT, "TCP_KEEPCNT"),
    (libc::SOL_TCP, libc::TCP_KEEPIDLE, "TCP_KEEPIDLE"),
    (libc::SOL_TCP, libc::TCP_KEEPINTVL, "TCP_KEEPINTVL"),
    (libc::SOL_TCP, libc::TCP_NODELAY, "TCP_NODELAY"),
    (libc::SOL_TCP, libc::TCP_CORK, "TCP_CORK"),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE, "SO_OOBINLINE"),
    (libc::SOL_SOCKET, libc::SO_BUF_LOCK, "SO_BUF_LOCK"),
    (libc::SOL_SOCKET, libc::SO_SNDBUF, "SO_SNDBUF"),
    (libc::SOL_IP, libc::IP_TOS, "IP_TOS"),
    (libc::SOL_IP, libc::IP_FREEBIND, "IP_FREEBIND"),
];

fn snapshot(fd: i32, list: &[(i32, i32, &str)]) -> Vec<(String, Option<i32>)> {
    let mut v: Vec<_> = list.iter().map(|(l, o, w)| (w.to_string(), opt(fd, *l, *o))).collect();
    v.push(("SO_LINGER".into(), Some(i32::from_ne_bytes(bytes(fd, libc::SOL_SOCKET, libc::SO_LINGER, 8).get(4..8).and_then(|b| b.try_into().ok()).unwrap_or([9; 4])))));
    v
}

fn main() {
    zdtm::test_init();
    let u = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    for (l, o, v, w) in [
        (libc::SOL_SOCKET, libc::SO_PRIORITY, 3, "SO_PRIORITY"),
        (libc::SOL_SOCKET, libc::SO_MARK, 7, "SO_MARK"),
        (libc::SOL_SOCKET, libc::SO_RCVLOWAT, 3, "SO_RCVLOWAT"),
        (libc::SOL_SOCKET, libc::SO_DONTROUTE, 1, "SO_DONTROUTE"),
        (libc::SOL_SOCKET, libc::SO_REUSEPORT, 1, "SO_REUSEPORT"),
        (libc::SOL_SOCKET, libc::SO_BROADCAST, 1, "SO_BROADCAST"),
        (libc::SOL_SOCKET, libc::SO_NO_CHECK, 1, "SO_NO_CHECK"),
        (libc::SOL_SOCKET, libc::SO_SNDBUF, 65536, "SO_SNDBUF"),
        (libc::SOL_SOCKET, libc::SO_RCVBUF, 4096, "SO_RCVBUF"),
        (libc::SOL_IP, libc::IP_TOS, 0x20, "IP_TOS"),
        (libc::SOL_IP, libc::IP_TTL, 9, "IP_TTL"),
        (libc::SOL_IP, libc::IP_PKTINFO, 1, "IP_PKTINFO"),
    ] {
        inet::set_opt(u, l, o, v, w);
    }
    inet::set_bytes(u, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &timeval(2, 500_000), "SO_SNDTIMEO");
    inet::set_bytes(u, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeval(1, 250_000), "SO_RCVTIMEO");
    inet::set_bytes(u, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, b"lo", "SO_BINDTODEVICE");
    // ld byte [8] (the first payload byte after the UDP header); == 'k'? keep : drop.
    attach(u, &[insn(0x30, 0, 0, 8), insn(0x15, 0, 1, u32::from(b'k')), insn(0x06, 0, 0, 0xffff), insn(0x06, 0, 0, 0)]);
    inet::bind(u, "127.0.0.1:0");

    let t = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    for (l, o, v, w) in [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1, "SO_KEEPALIVE"),
        (libc::SOL_TCP, libc::TCP_KEEPCNT, 4, "TCP_KEEPCNT"),
        (libc::SOL_TCP, libc::TCP_KEEPIDLE, 77, "TCP_KEEPIDLE"),
        (libc::SOL_TCP, libc::TCP_KEEPINTVL, 11, "TCP_KEEPINTVL"),
        (libc::SOL_TCP, libc::TCP_NODELAY, 1, "TCP_NODELAY"),
        (libc::SOL_SOCKET, libc::SO_OOBINLINE, 1, "SO_OOBINLINE"),
        (libc::SOL_SOCKET, libc::SO_SNDBUF, 32768, "SO_SNDBUF"),
        (libc::SOL_SOCKET, libc::SO_BUF_LOCK, 1, "SO_BUF_LOCK"),
        (libc::SOL_IP, libc::IP_TOS, 0x10, "IP_TOS"),
    ] {
        inet::set_opt(t, l, o, v, w);
    }
    inet::set_bytes(t, libc::SOL_SOCKET, libc::SO_LINGER, &[1, 0, 0, 0, 0, 0, 0, 0], "SO_LINGER");
    inet::bind(t, "127.0.0.1:0");
    inet::listen(t, 4);
    let c = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    inet::set_opt(c, libc::SOL_TCP, libc::TCP_CORK, 1, "TCP_CORK");
    inet::set_opt(c, libc::SOL_IP, libc::IP_FREEBIND, 1, "IP_FREEBIND");

    let before = (snapshot(u, U_OPTS), snapshot(t, T_OPTS), snapshot(c, T_OPTS));
    let times = (bytes(u, libc::SOL_SOCKET, libc::SO_SNDTIMEO, 16), bytes(u, libc::SOL_SOCKET, libc::SO_RCVTIMEO, 16));
    let (dev, prog) = (bytes(u, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, 16), filter(u));
    let (ua, ta) = (name(u, false), name(t, false));

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        inet::set_opt(u, libc::SOL_SOCKET, libc::SO_PRIORITY, 1, "SO_PRIORITY");
        inet::set_opt(t, libc::SOL_TCP, libc::TCP_KEEPIDLE, 78, "TCP_KEEPIDLE");
        inet::set_opt(u, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, 0, "SO_DETACH_FILTER");
    }

    let mut ck = Checks::new();
    let after = (snapshot(u, U_OPTS), snapshot(t, T_OPTS), snapshot(c, T_OPTS));
    for (w, a, b) in [("UDP", &after.0, &before.0), ("listener", &after.1, &before.1), ("created TCP", &after.2, &before.2)] {
        for (x, y) in a.iter().zip(b.iter()) {
            ck.eq(&format!("{w}: {}", x.0), x.1, y.1);
        }
    }
    ck.eq("UDP: timeouts", (bytes(u, libc::SOL_SOCKET, libc::SO_SNDTIMEO, 16), bytes(u, libc::SOL_SOCKET, libc::SO_RCVTIMEO, 16)), times);
    ck.eq("UDP: SO_BINDTODEVICE", bytes(u, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, 16), dev);
    ck.eq("UDP: SO_GET_FILTER", filter(u), prog);
    ck.eq("addresses", (name(u, false), name(t, false)), (ua, ta));
    if let Some(a) = ua {
        let s = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let _ = inet::connect(s, &a);
        for m in [&b"drop"[..], b"keep"] {
            // SAFETY: sending our buffer.
            unsafe { libc::send(s, m.as_ptr().cast(), m.len(), 0) };
        }
        let mut b = [0u8; 16];
        let n = if inet::wait_for(u, libc::POLLIN, 5000) {
            // SAFETY: receiving into our buffer.
            unsafe { libc::recv(u, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) }
        } else {
            -1
        };
        ck.eq("the filter passes only 'k...'", b[..n.max(0) as usize].to_vec(), b"keep".to_vec());
    }
    if let Some(Err(e)) = ta.map(|a| inet::listener_works(t, &a)) {
        ck.check(false, || format!("listener: {e}"));
    }
    ck.finish()
}
