//! sk_unix00: unix socket pairs (stream and datagram) with data queued in
//! both directions: every message survives with its boundaries, and each
//! pair is still connected end to end after.

use zdtm::Checks;

fn pair(ty: libc::c_int) -> (i32, i32) {
    let mut sv = [0; 2];
    // SAFETY: socketpair fills our array.
    if unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, sv.as_mut_ptr()) } != 0 {
        zdtm::fail(&format!("socketpair: {}", zdtm::last_err()));
    }
    (sv[0], sv[1])
}

fn send(fd: i32, m: &[u8]) {
    // SAFETY: sending our buffer.
    if unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), 0) } != m.len() as isize {
        zdtm::fail(&format!("send: {}", zdtm::last_err()));
    }
}

fn recv(fd: i32) -> Vec<u8> {
    let mut b = vec![0u8; 70000];
    // SAFETY: receiving into our buffer, without blocking.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    b.truncate(n.max(0) as usize);
    b
}

fn main() {
    zdtm::test_init();
    let (a, b) = pair(libc::SOCK_STREAM);
    let (c, d) = pair(libc::SOCK_DGRAM);
    let mut big = vec![0u8; 40000];
    zdtm::datagen(&mut big, 7);
    send(a, &big);
    send(b, b"from b");
    for m in [&b"one"[..], b"two", b"three"] {
        send(c, m);
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        recv(d);
    }
    let mut c_ = Checks::new();
    c_.check(recv(b) == big, || "stream data a->b differs".into());
    c_.eq("stream data b->a", recv(a), b"from b".to_vec());
    for m in [&b"one"[..], b"two", b"three"] {
        c_.eq("datagram", recv(d), m.to_vec());
    }
    c_.eq("queue empty", recv(d), Vec::new());
    send(d, b"back");
    c_.eq("datagram d->c after", recv(c), b"back".to_vec());
    send(a, b"again");
    c_.eq("stream a->b after", recv(b), b"again".to_vec());
    c_.finish()
}
