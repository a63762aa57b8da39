//! Ping sockets and UDP-Lite coverage through the inet kind: idents,
//! addresses and peers (port 0 included) survive a round trip and the
//! restored sockets get their echo replies; a restore the group range
//! forbids is refused naming it; a partial UDP-Lite coverage is refused
//! at dump.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys::sockopt_raw::{self as raw, set_int};

const RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// ping_group_range set for the test's time, put back when dropped (only
/// ever widened here: ping sockets of other tests running at once go on).
struct Range(String);

impl Range {
    fn set(v: &str) -> std::io::Result<Range> {
        let old = std::fs::read_to_string(RANGE)?;
        std::fs::write(RANGE, v)?;
        Ok(Range(old))
    }
}

impl Drop for Range {
    fn drop(&mut self) {
        let _ = std::fs::write(RANGE, self.0.trim());
    }
}

/// An echo request through `fd`; the reply's identifier (the socket's ident).
fn echo(fd: BorrowedFd<'_>, v6: bool) -> u16 {
    let ty = if v6 { 128 } else { 8 };
    raw::send(fd, &[ty, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'], 0).unwrap();
    let mut b = [0u8; 64];
    for _ in 0..50 {
        if let Ok(n) = raw::recv(fd, &mut b, libc::MSG_DONTWAIT) {
            assert_eq!((n, b[0], &b[8..12]), (12, if v6 { 129 } else { 0 }, &b"ping"[..]));
            return u16::from_be_bytes([b[4], b[5]]);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no echo reply");
}

fn port(fd: &OwnedFd) -> u16 {
    raw::name(fd.as_fd(), false).unwrap().map_or(0, |a| a.port())
}

#[test]
fn ping_round_trip_and_the_group_range() {
    let wide = match Range::set("0 2147483647") {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipped: can't set {RANGE} ({e})");
            return;
        }
    };
    let ping = |family| raw::socket(family, libc::SOCK_DGRAM, if family == libc::AF_INET { libc::IPPROTO_ICMP } else { libc::IPPROTO_ICMPV6 }).unwrap();
    let bound = ping(libc::AF_INET);
    raw::bind(bound.as_fd(), &"127.0.0.1:0".parse().unwrap()).unwrap();
    let to_zero = ping(libc::AF_INET);
    raw::connect(to_zero.as_fd(), &"127.0.0.1:0".parse().unwrap()).unwrap();
    let to_seven = ping(libc::AF_INET);
    set_int(to_seven.as_fd(), libc::SOL_IP, libc::IP_TTL, 33).unwrap();
    raw::connect(to_seven.as_fd(), &"127.0.0.1:7".parse().unwrap()).unwrap();
    let have_v6 = raw::bind(ping(libc::AF_INET6).as_fd(), &"[::1]:0".parse().unwrap()).is_ok();
    let v6 = ping(libc::AF_INET6);
    if have_v6 {
        raw::bind(v6.as_fd(), &"[::1]:0".parse().unwrap()).unwrap();
        raw::connect(v6.as_fd(), &"[::1]:0".parse().unwrap()).unwrap();
    } else {
        eprintln!("no IPv6 loopback: the IPv6 ping socket stays unbound");
    }
    let fresh = ping(libc::AF_INET);
    let idents: Vec<u16> = [&bound, &to_zero, &to_seven, &v6, &fresh].iter().map(|f| port(f)).collect();
    assert!(idents[..3].iter().all(|p| *p != 0), "{idents:?}");

    let fds: Vec<_> = [&bound, &to_zero, &to_seven, &v6, &fresh].iter().map(|f| f.as_raw_fd()).collect();
    let mut originals = Some((bound, to_zero, to_seven, v6, fresh));
    let (before, back, after) = crate::files::round_trip::run_with(&fds, || drop(originals.take()));
    let isk = |d: &crate::files::round_trip::Dumped, i: usize| d.entries[i].isk.clone().unwrap();
    for i in 0..fds.len() {
        let (mut a, mut b) = (isk(&before, i), isk(&after, i));
        (a.id, a.ino, b.id, b.ino) = (0, 0, 0, 0);
        assert_eq!(a, b, "socket {i}");
        assert_eq!(port(&back[i]), idents[i], "socket {i}'s ident");
    }
    let z = isk(&before, 1);
    assert_eq!((z.proto, z.state, z.dst_port, z.dst_addr.clone()), (1, 1, 0, vec![u32::from_ne_bytes([127, 0, 0, 1])]));
    assert_eq!((isk(&before, 2).dst_port, isk(&before, 2).ip_opts.unwrap().ttl), (7, Some(33)));
    assert_eq!((isk(&before, 4).src_port, isk(&before, 4).state), (0, 7));
    assert_eq!(isk(&before, 3).v6only, Some(true));
    // The restored connected sockets ping through their peer, with their ident.
    assert_eq!(echo(back[1].as_fd(), false), idents[1]);
    assert_eq!(echo(back[2].as_fd(), false), idents[2]);
    if have_v6 {
        assert_eq!(echo(back[3].as_fd(), true), idents[3]);
    }
    drop(back);

    drop(wide);

    // A range without our groups: the restore says why it can't. In a
    // network namespace of this thread's own (the range is per namespace;
    // a new one's is "1 0"), so ping sockets elsewhere are not disturbed.
    let bound = isk(&before, 0);
    let refused = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        let range = std::fs::read_to_string(RANGE).map_err(|e| e.to_string())?;
        if range.split_whitespace().collect::<Vec<_>>() != ["1", "0"] {
            return Err(format!("a new namespace's range is {range:?}, not \"1 0\""));
        }
        Ok(format!("{:#}", super::restore::open(&bound, false).map(drop).unwrap_err()))
    })
    .join()
    .unwrap();
    match refused {
        Ok(msg) => assert!(msg.contains("ping_group_range") && msg.contains("\"1\\t0\"") && msg.contains(&format!("inode {}", isk(&before, 0).ino)), "{msg}"),
        Err(why) => eprintln!("the refusal not checked: {why}"),
    }
}

#[test]
fn udplite_partial_coverage_is_refused() {
    for (family, at) in [(libc::AF_INET, "127.0.0.1:0"), (libc::AF_INET6, "[::1]:0")] {
        let Ok(s) = raw::socket(family, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE) else { continue };
        if raw::bind(s.as_fd(), &at.parse().unwrap()).is_err() {
            eprintln!("skipped {at}: can't bind there");
            continue;
        }
        let md = std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
        let ino = std::os::unix::fs::MetadataExt::ino(&md) as u32;
        let entry = |s: &OwnedFd| super::dump::entry(s.as_fd(), ino, 1, 2, &mut Default::default(), false, "lite");
        assert!(entry(&s).is_ok());
        for (name, what) in [(10, "UDPLITE_SEND_CSCOV 20"), (11, "UDPLITE_RECV_CSCOV 20")] {
            set_int(s.as_fd(), libc::IPPROTO_UDPLITE, name, 20).unwrap();
            let err = format!("{:#}", entry(&s).unwrap_err());
            assert!(err.contains("lite") && err.contains(what), "{err}");
            set_int(s.as_fd(), libc::IPPROTO_UDPLITE, name, 0).unwrap();
        }
    }
}
