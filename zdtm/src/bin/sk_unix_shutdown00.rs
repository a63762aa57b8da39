//! sk_unix_shutdown00: unix socket pairs shut down one way: a stream pair
//! whose end a shut its sending side with bytes still queued for b, a
//! seqpacket pair whose end c shut its receiving side, a datagram pair
//! with both sides of e shut. After the restore each direction behaves as
//! before: the shut ones give EPIPE or end of file (after the queued
//! data), the open ones still carry messages.

use zdtm::Checks;

fn pair(ty: libc::c_int) -> (i32, i32) {
    let mut sv = [0; 2];
    // SAFETY: socketpair fills our array.
    if unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, sv.as_mut_ptr()) } != 0 {
        zdtm::fail(&format!("socketpair: {}", zdtm::last_err()));
    }
    (sv[0], sv[1])
}

fn shut(fd: i32, how: libc::c_int) {
    // SAFETY: plain syscall on our socket.
    if unsafe { libc::shutdown(fd, how) } != 0 {
        zdtm::fail(&format!("shutdown: {}", zdtm::last_err()));
    }
}

/// send(2) without SIGPIPE: the bytes sent, or the errno.
fn send(fd: i32, m: &[u8]) -> Result<usize, i32> {
    // SAFETY: sending our buffer.
    let n = unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
    if n < 0 { Err(zdtm::last_err().raw_os_error().unwrap_or(0)) } else { Ok(n as usize) }
}

/// recv(2) without blocking: the bytes (empty at end of file), or the errno.
fn recv(fd: i32) -> Result<Vec<u8>, i32> {
    let mut b = vec![0u8; 4096];
    // SAFETY: receiving into our buffer.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(zdtm::last_err().raw_os_error().unwrap_or(0));
    }
    b.truncate(n as usize);
    Ok(b)
}

fn main() {
    zdtm::test_init();
    let (a, b) = pair(libc::SOCK_STREAM);
    let (c, d) = pair(libc::SOCK_SEQPACKET);
    let (e, f) = pair(libc::SOCK_DGRAM);
    if send(a, b"before the end").is_err() || send(d, b"to c").is_err() {
        zdtm::fail(&format!("send: {}", zdtm::last_err()));
    }
    shut(a, libc::SHUT_WR);
    shut(c, libc::SHUT_RD);
    shut(e, libc::SHUT_RDWR);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        shut(b, libc::SHUT_WR);
    }

    let mut k = Checks::new();
    // Stream: a can't send; b reads the queued bytes, then end of file;
    // b -> a still works.
    k.eq("a sends after SHUT_WR", send(a, b"x"), Err(libc::EPIPE));
    k.eq("b reads the queued bytes", recv(b), Ok(b"before the end".to_vec()));
    k.eq("b then reads end of file", recv(b), Ok(Vec::new()));
    k.eq("b sends to a", send(b, b"back"), Ok(4));
    k.eq("a receives from b", recv(a), Ok(b"back".to_vec()));
    // Seqpacket: c's receiving side is shut (the peer's sending side with
    // it); c still sends to d.
    k.eq("d sends to c after SHUT_RD", send(d, b"y"), Err(libc::EPIPE));
    k.eq("c sends to d", send(c, b"from c"), Ok(6));
    k.eq("d receives from c", recv(d), Ok(b"from c".to_vec()));
    // Datagram: e is shut both ways.
    k.eq("e sends after SHUT_RDWR", send(e, b"z"), Err(libc::EPIPE));
    k.eq("f sends to e (receive side shut)", send(f, b"w"), Err(libc::EPIPE));
    k.eq("f receives nothing", recv(f), Err(libc::EAGAIN));
    k.finish()
}
