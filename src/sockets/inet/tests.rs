//! The inet kind's round trip: sockets of this process dumped, opened
//! again from the images and dumped once more, the records compared; the
//! restored listener takes a connection, the UDP socket a datagram.

use std::net::{TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::images::pb::InetSkEntry;
use crate::sys::sockopt_raw::{self as raw, get_int, set_int};

fn sock(family: i32, ty: i32, proto: i32) -> OwnedFd {
    raw::socket(family, ty, proto).unwrap()
}

/// Bind to address `ip` at a free port below the kernel's ephemeral
/// range: the round trip closes the socket and binds its port again, and
/// a port the kernel hands out could go to another test's connection in
/// between (seen in CI: EADDRINUSE).
fn bind(fd: &OwnedFd, ip: &str) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u16 = range.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32768);
    let (first, span) = (1024u16, low.saturating_sub(1024).max(1));
    let start = (std::process::id() as u16).wrapping_mul(31).wrapping_add(fd.as_raw_fd() as u16 * 997);
    for k in 0..span {
        let port = first + (start.wrapping_add(k)) % span;
        let a = ip.replacen(":0", &format!(":{port}"), 1).rsplit_once(':').map(|(h, _)| format!("{h}:{port}")).unwrap();
        if raw::bind(fd.as_fd(), &a.parse().unwrap()).is_ok() {
            return;
        }
    }
    panic!("no free port below {low} for {ip}");
}

fn same(a: &InetSkEntry, b: &InetSkEntry) {
    let key = |e: &InetSkEntry| {
        let mut e = e.clone();
        (e.id, e.ino, e.ns_id) = (0, 0, None);
        e
    };
    assert_eq!(key(a), key(b));
}

#[test]
fn round_trip() {
    let l4 = sock(libc::AF_INET, libc::SOCK_STREAM, 0);
    set_int(l4.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    set_int(l4.as_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1).unwrap();
    set_int(l4.as_fd(), libc::SOL_TCP, libc::TCP_KEEPIDLE, 77).unwrap();
    raw::set_bytes(l4.as_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &[1, 0, 0, 0, 5, 0, 0, 0]).unwrap();
    bind(&l4, "127.0.0.1:0");
    raw::listen(l4.as_fd(), 7).unwrap();
    let l6 = sock(libc::AF_INET6, libc::SOCK_STREAM, 0);
    set_int(l6.as_fd(), libc::SOL_IPV6, libc::IPV6_V6ONLY, 0).unwrap();
    bind(&l6, "[::]:0");
    raw::listen(l6.as_fd(), 3).unwrap();
    let bound = sock(libc::AF_INET6, libc::SOCK_STREAM, 0);
    set_int(bound.as_fd(), libc::SOL_IP, libc::IP_FREEBIND, 1).unwrap();
    bind(&bound, "[::ffff:127.0.0.1]:0");
    let fresh = sock(libc::AF_INET, libc::SOCK_STREAM, 0);
    let udp = sock(libc::AF_INET, libc::SOCK_DGRAM, 0);
    bind(&udp, "127.0.0.1:0");
    let udp = UdpSocket::from(udp);
    udp.connect("127.0.0.1:9").unwrap();
    nix::sys::socket::shutdown(udp.as_raw_fd(), nix::sys::socket::Shutdown::Read).unwrap();
    let lite = sock(libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE);
    set_int(lite.as_fd(), libc::SOL_IPV6, libc::IPV6_V6ONLY, 1).unwrap();
    bind(&lite, "[::1]:0");

    let fds: Vec<RawFd> = [&l4, &l6, &bound, &fresh, &lite].iter().map(|f| f.as_raw_fd()).chain([udp.as_raw_fd()]).collect();
    let mut originals = Some((l4, l6, bound, fresh, lite, udp));
    let (before, back, after) = crate::files::round_trip::run_with(&fds, || drop(originals.take()));
    let isk = |d: &crate::files::round_trip::Dumped, i: usize| d.entries[i].isk.clone().unwrap();
    for i in 0..fds.len() {
        same(&isk(&before, i), &isk(&after, i));
    }
    let l4 = isk(&before, 0);
    assert_eq!((l4.state, l4.backlog, l4.src_addr.clone()), (10, 7, vec![u32::from_ne_bytes([127, 0, 0, 1])]));
    assert_eq!((l4.opts.reuseaddr, l4.opts.so_keepalive, l4.opts.so_linger), (Some(true), Some(true), Some(5)));
    assert_eq!(l4.tcp_opts.as_ref().and_then(|t| t.keepidle), Some(77));
    assert_eq!(l4.ip_opts.as_ref().and_then(|o| o.ttl), Some(get_int(back[0].as_fd(), libc::SOL_IP, libc::IP_TTL).unwrap() as u32));
    assert_eq!(isk(&before, 1).v6only, Some(false));
    let b = isk(&before, 2);
    assert_eq!((b.state, b.ip_opts.clone().unwrap().freebind), (7, Some(true)));
    assert_eq!(b.src_addr[2], u32::from_ne_bytes([0, 0, 0xff, 0xff]));
    assert_eq!(isk(&before, 3).src_port, 0);
    assert_eq!((isk(&before, 4).proto, isk(&before, 4).v6only), (libc::IPPROTO_UDPLITE as u32, Some(true)));
    let u = isk(&before, 5);
    assert_eq!((u.state, u.dst_port, u.shutdown), (1, 9, Some(1)));

    // The listeners take connections; the UDP-Lite socket still receives.
    assert_eq!(get_int(back[0].as_fd(), libc::SOL_SOCKET, libc::SO_ACCEPTCONN).unwrap(), 1);
    let c = TcpStream::connect(("127.0.0.1", l4.src_port as u16)).unwrap();
    let c6 = TcpStream::connect(("127.0.0.1", isk(&before, 1).src_port as u16)).unwrap();
    let l = std::net::TcpListener::from(back[0].try_clone().unwrap());
    let (s, _) = l.accept().unwrap();
    assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    drop(c6);
    let to = format!("[::1]:{}", isk(&before, 4).src_port);
    let sender = sock(libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE);
    raw::connect(sender.as_fd(), &to.parse().unwrap()).unwrap();
    nix::sys::socket::send(sender.as_raw_fd(), b"lite", nix::sys::socket::MsgFlags::empty()).unwrap();
    let mut buf = [0u8; 8];
    let n = nix::sys::socket::recv(back[4].as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::empty()).unwrap();
    assert_eq!(&buf[..n], b"lite");
}

#[test]
fn refusals_name_the_socket() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let me = std::process::id();
    for (fd, words) in [(l.as_fd(), "not accepted yet"), (c.as_fd(), "state ESTABLISHED")] {
        let md = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let mut found = super::dump::Collected::default();
        let who = format!("fd {} of task {me}", fd.as_raw_fd());
        let err = super::dump::entry(fd, std::os::unix::fs::MetadataExt::ino(&md) as u32, 1, 2, &mut found, false, &who).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&who) && msg.contains(words), "{msg}");
    }
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"x", u.local_addr().unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let md = std::fs::metadata(format!("/proc/self/fd/{}", u.as_raw_fd())).unwrap();
    let err = super::dump::entry(u.as_fd(), std::os::unix::fs::MetadataExt::ino(&md) as u32, 1, 2, &mut Default::default(), false, "udp").unwrap_err();
    assert!(format!("{err:#}").contains("datagrams queued"), "{err:#}");
}


