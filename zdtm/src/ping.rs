//! ICMP ping sockets for the ping tests: make one (the runner widens
//! net.ipv4.ping_group_range for tests flagged `ping`), and a round of
//! echo request and reply through it, the reply's identifier returned
//! (the kernel sets it to the socket's ident).

use std::net::SocketAddr;
use std::os::fd::RawFd;

use crate::inet;

/// A ping socket of `family` (IPPROTO_ICMP or IPPROTO_ICMPV6), or the test fails.
pub fn socket(family: i32) -> RawFd {
    let proto = if family == libc::AF_INET { libc::IPPROTO_ICMP } else { libc::IPPROTO_ICMPV6 };
    inet::socket(family, libc::SOCK_DGRAM, proto)
}

/// The socket's ident (the port getsockname shows; 0: none yet).
pub fn ident(fd: RawFd) -> u16 {
    inet::name(fd, false).map_or(0, |a| a.port())
}

/// An echo request with `payload` through `fd` (to `to`, or its peer),
/// then its reply: the reply's identifier, or what went wrong.
pub fn echo(fd: RawFd, to: Option<&SocketAddr>, payload: &[u8]) -> Result<u16, String> {
    let v6 = inet::opt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_INET6);
    let mut m = vec![if v6 { 128 } else { 8 }, 0, 0, 0, 0, 0, 0, 7];
    m.extend_from_slice(payload);
    let sent = match to {
        Some(a) => {
            let (ss, len) = inet::raw_addr(a);
            // SAFETY: our buffer and address, of their lengths.
            unsafe { libc::sendto(fd, m.as_ptr().cast(), m.len(), 0, (&ss as *const libc::sockaddr_storage).cast(), len) }
        }
        // SAFETY: our buffer.
        None => unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), 0) },
    };
    if sent != m.len() as isize {
        return Err(format!("sending an echo request: {}", crate::last_err()));
    }
    if !inet::wait_for(fd, libc::POLLIN, 5000) {
        return Err("no echo reply in 5 s".into());
    }
    let mut b = vec![0u8; 256];
    // SAFETY: receiving into our buffer, without blocking.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(format!("receiving the echo reply: {}", crate::last_err()));
    }
    b.truncate(n as usize);
    let want = if v6 { 129 } else { 0 };
    if b.len() < 8 || b[0] != want || &b[8..] != payload {
        return Err(format!("not our echo reply: {b:?}"));
    }
    Ok(u16::from_be_bytes([b[4], b[5]]))
}
