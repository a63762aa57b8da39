//! sk_unix_ext01 (crfail, --ext-unix-sk): a stream socket connected to a
//! server in a process outside the dumped tree. Half a stream connection
//! can't be carried (the other half's queue and state stay outside), so
//! the dump must refuse it even with --ext-unix-sk; the task runs on and
//! its connection still carries data both ways.

use zdtm::unixsk as u;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let srv_path = u::path(&zdtm::filename().with_extension("srv"));
    let server = u::spawn_outside(|ready| {
        let l = u::socket(libc::SOCK_STREAM);
        u::bind(l, &srv_path);
        u::listen(l, 1);
        ready();
        // SAFETY: a blocking accept on our listener.
        let a = unsafe { libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut()) };
        while let Some(m) = u::recv_blocking(a) {
            if m.is_empty() {
                break;
            }
            u::send(a, &[&b"re: "[..], &m].concat());
        }
    });
    let t = u::socket(libc::SOCK_STREAM);
    u::connect(t, &srv_path);
    u::send(t, b"one");
    if !u::wait_readable(t) {
        zdtm::fail("the outside server did not answer");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        u::drain(t);
    }

    let mut c = Checks::new();
    c.eq("answer queued before the dump", u::drain(t), b"re: one".to_vec());
    u::send(t, b"two");
    c.check(u::wait_readable(t), || "no answer after the dump".into());
    c.eq("answer after the dump", u::drain(t), b"re: two".to_vec());
    // SAFETY: ending the server we started.
    unsafe { libc::kill(server, libc::SIGKILL) };
    c.finish()
}
