//! TCP on loopback for the established-connection tests (tcp00, tcp01):
//! a listener with a small receive buffer (so a writer's send queue
//! fills), connect, accept, a byte pattern written until the peer's
//! window closes, and reads with a time limit.

/// Byte `i` of the pattern of stream `seed`.
pub fn pattern(seed: u8, i: usize) -> u8 {
    ((i * 7 + usize::from(seed) * 13 + 3) % 251) as u8
}

fn sockaddr(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    }
}

const SALEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// A TCP listener on 127.0.0.1 (any port) whose accepted sockets get a
/// receive buffer of `rcvbuf` bytes: (fd, port).
pub fn listen(rcvbuf: i32) -> (i32, u16) {
    // SAFETY: plain syscalls on our own socket and locals.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            crate::fail(&format!("socket: {}", crate::last_err()));
        }
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&rcvbuf as *const i32).cast(), 4);
        let sa = sockaddr(0);
        if libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), SALEN) != 0 || libc::listen(fd, 4) != 0 {
            crate::fail(&format!("bind/listen on 127.0.0.1: {}", crate::last_err()));
        }
        let mut got = sockaddr(0);
        let mut len = SALEN;
        libc::getsockname(fd, (&mut got as *mut libc::sockaddr_in).cast(), &mut len);
        (fd, u16::from_be(got.sin_port))
    }
}

/// A TCP socket connected to 127.0.0.1:`port`.
pub fn connect(port: u16) -> i32 {
    // SAFETY: plain syscalls on our own socket and a local address.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let sa = sockaddr(port);
        if fd < 0 || libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), SALEN) != 0 {
            crate::fail(&format!("connect to 127.0.0.1:{port}: {}", crate::last_err()));
        }
        fd
    }
}

/// accept(2) on `fd`.
pub fn accept(fd: i32) -> i32 {
    // SAFETY: plain syscall, no address wanted.
    let c = unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
    if c < 0 {
        crate::fail(&format!("accept: {}", crate::last_err()));
    }
    c
}

/// Write pattern `seed` from byte `from`, without blocking, until the
/// socket takes no more or `max` bytes are written: the count written.
pub fn fill(fd: i32, seed: u8, from: usize, max: usize) -> usize {
    let mut n = 0;
    while n < max {
        let chunk: Vec<u8> = (from + n..from + max.min(n + 4096)).map(|i| pattern(seed, i)).collect();
        // SAFETY: sending our buffer.
        let r = unsafe { libc::send(fd, chunk.as_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    n
}

/// Read exactly `n` bytes, waiting at most 10 s for each: what came.
pub fn read_n(fd: i32, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; 65536];
    while out.len() < n {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: polling one local pollfd; reading into our buffer.
        let r = unsafe {
            if libc::poll(&mut p, 1, 10_000) != 1 {
                break;
            }
            libc::recv(fd, buf.as_mut_ptr().cast(), (n - out.len()).min(buf.len()), libc::MSG_DONTWAIT)
        };
        if r <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..r as usize]);
    }
    out
}

/// Where `got` first differs from pattern `seed` from byte `from`.
pub fn mismatch(got: &[u8], seed: u8, from: usize) -> Option<usize> {
    got.iter().enumerate().position(|(i, b)| *b != pattern(seed, from + i))
}

/// The bytes waiting in `fd`'s send queue (SIOCOUTQ).
pub fn outq(fd: i32) -> i32 {
    let mut v: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int.
    unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut v) };
    v
}

/// Write all of `b` (blocking).
pub fn fill_bytes(fd: i32, b: &[u8]) {
    let mut off = 0;
    while off < b.len() {
        // SAFETY: sending from our buffer.
        let r = unsafe { libc::send(fd, b[off..].as_ptr().cast(), b.len() - off, libc::MSG_NOSIGNAL) };
        if r <= 0 {
            return;
        }
        off += r as usize;
    }
}
