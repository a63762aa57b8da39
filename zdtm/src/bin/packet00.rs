//! packet00: packet sockets bound to lo with their options. A raw socket
//! with PACKET_AUXDATA, PACKET_ORIGDEV, a copy threshold, a multicast
//! membership on lo and a classic filter that lets in only this test's
//! frames; a datagram socket with TPACKET_V2, a reserve, a timestamp
//! source, PACKET_LOSS and its own filter, non-blocking; a raw socket with
//! PACKET_VNET_HDR. After restore each has its address, type, options and
//! filter, lo still holds the membership, and a frame sent on lo through
//! the raw socket (after one with another pid, which the filters drop)
//! reaches all three as each should see it.

use zdtm::packet::{self as pk, *};
use zdtm::Checks;

const ETH: u16 = 0x88b7;

fn so_int(fd: i32, name: i32) -> i32 {
    let (mut v, mut len) = (0i32, 4u32);
    // SAFETY: the kernel writes one int.
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut v as *mut i32).cast(), &mut len) };
    v
}

fn getfl(fd: i32) -> i32 {
    // SAFETY: fcntl query.
    unsafe { libc::fcntl(fd, libc::F_GETFL) }
}

fn main() {
    zdtm::test_init();
    let me = std::process::id();
    let mcast = [0x01, 0x00, 0x5e, 0x7f, (me >> 8) as u8, me as u8];
    let r = pk::bound(libc::SOCK_RAW, ETH);
    pk::set(r, PACKET_AUXDATA, 1);
    pk::set(r, PACKET_ORIGDEV, 1);
    pk::set(r, PACKET_COPY_THRESH, 64);
    pk::add_membership(r, 0, &mcast);
    let raw_filter = pk::filter_prog(14, me);
    pk::attach(r, &raw_filter);
    let d = pk::bound(libc::SOCK_DGRAM, ETH);
    pk::set(d, PACKET_VERSION, 1);
    pk::set(d, PACKET_RESERVE, 32);
    pk::set(d, PACKET_TIMESTAMP, 1 << 6);
    pk::set(d, PACKET_LOSS, 1);
    let dgram_filter = pk::filter_prog(0, me);
    pk::attach(d, &dgram_filter);
    // SAFETY: fcntl on our fd.
    unsafe { libc::fcntl(d, libc::F_SETFL, libc::O_NONBLOCK) };
    let v = pk::bound(libc::SOCK_RAW, ETH);
    pk::set(v, PACKET_VNET_HDR, 1);
    pk::attach(v, &raw_filter);
    let flags = getfl(d);
    if !pk::lo_has_mcast(&mcast) {
        zdtm::fail("lo does not list the membership just added");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // The raw socket's filter and aux data gone.
        pk::set(r, PACKET_AUXDATA, 0);
        // SAFETY: SO_DETACH_FILTER takes no value.
        unsafe { libc::setsockopt(r, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, std::ptr::null(), 0) };
    }
    let mut ck = Checks::new();
    let lo = pk::lo();
    for (fd, what, ty) in [(r, "raw", libc::SOCK_RAW), (d, "datagram", libc::SOCK_DGRAM), (v, "vnet", libc::SOCK_RAW)] {
        ck.eq(&format!("{what} socket: address"), pk::name(fd), Ok((lo, ETH)));
        ck.eq(&format!("{what} socket: SO_TYPE"), so_int(fd, libc::SO_TYPE), ty);
    }
    ck.eq("raw socket: PACKET_AUXDATA", pk::get(r, PACKET_AUXDATA), 1);
    ck.eq("raw socket: PACKET_ORIGDEV", pk::get(r, PACKET_ORIGDEV), 1);
    ck.eq("raw socket: PACKET_VNET_HDR", pk::get(r, PACKET_VNET_HDR), 0);
    ck.eq("raw socket: filter", pk::filter(r), raw_filter.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect());
    ck.eq("datagram socket: PACKET_VERSION", pk::get(d, PACKET_VERSION), 1);
    ck.eq("datagram socket: PACKET_RESERVE", pk::get(d, PACKET_RESERVE), 32);
    ck.eq("datagram socket: PACKET_TIMESTAMP", pk::get(d, PACKET_TIMESTAMP), 1 << 6);
    ck.eq("datagram socket: PACKET_LOSS", pk::get(d, PACKET_LOSS), 1);
    ck.eq("datagram socket: filter", pk::filter(d), dgram_filter.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect());
    ck.eq("datagram socket: flags", getfl(d), flags);
    ck.eq("vnet socket: PACKET_VNET_HDR", pk::get(v, PACKET_VNET_HDR), 1);
    ck.check(pk::lo_has_mcast(&mcast), || "lo no longer lists the membership".into());

    // Another pid's frame first (the filters drop it), then ours.
    let mut other = pk::frame(ETH, b"not ours");
    other[14..18].copy_from_slice(&(me ^ 0x5a5a).to_be_bytes());
    let ours = pk::frame(ETH, b"packet00");
    for f in [&other, &ours] {
        if let Err(e) = pk::send(r, f) {
            ck.check(false, || format!("sending on the raw socket: {e}"));
        }
    }
    match pk::recv(r) {
        Ok((got, _)) => ck.eq("raw socket: the first frame", got, ours.clone()),
        Err(e) => ck.check(false, || format!("raw socket: {e}")),
    }
    match pk::recv(d) {
        Ok((got, _)) => ck.eq("datagram socket: the first payload", got, ours[14..].to_vec()),
        Err(e) => ck.check(false, || format!("datagram socket: {e}")),
    }
    match pk::recv(v) {
        Ok((got, _)) => ck.eq("vnet socket: the frame after its 10-byte header", got.get(10..).map(<[u8]>::to_vec), Some(ours.clone())),
        Err(e) => ck.check(false, || format!("vnet socket: {e}")),
    }
    ck.finish()
}
