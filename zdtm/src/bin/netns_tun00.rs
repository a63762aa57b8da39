//! netns_tun00 (suid): in a network namespace of its own, the test holds
//! a tun file attached to the non-persistent tun device zt0 (IFF_TUN |
//! IFF_NO_PI, send buffer 123456, vnet header size 12, 10.77.0.1/24, up)
//! and made a persistent tap device zt1 (owner 1234, group 2345, a fixed
//! MAC, 10.78.0.1/24) that no file holds, and two files attached to the
//! multi-queue tap zt2, the second one's queue disabled (IFF_DETACH_QUEUE).
//! After the restore, from inside:
//! the file is still attached to zt0 with the same flags (not persistent),
//! send buffer and header size; zt1 is a persistent tap with its owner,
//! group and MAC; zt2's files are attached with their flags, the second
//! one's queue still disabled; zt0 and zt1 have their addresses; a datagram sent to
//! 10.77.0.2 comes out of the tun file, and a packet written into it
//! reaches a socket bound to 10.77.0.1.
//!
//! `--sabotage check`: zt0's address is removed before the checks.

use std::os::fd::RawFd;

use zdtm::inet;
use zdtm::{run_tool, Checks};

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

fn ifreq(name: &str, flags: i32) -> IfReq {
    let mut r = IfReq { name: [0; 16], flags: flags as i16, _pad: [0; 22] };
    r.name[..name.len()].copy_from_slice(name.as_bytes());
    r
}

fn get_iff(fd: RawFd) -> (String, u32) {
    let mut r = ifreq("", 0);
    // SAFETY: the kernel writes one struct ifreq (40 bytes) into `r`.
    if unsafe { libc::ioctl(fd, libc::TUNGETIFF as _, &mut r as *mut IfReq) } != 0 {
        return (format!("TUNGETIFF: {}", zdtm::last_err()), 0);
    }
    let n: Vec<u8> = r.name.iter().take_while(|&&c| c != 0).copied().collect();
    (String::from_utf8_lossy(&n).into_owned(), r.flags as u16 as u32)
}

fn get_int(fd: RawFd, req: libc::Ioctl) -> i32 {
    let mut v: libc::c_int = -1;
    // SAFETY: the kernel writes one int into `v`.
    unsafe { libc::ioctl(fd, req as _, &mut v as *mut libc::c_int) };
    v
}

fn set_int(fd: RawFd, req: libc::Ioctl, v: i32, what: &str) {
    // SAFETY: the kernel reads one int from `v`.
    if unsafe { libc::ioctl(fd, req as _, &v as *const libc::c_int) } != 0 {
        zdtm::fail(&format!("{what}: {}", zdtm::last_err()));
    }
}

