//! AF_PACKET addresses: binding a packet socket to an interface index
//! (sockaddr_ll) or, for the old SOCK_PACKET kind, to an interface name
//! (sockaddr_pkt); a packet socket's own address; an interface's name by
//! index (SIOCGIFNAME).

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::ret::{check_int, Res};

/// The old SOCK_PACKET type.
const SOCK_PACKET: i32 = 10;

/// bind(fd, sockaddr_ll { protocol (network order), ifindex }): protocol 0
/// keeps the socket's own.
pub fn bind_ll(fd: BorrowedFd<'_>, proto_be: u16, ifindex: i32) -> Res<()> {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = proto_be;
    a.sll_ifindex = ifindex;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the kernel reads `len` bytes of the address from `a`.
    check_int(unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_ll).cast(), len) }).map(drop)
}

/// bind(fd, sockaddr_pkt { name }): a SOCK_PACKET socket to interface `name`.
pub fn bind_spkt(fd: BorrowedFd<'_>, name: &str) -> Res<()> {
    // SAFETY: sockaddr is plain data; all zeroes is a valid value.
    let mut a: libc::sockaddr = unsafe { std::mem::zeroed() };
    a.sa_family = libc::AF_PACKET as u16;
    if name.len() >= a.sa_data.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    for (d, s) in a.sa_data.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr>() as libc::socklen_t;
    // SAFETY: the kernel reads `len` bytes of the address from `a`.
    check_int(unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr).cast(), len) }).map(drop)
}

/// A packet socket's own address: (interface index, protocol in network
/// order) of a sockaddr_ll, or, for a SOCK_PACKET socket (sockaddr_pkt),
/// the interface name as `Err` of the pair.
pub fn name(fd: BorrowedFd<'_>) -> Res<Result<(i32, u16), String>> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `ss` and the
    // address's length into `len`.
    check_int(unsafe { libc::getsockname(fd.as_raw_fd(), (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) })?;
    let (mut ty, mut tlen) = (0i32, 4 as libc::socklen_t);
    // SAFETY: the kernel writes one int into `ty`.
    check_int(unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TYPE, (&mut ty as *mut i32).cast(), &mut tlen) })?;
    if ty == SOCK_PACKET {
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr.
        let a: libc::sockaddr = unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
        let name: Vec<u8> = a.sa_data.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        return Ok(Err(String::from_utf8_lossy(&name).into_owned()));
    }
    // SAFETY: the length says the storage holds a sockaddr_ll.
    let a: libc::sockaddr_ll = unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
    Ok(Ok((a.sll_ifindex, a.sll_protocol)))
}

/// The name of interface `index` in the network namespace of socket `fd`.
pub fn if_name(fd: BorrowedFd<'_>, index: i32) -> Res<String> {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_ifru.ifru_ifindex = index;
    // SAFETY: SIOCGIFNAME reads the index from and writes the name into `req`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFNAME as _, &mut req) })?;
    let name: Vec<u8> = req.ifr_name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Ok(String::from_utf8_lossy(&name).into_owned())
}
