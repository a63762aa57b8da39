//! netns06 (suid, `--tcp-established`): an established TCP connection in
//! a network namespace of the test's own (lo up, 127.0.0.1), with 6 bytes
//! sent and not read yet. The namespace is locked whole while the dump
//! runs and until the restore lets it go. After the restore, from inside:
//! the 6 bytes arrive, and new bytes go through both ways.
//!
//! `--sabotage check`: the queued bytes are read before the checks.

use zdtm::inet::{self, through};
use zdtm::{run_tool, Checks};

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    let l = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    inet::bind(l, "127.0.0.1:0");
    inet::listen(l, 1);
    let (c, s) = inet::tcp_pair(l);
    // SAFETY: sending our buffer.
    if unsafe { libc::send(c, b"before".as_ptr().cast(), 6, 0) } != 6 {
        zdtm::fail(&format!("send: {}", zdtm::last_err()));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    let mut b = [0u8; 16];
    if zdtm::sabotaged() {
        // SAFETY: receiving into our buffer.
        unsafe { libc::recv(s, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    }

    let mut ck = Checks::new();
    ck.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    // SAFETY: receiving into our buffer.
    let n = unsafe { libc::recv(s, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
    ck.check(n == 6 && &b[..6] == b"before", || format!("the queued bytes: got {n} ({:?})", &b[..n.max(0) as usize]));
    ck.check(through(c, s, b"after"), || "no bytes client -> server after the restore".into());
    ck.check(through(s, c, b"back"), || "no bytes server -> client after the restore".into());
    ck.finish()
}
