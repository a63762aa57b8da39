//! Packet sockets for the packet tests: make and bind them on lo, their
//! SOL_PACKET options, memberships, rings, a classic filter that lets only
//! this test's frames in (its pid in the frame), and frames sent and
//! received on lo (`packet_ring`: their mapped rings). Each test uses its own ethertype (0x88b5 and up: IEEE
//! local experimental), so tests never see each other's frames.

use std::os::fd::RawFd;

pub const PACKET_ADD_MEMBERSHIP: i32 = 1;
pub const PACKET_RX_RING: i32 = 5;
pub const PACKET_COPY_THRESH: i32 = 7;
pub const PACKET_AUXDATA: i32 = 8;
pub const PACKET_ORIGDEV: i32 = 9;
pub const PACKET_VERSION: i32 = 10;
pub const PACKET_RESERVE: i32 = 12;
pub const PACKET_TX_RING: i32 = 13;
pub const PACKET_LOSS: i32 = 14;
pub const PACKET_VNET_HDR: i32 = 15;
pub const PACKET_TIMESTAMP: i32 = 17;
pub const PACKET_FANOUT: i32 = 18;
/// The old SOCK_PACKET type.
pub const SOCK_PACKET: i32 = 10;

/// lo's interface index.
pub fn lo() -> i32 {
    let name = c"lo";
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        crate::fail(&format!("no lo: {}", crate::last_err()));
    }
    i as i32
}

/// A packet socket of `ty` for ethertype `proto` (fails the test otherwise).
pub fn socket(ty: i32, proto: u16) -> RawFd {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_PACKET, ty, i32::from(proto.to_be())) };
    if fd < 0 {
        crate::fail(&format!("packet socket of type {ty}: {}", crate::last_err()));
    }
    fd
}

/// A packet socket of `ty` for `proto` bound to lo.
pub fn bound(ty: i32, proto: u16) -> RawFd {
    let fd = socket(ty, proto);
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_ifindex = lo();
    // SAFETY: the kernel reads the sockaddr_ll.
    if unsafe { libc::bind(fd, (&a as *const libc::sockaddr_ll).cast(), std::mem::size_of_val(&a) as u32) } != 0 {
        crate::fail(&format!("binding a packet socket to lo: {}", crate::last_err()));
    }
    fd
}

/// A SOCK_PACKET socket for `proto` bound to lo (by name).
pub fn spkt_bound(proto: u16) -> RawFd {
    let fd = socket(SOCK_PACKET, proto);
    let a = spkt_addr();
    // SAFETY: the kernel reads the sockaddr.
    if unsafe { libc::bind(fd, (&a as *const libc::sockaddr).cast(), std::mem::size_of_val(&a) as u32) } != 0 {
        crate::fail(&format!("binding a SOCK_PACKET socket to lo: {}", crate::last_err()));
    }
    fd
}

/// sockaddr_pkt { AF_PACKET, "lo" } as a sockaddr (its protocol left out:
/// lo takes a frame's ethertype from the frame).
fn spkt_addr() -> libc::sockaddr {
    // SAFETY: an all-zero sockaddr is valid.
    let mut a: libc::sockaddr = unsafe { std::mem::zeroed() };
    a.sa_family = libc::AF_PACKET as u16;
    a.sa_data[0] = b'l' as libc::c_char;
    a.sa_data[1] = b'o' as libc::c_char;
    a
}

/// getsockname: (interface index, ethertype) of a sockaddr_ll, or the
/// device name of a SOCK_PACKET socket's sockaddr_pkt as `Err`.
pub fn name(fd: RawFd) -> Result<(i32, u16), String> {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&ss) as u32;
    // SAFETY: the kernel writes at most `len` bytes.
    if unsafe { libc::getsockname(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) } != 0 {
        return Err(format!("getsockname: {}", crate::last_err()));
    }
    if so_type(fd) == SOCK_PACKET {
        // SAFETY: the storage holds a sockaddr (pkt).
        let a: libc::sockaddr = unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
        return Err(a.sa_data.iter().take(14).take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect());
    }
    // SAFETY: the length says it is a sockaddr_ll.
    let a: libc::sockaddr_ll = unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
    Ok((a.sll_ifindex, u16::from_be(a.sll_protocol)))
}

/// The socket's SO_TYPE.
pub fn so_type(fd: RawFd) -> i32 {
    let (mut ty, mut len) = (0i32, 4u32);
    // SAFETY: the kernel writes one int.
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&mut ty as *mut i32).cast(), &mut len) };
    ty
}

/// setsockopt(SOL_PACKET, name, v) (fails the test otherwise).
pub fn set(fd: RawFd, name: i32, v: i32) {
    // SAFETY: the kernel reads one int.
    if unsafe { libc::setsockopt(fd, libc::SOL_PACKET, name, (&v as *const i32).cast(), 4) } != 0 {
        crate::fail(&format!("SOL_PACKET option {name} = {v}: {}", crate::last_err()));
    }
}

/// getsockopt(SOL_PACKET, name) as an int (-errno on failure).
pub fn get(fd: RawFd, name: i32) -> i32 {
    let (mut v, mut len) = (0i32, 4u32);
    // SAFETY: the kernel writes at most one int.
    if unsafe { libc::getsockopt(fd, libc::SOL_PACKET, name, (&mut v as *mut i32).cast(), &mut len) } != 0 {
        return -crate::last_err().raw_os_error().unwrap_or(1);
    }
    v
}

