//! mcast00 (crfail): a UDP socket that joined multicast group 239.1.2.3
//! on lo (IP_ADD_MEMBERSHIP). No image holds a socket's memberships, so
//! the dump must refuse it by name and leave the task running; after it
//! the socket is still a member (IP_MSFILTER answers for the group) and
//! can leave the group.

use zdtm::inet;
use zdtm::Checks;

/// ip_mreqn for 239.1.2.3 on interface 1 (lo).
fn mreqn() -> Vec<u8> {
    let mut m = vec![239, 1, 2, 3, 0, 0, 0, 0];
    m.extend_from_slice(&1i32.to_ne_bytes());
    m
}

/// Whether the socket is a member of 239.1.2.3 (IP_MSFILTER: struct
/// ip_msfilter with the group, any local address, no sources).
fn member(fd: i32) -> bool {
    let mut f = [0u8; 20];
    f[..4].copy_from_slice(&[239, 1, 2, 3]);
    f[4..8].copy_from_slice(&[127, 0, 0, 1]);
    let mut len = f.len() as libc::socklen_t;
    // SAFETY: the kernel reads and writes at most `len` bytes of `f`.
    unsafe { libc::getsockopt(fd, libc::SOL_IP, libc::IP_MSFILTER, f.as_mut_ptr().cast(), &mut len) == 0 }
}

fn main() {
    zdtm::test_init();
    let s = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    inet::bind(s, "0.0.0.0:0");
    inet::set_bytes(s, libc::SOL_IP, libc::IP_ADD_MEMBERSHIP, &mreqn(), "IP_ADD_MEMBERSHIP");
    if !member(s) {
        zdtm::fail(&format!("IP_MSFILTER does not see the membership: {}", zdtm::last_err()));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        inet::set_bytes(s, libc::SOL_IP, libc::IP_DROP_MEMBERSHIP, &mreqn(), "IP_DROP_MEMBERSHIP");
    }
    let mut c = Checks::new();
    c.check(member(s), || "no longer a member of 239.1.2.3".into());
    let m = mreqn();
    // SAFETY: the kernel reads our ip_mreqn.
    let left = unsafe { libc::setsockopt(s, libc::SOL_IP, libc::IP_DROP_MEMBERSHIP, m.as_ptr().cast(), m.len() as u32) } == 0;
    c.check(left, || format!("IP_DROP_MEMBERSHIP: {}", zdtm::last_err()));
    c.finish()
}