#[test]
fn raw_round_trip() {
    let Ok(icmp) = raw::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) else {
        eprintln!("skipped: no raw sockets here (CAP_NET_RAW)");
        return;
    };
    // Every ICMP type filtered out: nothing queues up meanwhile.
    raw::set_bytes(icmp.as_fd(), 255, 1, &u32::MAX.to_ne_bytes()).unwrap();
    let ip = raw::socket(libc::AF_INET, libc::SOCK_RAW, 253).unwrap();
    set_int(ip.as_fd(), libc::SOL_IP, libc::IP_HDRINCL, 1).unwrap();
    bind(&ip, "127.0.0.1:0");
    // Connected (to port 0, the only one a raw socket has): the state and
    // peer address come back.
    raw::connect(ip.as_fd(), &"127.0.0.1:0".parse().unwrap()).unwrap();
    let icmp6 = raw::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6).unwrap();
    raw::set_bytes(icmp6.as_fd(), 58, 1, &[0xff; 32]).unwrap();
    let fds = [icmp.as_raw_fd(), ip.as_raw_fd(), icmp6.as_raw_fd()];
    let (before, back, after) = crate::files::round_trip::run(&fds);
    for i in 0..3 {
        same(before.entries[i].isk.as_ref().unwrap(), after.entries[i].isk.as_ref().unwrap());
    }
    let r = |i: usize| before.entries[i].isk.clone().unwrap().ip_opts.unwrap().raw.unwrap();
    assert_eq!(r(0).icmpv_filter, vec![u32::MAX]);
    assert_eq!((r(1).hdrincl, before.entries[1].isk.as_ref().unwrap().src_port), (Some(true), 253));
    let ip = before.entries[1].isk.clone().unwrap();
    assert_eq!((ip.state, ip.dst_port, ip.dst_addr), (1, 0, vec![u32::from_ne_bytes([127, 0, 0, 1])]));
    assert_eq!(r(2).icmpv_filter, vec![u32::MAX; 8]);
    assert_eq!(get_int(back[1].as_fd(), libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap(), 253);
}

#[test]
fn tcp_close_records_a_connection_and_restores_it_closed() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let md = std::fs::metadata(format!("/proc/self/fd/{}", c.as_raw_fd())).unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&md) as u32;
    let ie = super::dump::entry(c.as_fd(), ino, 1, 2, &mut Default::default(), true, "client").unwrap();
    assert_eq!((ie.state, ie.dst_port), (1, u32::from(l.local_addr().unwrap().port())));
    assert!(format!("{:#}", super::restore::open(&ie, false).unwrap_err()).contains("--tcp-close"));
    let back = super::restore::open(&ie, true).unwrap();
    assert_eq!(get_int(back.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE).unwrap(), libc::SOCK_STREAM);
    assert_eq!(raw::name(back.as_fd(), true).unwrap_err(), nix::errno::Errno::ENOTCONN);
    let mut b = [0u8; 4];
    assert_eq!(nix::sys::socket::recv(back.as_raw_fd(), &mut b, nix::sys::socket::MsgFlags::MSG_DONTWAIT), Ok(0));
}