/// PACKET_ADD_MEMBERSHIP of `ty` (0 multicast, 1 promisc) on lo.
pub fn add_membership(fd: RawFd, ty: u16, addr: &[u8]) {
    let mut m = libc::packet_mreq { mr_ifindex: lo(), mr_type: ty, mr_alen: addr.len() as u16, mr_address: [0; 8] };
    m.mr_address[..addr.len()].copy_from_slice(addr);
    // SAFETY: the kernel reads the packet_mreq.
    if unsafe { libc::setsockopt(fd, libc::SOL_PACKET, PACKET_ADD_MEMBERSHIP, (&m as *const libc::packet_mreq).cast(), std::mem::size_of_val(&m) as u32) } != 0 {
        crate::fail(&format!("PACKET_ADD_MEMBERSHIP: {}", crate::last_err()));
    }
}

/// PACKET_RX_RING / PACKET_TX_RING with a tpacket_req3 (v3's fields
/// after the first four are zero for v1/v2).
pub fn set_ring(fd: RawFd, name: i32, block: u32, blocks: u32, frame: u32, tmo: u32) {
    let req: [u32; 7] = [block, blocks, frame, block / frame * blocks, tmo, 0, 0];
    // SAFETY: the kernel reads the request.
    if unsafe { libc::setsockopt(fd, libc::SOL_PACKET, name, req.as_ptr().cast(), 28) } != 0 {
        crate::fail(&format!("ring option {name}: {}", crate::last_err()));
    }
}

/// A classic filter that lets in only frames whose 4 bytes at `off`
/// (from the frame's start for raw sockets, the payload's for datagram
/// ones) are `word` (big-endian): `ld [off]; jeq word; ret all; ret 0`.
pub fn filter_prog(off: u32, word: u32) -> Vec<libc::sock_filter> {
    vec![
        libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: off },
        libc::sock_filter { code: 0x15, jt: 0, jf: 1, k: word },
        libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0xffff },
        libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 },
    ]
}

/// SO_ATTACH_FILTER with `prog`.
pub fn attach(fd: RawFd, prog: &[libc::sock_filter]) {
    let f = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
    // SAFETY: the kernel reads the program `f` points to.
    if unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, (&f as *const libc::sock_fprog).cast(), std::mem::size_of_val(&f) as u32) } != 0 {
        crate::fail(&format!("SO_ATTACH_FILTER: {}", crate::last_err()));
    }
}

/// The attached classic filter (SO_GET_FILTER), as (code, jt, jf, k).
pub fn filter(fd: RawFd) -> Vec<(u16, u8, u8, u32)> {
    let mut buf = vec![libc::sock_filter { code: 0, jt: 0, jf: 0, k: 0 }; 64];
    let mut len = buf.len() as u32;
    // SAFETY: SO_GET_FILTER writes at most `len` instructions (its length is in instructions).
    if unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, buf.as_mut_ptr().cast(), &mut len) } != 0 {
        return Vec::new();
    }
    buf.truncate(len as usize);
    buf.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect()
}

/// An Ethernet frame to lo (all-zero addresses) of ethertype `proto`:
/// our pid (big-endian), then `payload`.
pub fn frame(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(&std::process::id().to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// send() on a socket bound to lo: Err(errno text).
pub fn send(fd: RawFd, buf: &[u8]) -> Result<(), String> {
    // SAFETY: the kernel reads `buf`.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), 0) };
    if n as usize != buf.len() {
        return Err(format!("send: {n} ({})", crate::last_err()));
    }
    Ok(())
}

/// sendto() lo from a SOCK_PACKET socket (which names the device each time).
pub fn send_spkt(fd: RawFd, buf: &[u8]) -> Result<(), String> {
    let a = spkt_addr();
    // SAFETY: the kernel reads `buf` and the address.
    let n = unsafe { libc::sendto(fd, buf.as_ptr().cast(), buf.len(), 0, (&a as *const libc::sockaddr).cast(), std::mem::size_of_val(&a) as u32) };
    if n as usize != buf.len() {
        return Err(format!("sendto lo: {n} ({})", crate::last_err()));
    }
    Ok(())
}

/// Wait up to `ms` for `fd` to be readable.
pub fn readable(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd of ours.
    unsafe { libc::poll(&mut p, 1, ms) == 1 && p.revents & libc::POLLIN != 0 }
}

/// One frame (up to 2 seconds' wait), with the device name a SOCK_PACKET
/// socket's sender address gives (empty otherwise).
pub fn recv(fd: RawFd) -> Result<(Vec<u8>, String), String> {
    if !readable(fd, 2000) {
        return Err("no frame within 2s".into());
    }
    let mut buf = vec![0u8; 2048];
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&ss) as u32;
    // SAFETY: the kernel writes at most buf.len() bytes and `len` of address.
    let n = unsafe { libc::recvfrom(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) };
    if n < 0 {
        return Err(format!("recv: {}", crate::last_err()));
    }
    buf.truncate(n as usize);
    let dev = if so_type(fd) == SOCK_PACKET {
        // SAFETY: the storage holds a sockaddr_pkt's bytes.
        let a: libc::sockaddr = unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
        a.sa_data.iter().take(14).take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect()
    } else {
        String::new()
    };
    Ok((buf, dev))
}

/// Whether lo's multicast list (/proc/net/dev_mcast) holds `addr`.
pub fn lo_has_mcast(addr: &[u8]) -> bool {
    let hex: String = addr.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::read_to_string("/proc/net/dev_mcast")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 5 && f[1] == "lo" && f[4] == hex
        })
}

