//! sk_unix_ext01 (crfail, --ext-unix-sk): a stream socket connected to a
//! server in a process outside the dumped tree. Half a stream connection
//! can't be carried (the other half's queue and state stay outside), so
//! the dump must refuse it even with --ext-unix-sk; the task runs on and
//! its connection still carries data both ways.

use zdtm::unixsk as u;
use zdtm::Checks;

fn wait_readable(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd of ours.
    unsafe { libc::poll(&mut p, 1, 5000) == 1 }
}

fn main() {
    zdtm::test_init();
    let srv_path = u::path(&zdtm::filename().with_extension("srv"));
    let (ready_r, ready_w) = zdtm::pipe_or_fail();
    // SAFETY: the child forks the server and leaves at once; the server
    // answers on its one connection and never returns.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: as above.
        if unsafe { libc::fork() } == 0 {
            // SAFETY: plain syscalls: out of the test's session (its id is
            // the test's pid), a time limit.
            unsafe {
                libc::setsid();
                libc::alarm(120);
            }
            let l = u::socket(libc::SOCK_STREAM);
            u::bind(l, &srv_path);
            u::listen(l, 1);
            // SAFETY: our pid to the parent, then our pipe ends closed.
            unsafe {
                let pid = libc::getpid().to_ne_bytes();
                libc::write(ready_w, pid.as_ptr().cast(), pid.len());
                libc::close(ready_w);
                libc::close(ready_r);
            }
            // SAFETY: a blocking accept on our listener.
            let a = unsafe { libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut()) };
            while let Some(m) = u::recv_blocking(a) {
                if m.is_empty() {
                    break;
                }
                u::send(a, &[&b"re: "[..], &m].concat());
            }
            // SAFETY: leaving the server process.
            unsafe { libc::_exit(0) }
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
    let t = u::socket(libc::SOCK_STREAM);
    u::connect(t, &srv_path);
    u::send(t, b"one");
    if !wait_readable(t) {
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
    c.check(wait_readable(t), || "no answer after the dump".into());
    c.eq("answer after the dump", u::drain(t), b"re: two".to_vec());
    // SAFETY: ending the server we started.
    unsafe { libc::kill(server, libc::SIGKILL) };
    c.finish()
}
