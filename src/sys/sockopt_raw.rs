//! Socket options as raw bytes and ints (any level and name, for the inet
//! socket kind's options nix does not wrap), a socket's protocol name
//! (the `system.sockprotoname` xattr of its /proc fd link) and classic BPF
//! socket filters (SO_GET_FILTER, SO_ATTACH_FILTER); socket(2) and
//! listen(2) with any protocol number and backlog; bind, connect and the
//! socket's own and peer's names with std's inet addresses; poll now;
//! getsockopt with an in-out buffer; the one-int socket ioctls (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD) and
//! recv/send with flags (TCP repair's queues).

use std::ffi::CString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use super::ret::{check_int, own_fd, Res};

/// socket(domain, ty | SOCK_CLOEXEC, proto).
pub fn socket(domain: i32, ty: i32, proto: i32) -> Res<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; its return is a new descriptor.
    own_fd(libc::c_long::from(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) }))
}

/// listen(fd, backlog).
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> Res<()> {
    // SAFETY: listen(2) takes no pointers.
    check_int(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// getsockopt(level, name) into a buffer of `max` bytes: the bytes the
/// kernel wrote.
pub fn get_bytes(fd: BorrowedFd<'_>, level: i32, name: i32, max: usize) -> Res<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let mut len = max as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf` and the
    // length it wrote into `len`.
    check_int(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &mut len) })?;
    buf.truncate((len as usize).min(max));
    Ok(buf)
}

/// getsockopt(level, name) with `buf` as input and output (options that
/// read what to answer about from the buffer, as MCAST_MSFILTER): the
/// bytes the kernel wrote back.
pub fn get_inout(fd: BorrowedFd<'_>, level: i32, name: i32, mut buf: Vec<u8>) -> Res<Vec<u8>> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel reads and writes at most `len` bytes of `buf` and
    // the length it wrote into `len`.
    check_int(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &mut len) })?;
    let n = (len as usize).min(buf.len());
    buf.truncate(n);
    Ok(buf)
}

/// getsockopt(level, name) of one int.
pub fn get_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> Res<i32> {
    let b = get_bytes(fd, level, name, 4)?;
    let a: [u8; 4] = b.as_slice().try_into().map_err(|_| Errno::EINVAL)?;
    Ok(i32::from_ne_bytes(a))
}

/// setsockopt(level, name, bytes).
pub fn set_bytes(fd: BorrowedFd<'_>, level: i32, name: i32, val: &[u8]) -> Res<()> {
    // SAFETY: the kernel reads `val.len()` bytes from `val`.
    check_int(unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, val.as_ptr().cast(), val.len() as libc::socklen_t) })
        .map(drop)
}

/// setsockopt(level, name) of one int.
pub fn set_int(fd: BorrowedFd<'_>, level: i32, name: i32, val: i32) -> Res<()> {
    set_bytes(fd, level, name, &val.to_ne_bytes())
}

