//! netlink01: a route socket bound to a port id of ours and connected to
//! another port id (no group). After restore it has both addresses: the
//! peer's group is still none.

use zdtm::netlink::{self as nl, name};
use zdtm::Checks;

const PEER: u32 = 0x5a5a;

fn main() {
    zdtm::test_init();
    let port = 0x2000_0000 | std::process::id();
    let s = nl::socket(libc::NETLINK_ROUTE);
    nl::bind(s, port, 0).unwrap_or_else(|e| zdtm::fail(&e));
    nl::connect(s, PEER, 0);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // Connected elsewhere.
        nl::connect(s, PEER + 1, 0);
    }
    let mut ck = Checks::new();
    ck.eq("port id and groups", name(s, false), (port, 0));
    ck.eq("peer", name(s, true), (PEER, 0));
    ck.finish()
}
