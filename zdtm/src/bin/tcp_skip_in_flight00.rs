//! tcp_skip_in_flight00 (--tcp-established --skip-in-flight): a listener
//! with a connection not accepted yet, from a client outside the dumped
//! tree that sent 10 bytes on it. CRIU's --skip-in-flight leaves such
//! connections out: after a restore (told by the time namespace, which a
//! restore makes anew) the listener has none waiting, and takes and
//! carries a new connection. Without a restore (no dump, or a dump that
//! left the tree running) the connection waits, with its 10 bytes.

use std::os::unix::fs::MetadataExt;

use zdtm::inet;
use zdtm::tcp;
use zdtm::unixsk as u;
use zdtm::Checks;

fn timens() -> Option<std::fs::Metadata> {
    std::fs::metadata("/proc/self/ns/time").ok()
}

/// accept(2) of a connection waiting now: the fd, or None (none waits).
fn accept_now(l: i32) -> Option<i32> {
    if !inet::wait_for(l, libc::POLLIN, 0) {
        return None;
    }
    // SAFETY: accept with no address wanted (one waits: it does not block).
    let s = unsafe { libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut()) };
    (s >= 0).then_some(s)
}

fn main() {
    zdtm::test_init();
    let Some(ns_before) = timens() else { zdtm::skip("no time namespaces here (/proc/self/ns/time)") };
    let (l, port) = tcp::listen(4096);
    let at = inet::name(l, false).unwrap_or_else(|| zdtm::fail("the listener's address"));
    u::spawn_outside(move |ready| {
        // SAFETY: the listener is the test's, not ours.
        unsafe { libc::close(l) };
        let c = tcp::connect(port);
        tcp::fill_bytes(c, b"in flight!");
        ready();
        std::thread::sleep(std::time::Duration::from_secs(20));
        // SAFETY: leaving the client process.
        unsafe { libc::_exit(0) }
    });
    if !inet::wait_for(l, libc::POLLIN, 5000) {
        zdtm::fail("the outside client's connection does not wait on the listener");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    let restored = timens().is_some_and(|m| m.ino() != ns_before.ino());
    if zdtm::sabotaged() {
        if restored {
            let c = tcp::connect(port);
            zdtm::log_line(&format!("sabotage: a connection {c} waits on the listener"));
        } else if let Some(s) = accept_now(l) {
            // SAFETY: closing what we took.
            unsafe { libc::close(s) };
        }
    }

    let mut ck = Checks::new();
    if restored {
        ck.eq("a connection waiting on the restored listener", accept_now(l).is_some(), false);
    } else {
        match accept_now(l) {
            Some(s) => {
                let got = tcp::read_n(s, 10);
                ck.eq("the waiting connection's bytes", String::from_utf8_lossy(&got).to_string(), "in flight!".to_string());
            }
            None => ck.check(false, || "the connection waiting on the listener is gone without a restore".into()),
        }
    }
    if let Err(e) = inet::listener_works(l, &at) {
        ck.check(false, || format!("the listener: {e}"));
    }
    ck.finish()
}
