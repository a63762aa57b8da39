//! netlink03: a route socket subscribed to groups 22 and 23 (phonet
//! route, DCB: no traffic on this machine) by NETLINK_ADD_MEMBERSHIP,
//! never bound. After restore it is still unbound (port id 0) with
//! exactly those memberships.

use zdtm::netlink::{self as nl, name};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let s = nl::socket(libc::NETLINK_ROUTE);
    for g in [22, 23] {
        nl::add_group(s, g).unwrap_or_else(|e| zdtm::fail(&e));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let g = 23i32;
        // SAFETY: the kernel reads one int.
        unsafe { libc::setsockopt(s, libc::SOL_NETLINK, libc::NETLINK_DROP_MEMBERSHIP, (&g as *const i32).cast(), 4) };
    }
    let mut ck = Checks::new();
    ck.eq("port id and groups", name(s, false), (0, (1 << 21) | (1 << 22)));
    ck.eq("memberships", nl::groups(s), vec![22, 23]);
    ck.finish()
}
