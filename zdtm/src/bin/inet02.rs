//! inet02 (opts: --tcp-close): an established loopback connection (both
//! ends) and a half-closed one (FIN_WAIT2 / CLOSE_WAIT), their listener
//! closed (the killed connections would keep its port from being bound
//! again, for CRIU 4.2 too). With --tcp-close the dump records the
//! connections and the restore brings them back closed, as CRIU does:
//! each end a TCP socket with no peer whose reads give end of file. Whether
//! a restore happened is told by the time namespace (a restore makes a
//! new one); without one (no dump, or --leave-running) the connections
//! must still carry bytes.

use zdtm::inet::{self, name, opt};
use zdtm::Checks;

fn timens() -> Option<std::fs::Metadata> {
    std::fs::metadata("/proc/self/ns/time").ok()
}

fn main() {
    zdtm::test_init();
    let Some(ns_before) = timens() else { zdtm::skip("no time namespaces here (/proc/self/ns/time)") };
    let l = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    inet::bind(l, "127.0.0.1:0");
    inet::listen(l, 4);
    let (c1, s1) = inet::tcp_pair(l);
    let (c2, s2) = inet::tcp_pair(l);
    // SAFETY: shutdown of our socket.
    unsafe { libc::shutdown(c2, libc::SHUT_WR) };
    // SAFETY: closing our listener.
    unsafe { libc::close(l) };

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: shutdown of our socket.
        unsafe { libc::shutdown(c1, libc::SHUT_RDWR) };
    }
    use std::os::unix::fs::MetadataExt;
    let restored = timens().is_some_and(|m| m.ino() != ns_before.ino());
    let mut ck = Checks::new();
    if restored {
        for (w, fd) in [("client", c1), ("server end", s1), ("half-closed client", c2), ("CLOSE_WAIT end", s2)] {
            ck.eq(&format!("{w}: SO_TYPE"), opt(fd, libc::SOL_SOCKET, libc::SO_TYPE), Some(libc::SOCK_STREAM));
            ck.eq(&format!("{w}: SO_PROTOCOL"), opt(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL), Some(libc::IPPROTO_TCP));
            ck.eq(&format!("{w}: peer"), name(fd, true), None);
            let mut b = [0u8; 4];
            // SAFETY: receiving into our buffer, without blocking.
            let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
            ck.eq(&format!("{w}: read after the restore"), n, 0);
        }
    } else {
        ck.check(inet::through(c1, s1, b"c1->s1") && inet::through(s1, c1, b"s1->c1"), || "the established connection lost its way".into());
        ck.check(inet::through(s2, c2, b"s2->c2"), || "the half-closed connection can't carry bytes to the client".into());
    }
    ck.finish()
}
