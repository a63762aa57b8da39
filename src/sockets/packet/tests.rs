//! The round trip of packet sockets (raw with options, memberships, a
//! filter and v2 rings; datagram with loss, reserve and a timestamp
//! source; a fanout pair with a flag; SOCK_PACKET on lo; unbound) and the
//! dump's refusals.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::opt;
use crate::images::pb::PacketSockEntry;
use crate::sys::packet as pk;
use crate::sys::sockopt_raw as raw;

/// Ethertypes of our own (IEEE local experimental 0x88b5 and around),
/// one per test so parallel tests never see each other's frames.
const P_TRIP: u16 = 0x88b5;
const P_REFUSE: u16 = 0x88b6;
const P_RING: u16 = 0x88bb;

fn lo() -> i32 {
    std::fs::read_to_string("/sys/class/net/lo/ifindex").expect("lo's index").trim().parse().expect("an index")
}

fn sock(ty: i32, proto: u16) -> OwnedFd {
    raw::socket(libc::AF_PACKET, ty, i32::from(proto.to_be())).expect("a packet socket (root needed)")
}

fn bound(ty: i32, proto: u16) -> OwnedFd {
    let s = sock(ty, proto);
    pk::bind_ll(s.as_fd(), 0, lo()).unwrap();
    s
}

fn set(fd: &OwnedFd, name: i32, v: i32) {
    raw::set_int(fd.as_fd(), libc::SOL_PACKET, name, v).unwrap_or_else(|e| panic!("SOL_PACKET option {name} = {v}: {e}"));
}

fn get(fd: &OwnedFd, name: i32) -> i32 {
    raw::get_int(fd.as_fd(), libc::SOL_PACKET, name).unwrap()
}

fn mreq(fd: &OwnedFd, ty: u16, addr: &[u8]) {
    let mut b = (lo() as u32).to_ne_bytes().to_vec();
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(&(addr.len() as u16).to_ne_bytes());
    b.extend_from_slice(addr);
    b.resize(16, 0);
    raw::set_bytes(fd.as_fd(), libc::SOL_PACKET, opt::ADD_MEMBERSHIP, &b).unwrap();
}

