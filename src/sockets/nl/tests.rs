//! The round trip of netlink sockets (bound with groups below and above
//! 32, connected, unbound and non-blocking with a filter, subscribed
//! without a port id, in flight)
//! and the dump's refusals.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{bind, connect, getsockname, sendto, MsgFlags, NetlinkAddr};

use super::restore::groups_from;
use crate::sys::sockopt_raw as raw;

const ROUTE: i32 = libc::NETLINK_ROUTE;
const GENERIC: i32 = libc::NETLINK_GENERIC;

fn sock(proto: i32) -> OwnedFd {
    raw::socket(libc::AF_NETLINK, libc::SOCK_RAW, proto).unwrap()
}

fn add_group(fd: &OwnedFd, g: i32) {
    raw::set_int(fd.as_fd(), libc::SOL_NETLINK, 1, g).unwrap();
}

fn name(fd: &OwnedFd) -> (u32, u32) {
    let a: NetlinkAddr = getsockname(fd.as_raw_fd()).unwrap();
    (a.pid(), a.groups())
}

/// Whether the kernel lets us subscribe a socket to route group 33
/// (RTNLGRP_BRVLAN): not on kernels with 32 route groups or fewer.
fn has_group_33() -> bool {
    let s = sock(ROUTE);
    raw::set_int(s.as_fd(), libc::SOL_NETLINK, 1, 33).is_ok()
}

#[test]
fn round_trip() {
    let big = has_group_33();
    if !big {
        eprintln!("skipping the group above 32: the kernel's route protocol has no group 33");
    }
    // Route: autobound with groups 1 and 5, and 33 by ADD_MEMBERSHIP.
    let r = sock(ROUTE);
    bind(r.as_raw_fd(), &NetlinkAddr::new(0, 0x11)).unwrap();
    if big {
        add_group(&r, 33);
    }
    // Generic: bound to a port id we pick, connected to another one.
    let port = 0x7000_0000 | std::process::id();
    let g = sock(GENERIC);
    bind(g.as_raw_fd(), &NetlinkAddr::new(port, 0)).unwrap();
    connect(g.as_raw_fd(), &NetlinkAddr::new(777, 0)).unwrap();
    // Route: unbound, non-blocking, a bigger receive buffer.
    let u = sock(ROUTE);
    nix::fcntl::fcntl(&u, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
    raw::set_int(u.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 300_000).unwrap();
    // ... and a classic BPF filter (accept everything: ret 0xffff).
    raw::attach_filter(u.as_fd(), &[libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0xffff }]).unwrap();
    // Route: subscribed to group 3 without being bound; connected to group 2.
    let s = sock(ROUTE);
    add_group(&s, 3);
    let c = sock(ROUTE);
    connect(c.as_raw_fd(), &NetlinkAddr::new(0, 1 << 1)).unwrap();
    let names = [name(&r), name(&g), name(&u), name(&s), name(&c)];
    let fds = [r.as_raw_fd(), g.as_raw_fd(), u.as_raw_fd(), s.as_raw_fd(), c.as_raw_fd()];
    let (before, back, after) = crate::files::round_trip::run_with(&fds, || drop((r, g, u, s, c)));
    for i in 0..fds.len() {
        let (x, y) = (before.entries[i].nlsk.as_ref().unwrap(), after.entries[i].nlsk.as_ref().unwrap());
        assert_eq!(
            (x.protocol, x.state, x.flags, x.portid, &x.groups, x.dst_portid, x.dst_group, x.ns_id),
            (y.protocol, y.state, y.flags, y.portid, &y.groups, y.dst_portid, y.dst_group, y.ns_id),
            "socket {i}"
        );
        assert_eq!(x.opts, y.opts, "socket {i}");
        assert_eq!(name(&back[i]), names[i], "socket {i}");
    }
    let rec = |i: usize| before.entries[i].nlsk.clone().unwrap();
    assert_eq!(rec(0).groups, if big { vec![0x11, 1] } else { vec![0x11] });
    assert_eq!((rec(1).portid, rec(1).state, rec(1).dst_portid, rec(1).dst_group), (port, 1, 777, 0));
    assert_eq!((rec(2).portid, rec(2).state, rec(2).ns_id), (0, 0, None));
    assert_ne!(rec(2).flags & libc::O_NONBLOCK as u32, 0);
    assert_eq!(rec(2).opts.so_filter.len(), 1);
    assert_eq!((rec(2).opts.so_passcred, rec(2).opts.so_passsec), (Some(false), Some(false)));
    assert_eq!((rec(3).portid, &rec(3).groups), (0, &vec![4]));
    assert_eq!((rec(4).state, rec(4).dst_group), (1, 2));
    // Still a route socket: a request gets its answer.
    let req = link_dump_request();
    sendto(back[0].as_raw_fd(), &req, &NetlinkAddr::new(0, 0), MsgFlags::empty()).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = nix::sys::socket::recv(back[0].as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
    assert!(n >= 16 && u16::from_ne_bytes([buf[4], buf[5]]) == libc::RTM_NEWLINK, "a link answer");
}

/// RTM_GETLINK, a dump of every link (netlink-packet-route's message).
fn link_dump_request() -> Vec<u8> {
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::{link::LinkMessage, RouteNetlinkMessage};
    let mut header = NetlinkHeader::default();
    header.flags = crate::sockets::netlink::NLM_F_REQUEST | crate::sockets::netlink::NLM_F_DUMP;
    header.sequence_number = 1;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(LinkMessage::default())));
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    assert_eq!(buf.len(), 32);
    buf
}

