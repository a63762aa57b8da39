//! sk_unix_ext00 (--ext-unix-sk): a datagram socket connected to a
//! server on a path that a process outside the dumped tree holds (a
//! grandchild that left the tree), with the server's answer queued. After
//! restore the socket is connected to that very server again: its peer is
//! the server's path, the queued answer is there, and a new request is
//! answered.

use zdtm::unixsk as u;
use zdtm::Checks;

/// Wait up to 5 s for something to read on `fd`.
fn wait_readable(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd of ours.
    unsafe { libc::poll(&mut p, 1, 5000) == 1 }
}

/// The outside server: answers "ping N" with "pong N" to the sender's
/// name, stops at "bye" (or after two minutes).
fn serve(srv: i32, to: &[u8]) -> ! {
    // SAFETY: plain syscall.
    unsafe { libc::alarm(120) };
    while let Some(m) = u::recv_blocking(srv) {
        if m == b"bye" {
            break;
        }
        if let Some(n) = m.strip_prefix(b"ping ") {
            u::send_to(srv, &[&b"pong "[..], n].concat(), to);
        }
    }
    // SAFETY: leaving the server process.
    unsafe { libc::_exit(0) }
}

fn main() {
    zdtm::test_init();
    let srv_path = u::path(&zdtm::filename().with_extension("srv"));
    let t_name = u::abstract_name("t");
    let (ready_r, ready_w) = zdtm::pipe_or_fail();
    // SAFETY: the child forks the server and leaves at once; the server
    // runs `serve` and never returns.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: as above.
        if unsafe { libc::fork() } == 0 {
            // Out of the test's session and group too: their ids are the
            // test's pid, which the restore needs free.
            // SAFETY: plain syscall.
            unsafe { libc::setsid() };
            let srv = u::socket(libc::SOCK_DGRAM);
            u::bind(srv, &srv_path);
            // SAFETY: our pid to the parent, then our pipe ends closed.
            unsafe {
                let pid = libc::getpid().to_ne_bytes();
                libc::write(ready_w, pid.as_ptr().cast(), pid.len());
                libc::close(ready_w);
                libc::close(ready_r);
            }
            serve(srv, &t_name);
        }
        // SAFETY: leaving the child.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready_w) };
    let mut pid = [0u8; 4];
    // SAFETY: reading the server's pid into our buffer.
    if unsafe { libc::read(ready_r, pid.as_mut_ptr().cast(), 4) } != 4 {
        zdtm::fail("the outside server did not start");
    }
    zdtm::wait_ready_closed(ready_r);
    let server = i32::from_ne_bytes(pid);
    zdtm::exited_ok(child);

    let t = u::socket(libc::SOCK_DGRAM);
    u::bind(t, &t_name);
    u::connect(t, &srv_path);
    u::send(t, b"ping 0");
    if !wait_readable(t) {
        zdtm::fail("the outside server did not answer");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        u::recv(t);
    }

    let mut c = Checks::new();
    c.eq("peer", u::peer(t), srv_path.clone());
    c.eq("name", u::name(t), t_name.clone());
    c.eq("queued answer", u::recv(t), Some(b"pong 0".to_vec()));
    u::send(t, b"ping 1");
    c.check(wait_readable(t), || "no answer after restore".into());
    c.eq("answer after restore", u::recv(t), Some(b"pong 1".to_vec()));
    u::send(t, b"bye");
    // SAFETY: ending the server we started.
    unsafe { libc::kill(server, libc::SIGKILL) };
    c.finish()
}
