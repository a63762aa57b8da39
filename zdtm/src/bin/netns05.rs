//! netns05 (suid, crfail): the test, in the host's network namespace,
//! holds a UDP socket it made in another one (unshare, socket, setns
//! back). Its restore would make it in the wrong namespace: the dump must
//! be refused, naming the fd, and leave the task as it was. After it the
//! socket is still of the other namespace.
//!
//! `--sabotage check`: the test expects the socket in its own namespace.

use std::os::fd::AsRawFd;

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let host = std::fs::File::open("/proc/self/ns/net").unwrap_or_else(|e| zdtm::fail(&format!("/proc/self/ns/net: {e}")));
    let _ = zdtm::unshare_net();
    // SAFETY: plain syscalls; the socket is ours.
    let sk = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if sk < 0 {
        zdtm::fail(&format!("socket: {}", zdtm::last_err()));
    }
    let other = zdtm::netns_link();
    // SAFETY: setns to the namespace we came from.
    if unsafe { libc::setns(host.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        zdtm::fail(&format!("setns back: {}", zdtm::last_err()));
    }
    drop(host);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c = Checks::new();
    // SIOCGSKNS: the socket's namespace as an fd.
    // SAFETY: the ioctl returns a new fd or -1.
    let nsfd = unsafe { libc::ioctl(sk, 0x894c) };
    let of_sk = std::fs::read_link(format!("/proc/self/fd/{nsfd}")).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    let want = if zdtm::sabotaged() { zdtm::netns_link() } else { other };
    c.eq("the socket's network namespace", of_sk, want);
    c.finish()
}