/// The protocol name the kernel gives a socket ("TCP", "UDPv6", ...),
/// read through `path` (a /proc/PID/fd/N link).
pub fn proto_name(path: &str) -> Res<String> {
    let p = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let key = c"system.sockprotoname";
    let mut buf = [0u8; 64];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`; both
    // names are NUL-terminated.
    let n = unsafe { libc::getxattr(p.as_ptr(), key.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    let s = &buf[..n as usize];
    let s = s.split(|&b| b == 0).next().unwrap_or(&[]);
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// The classic BPF filter attached to a socket (SO_GET_FILTER), one
/// instruction each; empty when there is none.
pub fn get_filter(fd: BorrowedFd<'_>) -> Res<Vec<libc::sock_filter>> {
    let mut n: libc::socklen_t = 0;
    // SAFETY: with a zero length the kernel writes only the instruction
    // count into `n`.
    check_int(unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_GET_FILTER, std::ptr::null_mut(), &mut n) })?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut v = vec![libc::sock_filter { code: 0, jt: 0, jf: 0, k: 0 }; n as usize];
    let mut len = n;
    // SAFETY: `v` has room for `n` instructions; the kernel writes at most
    // that many (SO_GET_FILTER counts in instructions) and their number
    // into `len`.
    check_int(unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_GET_FILTER, v.as_mut_ptr().cast(), &mut len) })?;
    v.truncate(len as usize);
    Ok(v)
}

/// SO_ATTACH_FILTER: attach the classic BPF program `prog`.
pub fn attach_filter(fd: BorrowedFd<'_>, prog: &[libc::sock_filter]) -> Res<()> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
    // SAFETY: the kernel reads the sock_fprog and the `len` instructions
    // it points to, which `prog` holds for the call.
    check_int(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A socket address in the kernel's layout, and its length.
fn to_raw(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for any sockaddr.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v.port().to_be(),
                sin6_flowinfo: v.flowinfo(),
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

fn from_raw(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let s: libc::sockaddr_in6 = unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(s.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(s.sin6_port), s.sin6_flowinfo, s.sin6_scope_id)))
        }
        _ => None,
    }
}

/// bind(fd, a).
pub fn bind(fd: BorrowedFd<'_>, a: &SocketAddr) -> Res<()> {
    let (ss, len) = to_raw(a);
    // SAFETY: the kernel reads `len` bytes of the address from `ss`.
    check_int(unsafe { libc::bind(fd.as_raw_fd(), (&ss as *const libc::sockaddr_storage).cast(), len) }).map(drop)
}

/// connect(fd, a).
pub fn connect(fd: BorrowedFd<'_>, a: &SocketAddr) -> Res<()> {
    let (ss, len) = to_raw(a);
    // SAFETY: the kernel reads `len` bytes of the address from `ss`.
    check_int(unsafe { libc::connect(fd.as_raw_fd(), (&ss as *const libc::sockaddr_storage).cast(), len) }).map(drop)
}

/// getsockname (`peer` false) or getpeername (true): None for an address
/// outside inet/inet6.
pub fn name(fd: BorrowedFd<'_>, peer: bool) -> Res<Option<SocketAddr>> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = (&mut ss as *mut libc::sockaddr_storage).cast();
    // SAFETY: the kernel writes at most `len` bytes into `ss` and the
    // address's length into `len`.
    let r = unsafe { if peer { libc::getpeername(fd.as_raw_fd(), p, &mut len) } else { libc::getsockname(fd.as_raw_fd(), p, &mut len) } };
    check_int(r)?;
    Ok(from_raw(&ss))
}

/// The poll events of `fd` now, for `events`.
pub fn poll_now(fd: BorrowedFd<'_>, events: i16) -> Res<i16> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: one pollfd, ours; no waiting.
    check_int(unsafe { libc::poll(&mut p, 1, 0) })?;
    Ok(p.revents)
}

/// ioctl(fd, req, &int) for the socket ioctls that answer one int
/// (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD).
pub fn ioctl_int(fd: BorrowedFd<'_>, req: libc::c_ulong) -> Res<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these requests write one int into `v`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut v) })?;
    Ok(v)
}

/// recv(fd, buf, flags): the number of bytes received.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: i32) -> Res<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        return Err(Errno::last());
    }
    Ok(n as usize)
}

/// send(fd, buf, flags): the number of bytes sent.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8], flags: i32) -> Res<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        return Err(Errno::last());
    }
    Ok(n as usize)
}

/// sendto(fd, buf, 0, a): the number of bytes sent.
pub fn send_to(fd: BorrowedFd<'_>, buf: &[u8], a: &SocketAddr) -> Res<usize> {
    let (ss, len) = to_raw(a);
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf` and
    // `len` bytes of the address from `ss`.
    let n = unsafe { libc::sendto(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if n < 0 {
        return Err(Errno::last());
    }
    Ok(n as usize)
}
