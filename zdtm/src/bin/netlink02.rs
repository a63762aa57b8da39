//! netlink02: a route socket bound to a port id of ours with groups on
//! both sides of 32 (22 by bind; 34 and 35, MCTP and tunnel, by
//! NETLINK_ADD_MEMBERSHIP; no traffic on this machine). After restore it
//! has the same port id and exactly those memberships.

use zdtm::netlink::{self as nl, name};
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let port = 0x3000_0000 | std::process::id();
    let s = nl::socket(libc::NETLINK_ROUTE);
    nl::bind(s, port, 1 << 21).unwrap_or_else(|e| zdtm::fail(&e));
    for g in [34, 35] {
        if let Err(e) = nl::add_group(s, g) {
            zdtm::skip(&format!("route group {g} (older kernel?): {e}"));
        }
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let g = 35i32;
        // SAFETY: the kernel reads one int.
        unsafe { libc::setsockopt(s, libc::SOL_NETLINK, libc::NETLINK_DROP_MEMBERSHIP, (&g as *const i32).cast(), 4) };
    }
    let mut ck = Checks::new();
    ck.eq("port id and first 32 groups", name(s, false), (port, 1 << 21));
    ck.eq("memberships", nl::groups(s), vec![22, 34, 35]);
    ck.finish()
}