fn ring(fd: &OwnedFd, name: i32, block: u32, blocks: u32, frame: u32) {
    let req: Vec<u8> = [block, blocks, frame, block / frame * blocks, 0, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
    raw::set_bytes(fd.as_fd(), libc::SOL_PACKET, name, &req).unwrap();
}

/// An Ethernet frame of ethertype `proto` to lo's all-zero address.
fn frame(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Whether packet_diag answers here (the dump reads packet sockets
/// through it); the tests that dump skip, saying so, when it doesn't.
fn have_diag() -> bool {
    match super::diag::all() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping: packet_diag is not available here ({e:#})");
            false
        }
    }
}

/// The record without what a new description changes (its id).
fn comparable(e: &PacketSockEntry) -> PacketSockEntry {
    PacketSockEntry { id: 0, ..e.clone() }
}

#[test]
fn round_trip() {
    if !have_diag() {
        return;
    }
    // Raw: aux data, original device, copy threshold, two memberships (one
    // added twice), an accept-all filter, v2 rx and tx rings.
    let r = bound(libc::SOCK_RAW, P_TRIP);
    set(&r, opt::AUXDATA, 1);
    set(&r, opt::ORIGDEV, 1);
    set(&r, opt::COPY_THRESH, 3);
    mreq(&r, 1, &[]);
    mreq(&r, 0, &[1, 0, 0x5e, 1, 2, 3]);
    mreq(&r, 0, &[1, 0, 0x5e, 1, 2, 3]);
    raw::attach_filter(r.as_fd(), &[libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0xffff }]).unwrap();
    set(&r, opt::VERSION, 1);
    ring(&r, opt::RX_RING, 4096, 2, 2048);
    ring(&r, opt::TX_RING, 8192, 1, 2048);
    // Datagram: loss, reserve (v2), a timestamp source, non-blocking.
    let d = bound(libc::SOCK_DGRAM, P_TRIP);
    set(&d, opt::LOSS, 1);
    set(&d, opt::VERSION, 1);
    set(&d, opt::RESERVE, 16);
    set(&d, opt::TIMESTAMP, 1 << 6);
    nix::fcntl::fcntl(&d, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
    // A fanout pair: group 0x7a00 | pid's low byte, hash with defrag.
    let group = 0x7a00 | (std::process::id() & 0xff);
    let fan = group | (0x8000 << 16);
    let (f1, f2) = (bound(libc::SOCK_RAW, P_TRIP), bound(libc::SOCK_RAW, P_TRIP));
    set(&f1, opt::FANOUT, fan as i32);
    set(&f2, opt::FANOUT, fan as i32);
    // Raw with a virtio header; unbound, protocol 0.
    let v = bound(libc::SOCK_RAW, P_TRIP);
    set(&v, opt::VNET_HDR, 1);
    let u = sock(libc::SOCK_RAW, 0);
    // SOCK_PACKET on lo.
    let s = sock(super::SOCK_PACKET as i32, 0x0003);
    pk::bind_spkt(s.as_fd(), "lo").unwrap();

    let names: Vec<_> = [&r, &d, &f1, &f2, &v, &u, &s].iter().map(|f| pk::name(f.as_fd()).unwrap()).collect();
    let fds = [r.as_raw_fd(), d.as_raw_fd(), f1.as_raw_fd(), f2.as_raw_fd(), v.as_raw_fd(), u.as_raw_fd(), s.as_raw_fd()];
    let (before, back, after) = crate::files::round_trip::run_with(&fds, || drop((r, d, f1, f2, v, u, s)));
    for i in 0..fds.len() {
        let (x, y) = (before.entries[i].psk.as_ref().unwrap(), after.entries[i].psk.as_ref().unwrap());
        assert_eq!(comparable(x), comparable(y), "socket {i}");
        assert_eq!(pk::name(back[i].as_fd()).unwrap(), names[i], "socket {i}");
    }
    let rec = |i: usize| before.entries[i].psk.clone().unwrap();
    let p = u32::from(P_TRIP.to_be());
    let r0 = rec(0);
    assert_eq!((r0.r#type, r0.protocol, r0.ifindex, r0.version, r0.copy_thresh), (3, p, lo() as u32, 1, 3));
    assert!(r0.aux_data && r0.orig_dev && !r0.loss && !r0.vnet_hdr);
    assert_eq!(r0.mclist.len(), 3, "{:?}", r0.mclist);
    assert_eq!(r0.opts.so_filter.len(), 1);
    assert_eq!(r0.rx_ring.map(|r| (r.block_size, r.block_nr, r.frame_size, r.frame_nr)), Some((4096, 2, 2048, 4)));
    assert_eq!(r0.tx_ring.map(|r| (r.block_size, r.block_nr, r.frame_size, r.frame_nr)), Some((8192, 1, 2048, 4)));
    let d0 = rec(1);
    assert_eq!((d0.r#type, d0.reserve, d0.timestamp, d0.loss), (2, 16, 1 << 6, true));
    assert_ne!(d0.flags & libc::O_NONBLOCK as u32, 0);
    assert_eq!((rec(2).fanout, rec(3).fanout), (Some(fan), Some(fan)));
    assert!(rec(4).vnet_hdr);
    assert_eq!((rec(5).protocol, rec(5).ifindex), (0, 0));
    assert_eq!((rec(6).r#type, rec(6).ifindex), (10, lo() as u32));
    // The restored pair is one group still, with its flag.
    assert_eq!((get(&back[2], opt::FANOUT) as u32, get(&back[3], opt::FANOUT) as u32), (fan, fan));
    // A frame sent on lo reaches the restored datagram socket (its
    // payload past the Ethernet header).
    let tx = bound(libc::SOCK_RAW, P_TRIP);
    raw::send(tx.as_fd(), &frame(P_TRIP, b"packet round trip"), 0).unwrap();
    let mut buf = [0u8; 64];
    let mut got = Err(nix::errno::Errno::EAGAIN);
    for _ in 0..100 {
        got = raw::recv(back[1].as_fd(), &mut buf, 0);
        if got != Err(nix::errno::Errno::EAGAIN) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let n = got.expect("the frame on the restored datagram socket");
    assert_eq!(&buf[..n.min(17)], b"packet round trip");
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
    if !have_diag() {
        return;
    }
    // A frame waiting in the receive queue.
    let q = bound(libc::SOCK_RAW, P_REFUSE);
    raw::send(q.as_fd(), &frame(P_REFUSE, b"queued"), 0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let e = refusal(&q);
    assert!(e.contains("packet socket") && e.contains(&format!("fd {}", q.as_raw_fd())) && e.contains("waiting"), "{e}");
    // PACKET_QDISC_BYPASS on.
    let b = bound(libc::SOCK_RAW, P_REFUSE);
    set(&b, opt::QDISC_BYPASS, 1);
    let e = refusal(&b);
    assert!(e.contains("PACKET_QDISC_BYPASS"), "{e}");
}

/// Rings of each version are carried while unused, refused once the
/// kernel filled a frame (even one handed back: its place moved on).
#[test]
fn rings_carried_only_unused() {
    if !have_diag() {
        return;
    }
    let tx_sock = bound(libc::SOCK_RAW, P_RING);
    for version in [0, 1, 2] {
        let g = bound(libc::SOCK_RAW, P_RING);
        set(&g, opt::VERSION, version);
        ring(&g, opt::RX_RING, 8192, 2, 2048);
        ring(&g, opt::TX_RING, 4096, 1, 2048);
        let fresh = crate::files::round_trip::dump(&[g.as_raw_fd()]);
        let e = fresh.entries[0].psk.clone().unwrap();
        assert_eq!((e.version, e.rx_ring.map(|r| r.block_nr), e.tx_ring.map(|r| r.frame_nr)), (version as u32, Some(2), Some(2)));
        raw::send(tx_sock.as_fd(), &frame(P_RING, b"ring"), 0).unwrap();
        let mut ok = false;
        for _ in 0..100 {
            if raw::poll_now(g.as_fd(), libc::POLLIN).unwrap() & libc::POLLIN != 0 {
                ok = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(ok, "v{} ring: no frame arrived", version + 1);
        let e = refusal(&g);
        assert!(e.contains("waiting"), "v{}: {e}", version + 1);
        // Handed back to the kernel (status 0: v1's is 8 bytes at the
        // frame's start, v2's 4; v3's block status is at byte 8).
        let at = crate::sys::mm::map(0, 8192 * 2 + 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, Some(g.as_fd()), 0).unwrap();
        let mem = std::fs::OpenOptions::new().write(true).open("/proc/self/mem").unwrap();
        let (off, len) = [(0, 8), (0, 4), (8, 4)][version as usize];
        std::os::unix::fs::FileExt::write_all_at(&mem, &[0u8; 8][..len], at + off).unwrap();
        crate::sys::mm::unmap(at, 8192 * 2 + 4096).unwrap();
        assert_eq!(raw::poll_now(g.as_fd(), libc::POLLIN).unwrap() & libc::POLLIN, 0, "v{}: the frame was handed back", version + 1);
        let e = refusal(&g);
        assert!(e.contains("rx ring was used"), "v{}: {e}", version + 1);
    }
}
