//! sk_unix_scm00: unix sockets in flight (SCM_RIGHTS). A stream pair
//! carries a message with two fds — a datagram socket with a message
//! queued on it, whose twin the task keeps, and a listening socket on an
//! abstract name with a client waiting — which the task no longer holds
//! otherwise. After restore the message comes with both fds: the datagram
//! socket has its queued message and still hears its twin, the listener
//! listens under its name and its waiting client is accepted.

use zdtm::unixsk as u;
use zdtm::Checks;

/// Send `data` with `fds` (SCM_RIGHTS) on `sk`.
fn send_fds(sk: i32, data: &[u8], fds: &[i32]) {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut ctl = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    // SAFETY: a zeroed msghdr pointed at our buffers.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr().cast();
    mh.msg_controllen = space;
    // SAFETY: the control buffer has room for one header and the fds.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&mh);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
    }
    // SAFETY: sending our message.
    if unsafe { libc::sendmsg(sk, &mh, 0) } != data.len() as isize {
        zdtm::fail(&format!("sendmsg: {}", zdtm::last_err()));
    }
}

/// Receive a message and the fds it carries, without blocking.
fn recv_fds(sk: i32) -> (Vec<u8>, Vec<i32>) {
    let mut buf = [0u8; 256];
    let mut ctl = [0u8; 256];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: a zeroed msghdr pointed at our buffers.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr().cast();
    mh.msg_controllen = ctl.len();
    // SAFETY: receiving into our buffers.
    let n = unsafe { libc::recvmsg(sk, &mut mh, libc::MSG_DONTWAIT) };
    if n < 0 {
        return (Vec::new(), Vec::new());
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c).cast::<i32>();
                fds.extend((0..k).map(|i| *p.add(i)));
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    (buf[..n as usize].to_vec(), fds)
}

fn main() {
    zdtm::test_init();
    let (a, b) = u::pair(libc::SOCK_STREAM);
    let (x, y) = u::pair(libc::SOCK_DGRAM);
    u::send(y, b"to x");
    let l_name = u::abstract_name("inflight");
    let l = u::socket(libc::SOCK_STREAM);
    u::bind(l, &l_name);
    u::listen(l, 2);
    let cl = u::socket(libc::SOCK_STREAM);
    u::connect(cl, &l_name);
    send_fds(a, b"with fds", &[x, l]);
    // SAFETY: closing our own copies: they live on in flight only.
    unsafe {
        libc::close(x);
        libc::close(l);
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        recv_fds(b);
    }

    let mut c = Checks::new();
    let (data, fds) = recv_fds(b);
    c.eq("message", data, b"with fds".to_vec());
    c.eq("fds in flight", fds.len(), 2);
    if let [x, l] = fds[..] {
        c.eq("datagram in flight: type", u::opt(x, libc::SO_TYPE), libc::SOCK_DGRAM);
        c.eq("datagram in flight: queued", u::recv(x), Some(b"to x".to_vec()));
        u::send(y, b"again");
        c.eq("datagram in flight: hears its twin", u::recv(x), Some(b"again".to_vec()));
        c.eq("listener in flight: name", u::name(l), l_name.clone());
        c.eq("listener in flight: listening", u::opt(l, libc::SO_ACCEPTCONN), 1);
        match u::accept(l) {
            Some(s) => {
                u::send(cl, b"hi");
                c.eq("listener in flight: waiting client", u::recv(s), Some(b"hi".to_vec()));
            }
            None => c.check(false, || "listener in flight: the waiting client is gone".into()),
        }
    }
    c.finish()
}