/// The internet checksum of `b`.
fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4 UDP packet from 10.77.0.2:4000 to 10.77.0.1:`port` with `data`.
fn packet(port: u16, data: &[u8]) -> Vec<u8> {
    let len = 20 + 8 + data.len();
    let mut p = vec![0x45, 0, (len >> 8) as u8, len as u8, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1];
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let ul = 8 + data.len();
    p.extend_from_slice(&4000u16.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&(ul as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(data);
    p
}

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    let tun = zdtm::open_or_fail(std::path::Path::new("/dev/net/tun"), libc::O_RDWR | libc::O_NONBLOCK);
    let r = ifreq("zt0", libc::IFF_TUN | libc::IFF_NO_PI);
    // SAFETY: the kernel reads one struct ifreq from `r`.
    if unsafe { libc::ioctl(tun, libc::TUNSETIFF as _, &r as *const IfReq) } != 0 {
        zdtm::skip(&format!("TUNSETIFF: {}", zdtm::last_err()));
    }
    set_int(tun, libc::TUNSETSNDBUF, 123456, "TUNSETSNDBUF");
    set_int(tun, libc::TUNSETVNETHDRSZ, 12, "TUNSETVNETHDRSZ");
    run_tool("ip", &["addr", "add", "10.77.0.1/24", "dev", "zt0"]);
    run_tool("ip", &["link", "set", "zt0", "up"]);
    run_tool("ip", &["tuntap", "add", "zt1", "mode", "tap", "user", "1234", "group", "2345"]);
    run_tool("ip", &["link", "set", "zt1", "address", "02:00:0a:4e:00:01"]);
    run_tool("ip", &["addr", "add", "10.78.0.1/24", "dev", "zt1"]);
    // A multi-queue tap zt2 with two queues, the second one disabled.
    let q: Vec<RawFd> = (0..2).map(|_| zdtm::open_or_fail(std::path::Path::new("/dev/net/tun"), libc::O_RDWR)).collect();
    for &f in &q {
        let r = ifreq("zt2", libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE);
        // SAFETY: the kernel reads one struct ifreq from `r`.
        if unsafe { libc::ioctl(f, libc::TUNSETIFF as _, &r as *const IfReq) } != 0 {
            zdtm::fail(&format!("TUNSETIFF zt2: {}", zdtm::last_err()));
        }
    }
    let r = ifreq("", libc::IFF_DETACH_QUEUE);
    // SAFETY: the kernel reads one struct ifreq from `r`.
    if unsafe { libc::ioctl(q[1], libc::TUNSETQUEUE as _, &r as *const IfReq) } != 0 {
        zdtm::fail(&format!("TUNSETQUEUE: {}", zdtm::last_err()));
    }
    let qflags: Vec<(String, u32)> = q.iter().map(|&f| get_iff(f)).collect();
    let (name0, flags0) = get_iff(tun);
    let rx = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    inet::bind(rx, "10.77.0.1:4500");

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("ip", &["addr", "del", "10.77.0.1/24", "dev", "zt0"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let (name, flags) = get_iff(tun);
    c.eq("the tun file's device", name, name0);
    c.eq("the tun file's flags", flags, flags0);
    c.check(flags & libc::IFF_PERSIST as u32 == 0, || format!("zt0 became persistent (flags {flags:#x})"));
    c.eq("TUNGETSNDBUF", get_int(tun, libc::TUNGETSNDBUF), 123456);
    let now: Vec<(String, u32)> = q.iter().map(|&f| get_iff(f)).collect();
    c.eq("zt2's queues (device, flags)", now.clone(), qflags);
    c.check(now[1].1 & libc::IFF_DETACH_QUEUE as u32 != 0 && now[0].1 & libc::IFF_DETACH_QUEUE as u32 == 0, || format!("zt2's queues: {now:?}"));
    c.eq("TUNGETVNETHDRSZ", get_int(tun, libc::TUNGETVNETHDRSZ), 12);
    let t1 = run_tool("ip", &["-o", "-d", "link", "show", "zt1"]);
    for want in ["tun type tap", "persist on", "user 1234", "group 2345", "02:00:0a:4e:00:01"] {
        c.check(t1.contains(want), || format!("zt1 lost {want:?}: {}", t1.trim()));
    }
    let t0 = run_tool("ip", &["-o", "-d", "link", "show", "zt0"]);
    c.check(t0.contains("tun type tun") && t0.contains("persist off") && t0.contains(",UP"), || format!("zt0: {}", t0.trim()));
    let a0 = run_tool("ip", &["-o", "-4", "addr", "show", "dev", "zt0"]);
    c.check(a0.contains("10.77.0.1/24"), || format!("zt0 lost 10.77.0.1/24: {}", a0.trim()));
    let a1 = run_tool("ip", &["-o", "-4", "addr", "show", "dev", "zt1"]);
    c.check(a1.contains("10.78.0.1/24"), || format!("zt1 lost 10.78.0.1/24: {}", a1.trim()));
    // Out through the tun file: a datagram routed to zt0.
    let tx = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    let to = inet::raw_addr(&"10.77.0.2:4600".parse().expect("an address"));
    let msg = b"out of the tun";
    // SAFETY: the address and the message are live locals of the given lengths.
    let sent = unsafe { libc::sendto(tx, msg.as_ptr().cast(), msg.len(), 0, (&to.0 as *const libc::sockaddr_storage).cast(), to.1) };
    c.check(sent == msg.len() as isize, || format!("sendto 10.77.0.2: {}", zdtm::last_err()));
    let mut buf = [0u8; 2048];
    let mut got = None;
    for _ in 0..200 {
        // SAFETY: the kernel writes at most buf.len() bytes into `buf`.
        let n = unsafe { libc::read(tun, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let p = &buf[..n as usize];
            if p.len() >= 28 && p[9] == 17 && p[16..20] == [10, 77, 0, 2] {
                got = Some(p[28..].to_vec());
                break;
            }
            continue;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    c.eq("the datagram read from the tun file", got, Some(msg.to_vec()));
    // In through the tun file: a packet to the socket on 10.77.0.1:4500.
    let p = packet(4500, b"into the tun");
    // SAFETY: `p` is a live buffer of p.len() bytes.
    let w = unsafe { libc::write(tun, p.as_ptr().cast(), p.len()) };
    c.check(w == p.len() as isize, || format!("write into the tun file: {}", zdtm::last_err()));
    let got = inet::wait_for(rx, libc::POLLIN, 2000).then(|| {
        // SAFETY: the kernel writes at most buf.len() bytes into `buf`.
        let n = unsafe { libc::recv(rx, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        buf[..n.max(0) as usize].to_vec()
    });
    c.eq("the datagram written into the tun file", got, Some(b"into the tun".to_vec()));
    c.finish()
}
