//! netlink00: netlink sockets bound with groups, one connected. A route
//! socket autobound to our pid with three quiet groups (phonet address
//! and route, DCB: no traffic on this machine), a generic socket bound to
//! a port id of ours with nlctrl's notify group, a route socket connected
//! to the kernel's group 21 (autobound to a kernel-chosen id), and an
//! unbound non-blocking route socket with a bigger receive buffer. After
//! restore each has its port id, groups, peer, flags and buffer, and an
//! RTM_GETLINK request on the route socket still gets its answer.

use zdtm::netlink::{self as nl, name};
use zdtm::Checks;

const GROUPS: u32 = (1 << 20) | (1 << 21) | (1 << 22);
const NOTIFY: u32 = 1 << 15;
const CONNECT_GROUP: u32 = 1 << 20;

fn getfl(fd: i32) -> i32 {
    // SAFETY: fcntl query.
    unsafe { libc::fcntl(fd, libc::F_GETFL) }
}

fn rcvbuf(fd: i32) -> i32 {
    let (mut v, mut len) = (0i32, 4u32);
    // SAFETY: the kernel writes one int into `v`.
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&mut v as *mut i32).cast(), &mut len) };
    v
}

fn main() {
    zdtm::test_init();
    let me = std::process::id();
    let r = nl::socket(libc::NETLINK_ROUTE);
    nl::bind(r, 0, GROUPS).unwrap_or_else(|e| zdtm::fail(&e));
    let g = nl::socket(libc::NETLINK_GENERIC);
    let port = 0x4000_0000 | me;
    if let Err(e) = nl::bind(g, port, NOTIFY) {
        zdtm::skip(&format!("nlctrl's notify group (16): {e}"));
    }
    let c = nl::socket(libc::NETLINK_ROUTE);
    nl::connect(c, 0, CONNECT_GROUP);
    let u = nl::socket(libc::NETLINK_ROUTE);
    // SAFETY: fcntl on our fd.
    unsafe { libc::fcntl(u, libc::F_SETFL, libc::O_NONBLOCK) };
    let big: i32 = 300_000;
    // SAFETY: the kernel reads one int.
    unsafe { libc::setsockopt(u, libc::SOL_SOCKET, libc::SO_RCVBUF, (&big as *const i32).cast(), 4) };
    let before = (name(c, false), getfl(u), rcvbuf(u));
    if name(r, false) != (me, GROUPS) {
        zdtm::fail(&format!("the route socket is {:?}, not autobound to our pid with our groups", name(r, false)));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // A fresh unbound socket in the route socket's place.
        // SAFETY: dup2 over our own fd.
        unsafe { libc::dup2(nl::socket(libc::NETLINK_ROUTE), r) };
    }
    let mut ck = Checks::new();
    ck.eq("route socket: port id and groups", name(r, false), (me, GROUPS));
    ck.eq("route socket: memberships", nl::groups(r), vec![21, 22, 23]);
    ck.eq("generic socket: port id and groups", name(g, false), (port, NOTIFY));
    ck.eq("generic socket: memberships", nl::groups(g), vec![16]);
    ck.eq("connected socket: port id", name(c, false), before.0);
    ck.eq("connected socket: peer", name(c, true), (0, CONNECT_GROUP));
    ck.eq("unbound socket: address", name(u, false), (0, 0));
    ck.eq("unbound socket: flags", getfl(u), before.1);
    ck.eq("unbound socket: SO_RCVBUF", rcvbuf(u), before.2);
    nl::ask_links(r);
    match nl::read_links(r, 0) {
        Ok(n) => ck.check(n >= 1, || "RTM_GETLINK answered with no link".into()),
        Err(e) => ck.check(false, || format!("RTM_GETLINK on the route socket: {e}")),
    }
    ck.finish()
}