fn refusal(fd: &OwnedFd) -> String {
    let me = std::process::id() as i32;
    let stat = crate::proc::stat::read(me).unwrap();
    let (mut out, mut files) = (crate::files::fds::Fds::default(), crate::files::FileTable::new());
    match crate::files::fds::dump_fds(me, &[fd.as_raw_fd()], &mut out, &mut files, &stat, false) {
        Ok(_) => panic!("the dump of fd {} was not refused", fd.as_raw_fd()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn refusals_name_the_socket() {
    // A request's answer queued, not read.
    let q = sock(ROUTE);
    sendto(q.as_raw_fd(), &link_dump_request(), &NetlinkAddr::new(0, 0), MsgFlags::empty()).unwrap();
    let e = refusal(&q);
    assert!(e.contains("netlink socket") && e.contains(&format!("fd {}", q.as_raw_fd())) && e.contains("queued"), "{e}");
    // NETLINK_EXT_ACK on.
    let x = sock(GENERIC);
    raw::set_int(x.as_fd(), libc::SOL_NETLINK, 11, 1).unwrap();
    let e = refusal(&x);
    assert!(e.contains("NETLINK_EXT_ACK"), "{e}");
    // SOCK_DGRAM.
    let d = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Netlink,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        nix::sys::socket::SockProtocol::NetlinkRoute,
    )
    .unwrap();
    let e = refusal(&d);
    assert!(e.contains("SOCK_DGRAM"), "{e}");
}

/// A netlink socket subscribed to group 23 in flight in a unix datagram
/// queue, its own fd closed: received after the restore, with its group.
/// (Not bound: the dump's copy of a socket in flight lives on in this
/// process, holding any port id.)
#[test]
fn round_trip_in_flight() {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let n = sock(ROUTE);
    add_group(&n, 23);
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_CLOEXEC).unwrap();
    crate::sys::scm::send(a.as_fd(), &[b"nl"], &[n.as_fd()]).unwrap();
    let (_, back, _) = crate::files::round_trip::run_with(&[a.as_raw_fd(), b.as_raw_fd()], || drop((n, a, b)));
    let mut buf = [0u8; 8];
    let got = crate::sys::scm::recv(back[1].as_fd(), &mut buf, 1).unwrap();
    assert_eq!((&buf[..got.len], got.fds.len()), (&b"nl"[..], 1));
    assert_eq!(name(&got.fds[0]), (0, 1 << 22));
    assert_eq!(raw::get_int(got.fds[0].as_fd(), libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap(), ROUTE);
}

#[test]
fn group_bitmap_to_numbers() {
    assert_eq!(groups_from(&[0x11, 1], 0), vec![1, 5, 33]);
    assert_eq!(groups_from(&[0x11, 0x8000_0001], 1), vec![33, 64]);
    assert!(groups_from(&[], 0).is_empty());
}
