//! raw00 (suid: raw sockets need CAP_NET_RAW): an ICMP raw socket with
//! every ICMP type filtered out (ICMP_FILTER), an ICMPv6 one with its
//! ICMPV6_FILTER blocking all, and a protocol-253 socket bound to a
//! loopback address of its own (127.X.Y.Z from its pid: a raw socket gets
//! every packet of its protocol to its address, so runs of raw00 at once
//! would feed each other) with IP_HDRINCL. After the restore each has its family,
//! protocol, filter, header-include flag and address; the protocol-253
//! socket still receives a packet sent to it over loopback.

use zdtm::inet::{self, name, opt};
use zdtm::Checks;

fn get(fd: i32, level: i32, opt: i32, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    let mut l = len as libc::socklen_t;
    // SAFETY: the kernel writes at most `l` bytes.
    if unsafe { libc::getsockopt(fd, level, opt, b.as_mut_ptr().cast(), &mut l) } != 0 {
        return Vec::new();
    }
    b.truncate(l as usize);
    b
}

fn main() {
    zdtm::test_init();
    let icmp = inet::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
    inet::set_bytes(icmp, 255, 1, &u32::MAX.to_ne_bytes(), "ICMP_FILTER");
    let icmp6 = inet::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6);
    inet::set_bytes(icmp6, 58, 1, &[0xff; 32], "ICMPV6_FILTER");
    let p253 = inet::socket(libc::AF_INET, libc::SOCK_RAW, 253);
    inet::set_opt(p253, libc::SOL_IP, libc::IP_HDRINCL, 1, "IP_HDRINCL");
    let pid = std::process::id();
    inet::bind(p253, &format!("127.{}.{}.{}:0", (pid >> 16) & 0xff, (pid >> 8) & 0xff, (pid & 0xff).max(1)));
    let addr = name(p253, false);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        inet::set_bytes(icmp, 255, 1, &0u32.to_ne_bytes(), "ICMP_FILTER");
        inet::set_opt(p253, libc::SOL_IP, libc::IP_HDRINCL, 0, "IP_HDRINCL");
    }

    let mut c = Checks::new();
    for (w, fd, family, proto) in [("ICMP", icmp, libc::AF_INET, libc::IPPROTO_ICMP), ("ICMPv6", icmp6, libc::AF_INET6, libc::IPPROTO_ICMPV6), ("proto 253", p253, libc::AF_INET, 253)] {
        c.eq(&format!("{w}: SO_DOMAIN"), opt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN), Some(family));
        c.eq(&format!("{w}: SO_TYPE"), opt(fd, libc::SOL_SOCKET, libc::SO_TYPE), Some(libc::SOCK_RAW));
        c.eq(&format!("{w}: SO_PROTOCOL"), opt(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL), Some(proto));
    }
    c.eq("ICMP_FILTER", get(icmp, 255, 1, 4), u32::MAX.to_ne_bytes().to_vec());
    c.eq("ICMPV6_FILTER", get(icmp6, 58, 1, 32), vec![0xff; 32]);
    c.eq("proto 253: IP_HDRINCL", opt(p253, libc::SOL_IP, libc::IP_HDRINCL), Some(1));
    c.eq("proto 253: address", name(p253, false), addr);
    // A packet of protocol 253 to its address reaches it (IP header first).
    let s = inet::socket(libc::AF_INET, libc::SOCK_RAW, 253);
    if let Some(a) = addr {
        let _ = inet::connect(s, &a);
        // SAFETY: sending our buffer.
        let sent = unsafe { libc::send(s, b"raw253".as_ptr().cast(), 6, 0) } == 6;
        c.check(sent, || format!("send to {a}: {}", zdtm::last_err()));
        let got = if inet::wait_for(p253, libc::POLLIN, 5000) {
            let mut b = [0u8; 128];
            // SAFETY: receiving into our buffer.
            let n = unsafe { libc::recv(p253, b.as_mut_ptr().cast(), b.len(), libc::MSG_DONTWAIT) };
            b[..n.max(0) as usize].to_vec()
        } else {
            Vec::new()
        };
        c.check(got.ends_with(b"raw253"), || format!("proto 253 received {got:?}"));
    }
    c.finish()
}
