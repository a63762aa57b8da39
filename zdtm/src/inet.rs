//! inet socket helpers for the inet tests: sockets made with libc (so
//! options go on before bind), their addresses as std's, options as ints,
//! and loopback connections checked with timeouts.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::{fail, last_err};

/// socket(family, ty, proto), or the test fails.
pub fn socket(family: i32, ty: i32, proto: i32) -> RawFd {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(family, ty, proto) };
    if fd < 0 {
        fail(&format!("socket({family}, {ty}, {proto}): {}", last_err()));
    }
    fd
}

/// Whether IPv6 loopback works here (a socket binds to [::1]).
pub fn have_ipv6() -> bool {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: we own fd.
    let _own = unsafe { OwnedFd::from_raw_fd(fd) };
    try_bind(fd, &"[::1]:0".parse().unwrap_or_else(|_| fail("parse"))).is_ok()
}

/// A socket address as the kernel takes it (storage and length).
pub fn raw_addr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: plain data; zeroes are valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: v.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: the storage is large and aligned enough for any sockaddr.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: v.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v.ip().octets() },
                sin6_scope_id: v.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn try_bind(fd: RawFd, a: &SocketAddr) -> std::io::Result<()> {
    let (ss, len) = raw_addr(a);
    // SAFETY: the kernel reads `len` bytes from `ss`.
    if unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) } != 0 {
        return Err(last_err());
    }
    Ok(())
}

/// bind(fd, a), or the test fails.
pub fn bind(fd: RawFd, a: &str) {
    let addr: SocketAddr = a.parse().unwrap_or_else(|_| fail(&format!("bad address {a}")));
    if let Err(e) = try_bind(fd, &addr) {
        fail(&format!("bind to {a}: {e}"));
    }
}

/// listen(fd, backlog), or the test fails.
pub fn listen(fd: RawFd, backlog: i32) {
    // SAFETY: listen(2) takes no pointers.
    if unsafe { libc::listen(fd, backlog) } != 0 {
        fail(&format!("listen: {}", last_err()));
    }
}

/// connect(fd, a) (a non-blocking socket may answer EINPROGRESS).
pub fn connect(fd: RawFd, a: &SocketAddr) -> std::io::Result<()> {
    let (ss, len) = raw_addr(a);
    // SAFETY: the kernel reads `len` bytes from `ss`.
    if unsafe { libc::connect(fd, (&ss as *const libc::sockaddr_storage).cast(), len) } != 0 {
        let e = last_err();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(())
}

fn from_raw(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says a sockaddr_in is there.
            let s: libc::sockaddr_in = unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(s.sin_addr.s_addr.to_ne_bytes()), u16::from_be(s.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says a sockaddr_in6 is there.
            let s: libc::sockaddr_in6 = unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(s.sin6_addr.s6_addr), u16::from_be(s.sin6_port), 0, s.sin6_scope_id)))
        }
        _ => None,
    }
}

/// getsockname (or getpeername with `peer`): None when it fails or the
/// address is not inet.
pub fn name(fd: RawFd, peer: bool) -> Option<SocketAddr> {
    // SAFETY: plain data; zeroes are valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = (&mut ss as *mut libc::sockaddr_storage).cast();
    // SAFETY: the kernel writes at most `len` bytes into `ss`.
    let r = unsafe { if peer { libc::getpeername(fd, p, &mut len) } else { libc::getsockname(fd, p, &mut len) } };
    if r != 0 { None } else { from_raw(&ss) }
}

/// getsockopt of one int (None when it fails).
pub fn opt(fd: RawFd, level: i32, name: i32) -> Option<i32> {
    let mut v: i32 = 0;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: the kernel writes one int.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    (r == 0).then_some(v)
}

/// setsockopt of raw bytes, or the test fails.
pub fn set_bytes(fd: RawFd, level: i32, name: i32, v: &[u8], what: &str) {
    // SAFETY: the kernel reads `v.len()` bytes.
    if unsafe { libc::setsockopt(fd, level, name, v.as_ptr().cast(), v.len() as libc::socklen_t) } != 0 {
        fail(&format!("setsockopt({what}): {}", last_err()));
    }
}

/// setsockopt of one int, or the test fails.
pub fn set_opt(fd: RawFd, level: i32, name: i32, v: i32, what: &str) {
    set_bytes(fd, level, name, &v.to_ne_bytes(), what);
}

/// Wait up to `ms` for `events` on `fd`.
pub fn wait_for(fd: RawFd, events: i16, ms: i32) -> bool {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one pollfd of ours.
    unsafe { libc::poll(&mut p, 1, ms) == 1 }
}

/// Connect a new client to listener `l` (at `a`), accept it and pass a
/// byte each way: the listener works. Err says what did not.
pub fn listener_works(l: RawFd, a: &SocketAddr) -> Result<(), String> {
    let family = if a.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let c = socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    // SAFETY: we own c.
    let _c = unsafe { OwnedFd::from_raw_fd(c) };
    connect(c, a).map_err(|e| format!("connect to {a}: {e}"))?;
    if !wait_for(l, libc::POLLIN, 5000) {
        return Err(format!("no connection to accept on {a}"));
    }
    // SAFETY: accept4 with no address wanted.
    let s = unsafe { libc::accept4(l, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    if s < 0 {
        return Err(format!("accept on {a}: {}", last_err()));
    }
    // SAFETY: we own s.
    let _s = unsafe { OwnedFd::from_raw_fd(s) };
    // A v6 listener sees an IPv4 client at its v4-mapped address.
    let canon = |a: Option<SocketAddr>| a.map(|a| (a.ip().to_canonical(), a.port()));
    if canon(name(s, true)) != canon(name(c, false)) {
        return Err(format!("accepted {:?}, connected from {:?}", name(s, true), name(c, false)));
    }
    let mut b = [0u8; 1];
    // SAFETY: one byte from/to our buffers.
    let ok = unsafe { libc::send(c, b"p".as_ptr().cast(), 1, 0) == 1 && libc::recv(s, b.as_mut_ptr().cast(), 1, 0) == 1 };
    if !ok || &b != b"p" {
        return Err(format!("no byte through the connection accepted on {a}"));
    }
    Ok(())
}

/// A TCP connection to IPv4 listener `l`: (client, accepted server end).
pub fn tcp_pair(l: RawFd) -> (RawFd, RawFd) {
    let a = name(l, false).unwrap_or_else(|| crate::fail("listener address"));
    let c = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    if let Err(e) = connect(c, &a) {
        crate::fail(&format!("connect: {e}"));
    }
    // SAFETY: accept with no address wanted.
    let s = unsafe { libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut()) };
    if s < 0 {
        crate::fail(&format!("accept: {}", last_err()));
    }
    (c, s)
}

/// Whether `m` (at most 16 bytes) sent on `from` arrives whole on `to`
/// within 5 s.
pub fn through(from: RawFd, to: RawFd, m: &[u8]) -> bool {
    let mut b = [0u8; 16];
    // SAFETY: sending our buffer.
    let sent = unsafe { libc::send(from, m.as_ptr().cast(), m.len(), libc::MSG_NOSIGNAL) } == m.len() as isize;
    // SAFETY: receiving into our buffer.
    let got = sent && wait_for(to, libc::POLLIN, 5000) && unsafe { libc::recv(to, b.as_mut_ptr().cast(), b.len(), 0) } == m.len() as isize;
    got && b[..m.len()] == *m
}
