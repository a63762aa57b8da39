//! sk_unix_ext00 (--ext-unix-sk): a datagram socket connected to a
//! server on a path that a process outside the dumped tree holds (a
//! grandchild that left the tree), with the server's answer queued. After
//! restore the socket is connected to that very server again: its peer is
//! the server's path, the queued answer is there, and a new request is
//! answered.

use zdtm::unixsk as u;
use zdtm::Checks;

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
    let server = u::spawn_outside(|ready| {
        let srv = u::socket(libc::SOCK_DGRAM);
        u::bind(srv, &srv_path);
        ready();
        serve(srv, &t_name);
    });

    let t = u::socket(libc::SOCK_DGRAM);
    u::bind(t, &t_name);
    u::connect(t, &srv_path);
    u::send(t, b"ping 0");
    if !u::wait_readable(t) {
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
    c.check(u::wait_readable(t), || "no answer after restore".into());
    c.eq("answer after restore", u::recv(t), Some(b"pong 1".to_vec()));
    u::send(t, b"bye");
    // SAFETY: ending the server we started.
    unsafe { libc::kill(server, libc::SIGKILL) };
    c.finish()
}
