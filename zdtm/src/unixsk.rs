//! Unix socket helpers for the sk_unix* tests: make, bind, connect, read
//! names and types, send and receive without blocking. Each fails the test
//! with the call's error.

use crate::{fail, last_err};

/// An address: sun_path bytes as the kernel gives them back (a path with
/// its NUL, or a NUL then an abstract name).
pub type Name = Vec<u8>;

/// A path address.
pub fn path(p: &std::path::Path) -> Name {
    let mut v = std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec();
    v.push(0);
    v
}

/// An abstract address, unique to this process.
pub fn abstract_name(tag: &str) -> Name {
    let mut v = vec![0u8];
    v.extend_from_slice(format!("zdtm-{}-{tag}", std::process::id()).as_bytes());
    v
}

fn sockaddr(name: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if name.len() > sa.sun_path.len() {
        crate::skip(&format!("the unix address {:?} is longer than sun_path", String::from_utf8_lossy(name)));
    }
    for (d, s) in sa.sun_path.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    (sa, (std::mem::size_of::<libc::sa_family_t>() + name.len()) as libc::socklen_t)
}

/// socket(AF_UNIX, ty).
pub fn socket(ty: libc::c_int) -> i32 {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_UNIX, ty, 0) };
    if fd < 0 {
        fail(&format!("socket({ty}): {}", last_err()));
    }
    fd
}

/// socketpair(AF_UNIX, ty).
pub fn pair(ty: libc::c_int) -> (i32, i32) {
    let mut sv = [0; 2];
    // SAFETY: socketpair fills our array.
    if unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, sv.as_mut_ptr()) } != 0 {
        fail(&format!("socketpair: {}", last_err()));
    }
    (sv[0], sv[1])
}

pub fn bind(fd: i32, name: &[u8]) {
    let (sa, len) = sockaddr(name);
    // SAFETY: the kernel reads `len` bytes of our address.
    if unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) } != 0 {
        fail(&format!("bind {:?}: {}", String::from_utf8_lossy(name), last_err()));
    }
}

/// connect(), its error returned.
pub fn try_connect(fd: i32, name: &[u8]) -> Result<(), std::io::Error> {
    let (sa, len) = sockaddr(name);
    // SAFETY: the kernel reads `len` bytes of our address.
    if unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_un).cast(), len) } != 0 {
        return Err(last_err());
    }
    Ok(())
}

pub fn connect(fd: i32, name: &[u8]) {
    if let Err(e) = try_connect(fd, name) {
        fail(&format!("connect {:?}: {e}", String::from_utf8_lossy(name)));
    }
}

pub fn listen(fd: i32, backlog: i32) {
    // SAFETY: plain syscall.
    if unsafe { libc::listen(fd, backlog) } != 0 {
        fail(&format!("listen: {}", last_err()));
    }
}

/// accept() without blocking: None when no connection waits.
pub fn accept(fd: i32) -> Option<i32> {
    // SAFETY: fcntl on our fd.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) };
    // SAFETY: no address wanted.
    let c = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK) };
    // SAFETY: fcntl on our fd.
    unsafe { libc::fcntl(fd, libc::F_SETFL, fl) };
    (c >= 0).then_some(c)
}

fn name_by(fd: i32, peer: bool) -> Name {
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let p = (&mut sa as *mut libc::sockaddr_un).cast();
    // SAFETY: the kernel writes at most `len` bytes.
    let r = unsafe { if peer { libc::getpeername(fd, p, &mut len) } else { libc::getsockname(fd, p, &mut len) } };
    if r != 0 {
        return b"(error)".to_vec();
    }
    let n = (len as usize).saturating_sub(std::mem::size_of::<libc::sa_family_t>());
    sa.sun_path[..n].iter().map(|&c| c as u8).collect()
}

/// getsockname.
pub fn name(fd: i32) -> Name {
    name_by(fd, false)
}

/// getpeername ("(error)" when not connected).
pub fn peer(fd: i32) -> Name {
    name_by(fd, true)
}

/// An int socket option (SOL_SOCKET).
pub fn opt(fd: i32, o: libc::c_int) -> i32 {
    let mut v: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes one int.
    if unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, o, (&mut v as *mut libc::c_int).cast(), &mut len) } != 0 {
        return -1;
    }
    v
}

pub fn send(fd: i32, m: &[u8]) {
    // SAFETY: sending our buffer.
    if unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) } != m.len() as isize {
        fail(&format!("send: {}", last_err()));
    }
}

pub fn send_to(fd: i32, m: &[u8], to: &[u8]) {
    let (sa, len) = sockaddr(to);
    // SAFETY: sending our buffer to our address.
    let n = unsafe { libc::sendto(fd, m.as_ptr().cast(), m.len(), libc::MSG_DONTWAIT, (&sa as *const libc::sockaddr_un).cast(), len) };
    if n != m.len() as isize {
        fail(&format!("sendto {:?}: {}", String::from_utf8_lossy(to), last_err()));
    }
}

/// One receive without blocking: None when nothing is queued (EAGAIN),
/// Some(empty) at end of file.
pub fn recv(fd: i32) -> Option<Vec<u8>> {
    let mut b = vec![0u8; 1 << 20];
    // SAFETY: receiving into our buffer.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    b.truncate(n as usize);
    Some(b)
}

/// Everything queued on a stream socket (until EAGAIN or end of file).
pub fn drain(fd: i32) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = recv(fd) {
        if b.is_empty() {
            break;
        }
        out.extend(b);
    }
    out
}

/// One blocking receive: None on error.
pub fn recv_blocking(fd: i32) -> Option<Vec<u8>> {
    let mut b = vec![0u8; 65536];
    // SAFETY: receiving into our buffer.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), 0) };
    if n < 0 {
        return None;
    }
    b.truncate(n as usize);
    Some(b)
}

/// Wait up to 5 s for something to read on `fd`.
pub fn wait_readable(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd of ours.
    unsafe { libc::poll(&mut p, 1, 5000) == 1 }
}

/// Start a server outside the test's tree: a grandchild in a session of
/// its own (the test's session and group ids are its pid, which the
/// restore needs free), with a two-minute time limit, that runs `serve`
/// and never comes back. `serve` gets a `ready` callback to call once its
/// socket can be reached. Returns the server's pid.
pub fn spawn_outside(serve: impl FnOnce(&dyn Fn())) -> i32 {
    let (ready_r, ready_w) = crate::pipe_or_fail();
    // SAFETY: the child forks the server and leaves at once; the server
    // runs `serve` and leaves with _exit, never going on as the test.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: as above.
        if unsafe { libc::fork() } == 0 {
            // SAFETY: plain syscalls.
            unsafe {
                libc::setsid();
                libc::alarm(120);
                libc::close(ready_r);
            }
            let ready = || {
                // SAFETY: our pid to the test, then our write end closed.
                unsafe {
                    let pid = libc::getpid().to_ne_bytes();
                    libc::write(ready_w, pid.as_ptr().cast(), pid.len());
                    libc::close(ready_w);
                }
            };
            serve(&ready);
            // SAFETY: leaving the server process.
            unsafe { libc::_exit(0) }
        }
        // SAFETY: leaving the child.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready_w) };
    let mut pid = [0u8; 4];
    // SAFETY: reading the server's pid into our buffer.
    if unsafe { libc::read(ready_r, pid.as_mut_ptr().cast(), 4) } != 4 {
        crate::fail("the outside server did not start");
    }
    crate::wait_ready_closed(ready_r);
    crate::exited_ok(child);
    i32::from_ne_bytes(pid)
}
