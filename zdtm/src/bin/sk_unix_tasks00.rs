//! sk_unix_tasks00: unix sockets whose peers another task holds, and
//! sockets whose peer is closed. A child connects to the parent's listener
//! (path) and the parent accepts; a socketpair is split between them; data
//! is queued every way. The parent also keeps a stream and a seqpacket
//! socket whose peers wrote and closed, and a datagram socket whose sender
//! closed. After restore each side checks from inside: the accepted
//! socket's name and the client's peer are the listener's path, the queues
//! are byte-exact (message boundaries kept), the closed peers read as end
//! of file after their data, and every live connection still carries data
//! both ways.

use zdtm::unixsk as u;
use zdtm::Checks;

fn line(errs: &[String]) -> String {
    if errs.is_empty() { "ok\n".into() } else { format!("FAIL {}\n", errs.join("; ")) }
}

fn main() {
    zdtm::test_init();
    let file = zdtm::filename().to_path_buf();
    let l_name = u::path(&file.with_extension("l"));
    let l = u::socket(libc::SOCK_STREAM);
    u::bind(l, &l_name);
    u::listen(l, 4);
    let (p, q) = u::pair(libc::SOCK_SEQPACKET);
    let (ready_r, ready_w) = zdtm::pipe_or_fail();
    let child_l_name = l_name.clone();
    let (pid, req, rep) = zdtm::fork_server(move |req_r, rep_w| {
        // SAFETY: closing the parent's sockets and pipe end in the child.
        unsafe {
            libc::close(l);
            libc::close(p);
            libc::close(ready_r);
        }
        let cl = u::socket(libc::SOCK_STREAM);
        u::connect(cl, &child_l_name);
        u::send(cl, b"from child");
        u::send(q, b"q->p 1");
        u::send(q, b"q->p 2");
        // SAFETY: closing our end tells the parent we are set.
        unsafe { libc::close(ready_w) };
        let mut b = [0u8; 1];
        // SAFETY: a blocking one-byte read from our pipe: the check request.
        unsafe { libc::read(req_r, b.as_mut_ptr().cast(), 1) };
        let mut errs = Vec::new();
        let mut eq = |what: &str, got: Vec<u8>, want: &[u8]| {
            if got != want {
                errs.push(format!("child: {what}: got {:?}, want {:?}", String::from_utf8_lossy(&got), String::from_utf8_lossy(want)));
            }
        };
        eq("client's peer", u::peer(cl), &child_l_name);
        eq("client's queue", u::drain(cl), b"from parent");
        eq("pair end's queue", u::recv(q).unwrap_or_default(), b"p->q");
        u::send(cl, b"child again");
        u::send(q, b"q->p after");
        let out = line(&errs);
        // SAFETY: writing our line to our pipe.
        unsafe { libc::write(rep_w, out.as_ptr().cast(), out.len()) };
        // SAFETY: leaving the child.
        unsafe { libc::_exit(0) }
    });
    // SAFETY: closing the child's ends in the parent.
    unsafe {
        libc::close(q);
        libc::close(ready_w);
    }
    zdtm::wait_ready_closed(ready_r);
    let Some(a) = u::accept(l) else { zdtm::fail("the child's connection is not there") };
    u::send(a, b"from parent");
    u::send(p, b"p->q");

    // Peers that wrote and closed.
    let (s, t) = u::pair(libc::SOCK_STREAM);
    u::send(t, b"last words");
    let (x, y) = u::pair(libc::SOCK_SEQPACKET);
    for m in [&b"msg 1"[..], b"msg 22"] {
        u::send(y, m);
    }
    let (d, e) = u::pair(libc::SOCK_DGRAM);
    u::send(e, b"bye");
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(t);
        libc::close(y);
        libc::close(e);
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        u::drain(a);
    }

    let mut c = Checks::new();
    c.eq("accepted socket's name", u::name(a), l_name.clone());
    c.eq("listener's name", u::name(l), l_name.clone());
    c.eq("accepted socket's queue", u::drain(a), b"from child".to_vec());
    c.eq("pair end's queue 1", u::recv(p), Some(b"q->p 1".to_vec()));
    c.eq("pair end's queue 2", u::recv(p), Some(b"q->p 2".to_vec()));
    c.eq("stream with a closed peer", u::drain(s), b"last words".to_vec());
    c.eq("stream with a closed peer: end of file", u::recv(s), Some(Vec::new()));
    c.eq("seqpacket with a closed peer 1", u::recv(x), Some(b"msg 1".to_vec()));
    c.eq("seqpacket with a closed peer 2", u::recv(x), Some(b"msg 22".to_vec()));
    c.eq("seqpacket with a closed peer: end of file", u::recv(x), Some(Vec::new()));
    c.eq("datagram whose sender closed", u::recv(d), Some(b"bye".to_vec()));
    c.eq("datagram whose sender closed: queue empty", u::recv(d), None);
    let child = zdtm::ask_line(req, rep);
    c.eq("the child's checks", child.as_str(), "ok");
    c.eq("accepted socket after", u::drain(a), b"child again".to_vec());
    c.eq("pair end after", u::recv(p), Some(b"q->p after".to_vec()));
    c.check(zdtm::exited_ok(pid), || "the child did not exit cleanly".into());
    c.finish()
}
