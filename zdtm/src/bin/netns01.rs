//! netns01 (suid, excl, `--veth-pair=zn01i=zn01o@zn01br`): the test makes
//! a network namespace of its own with a veth device zn01i (MTU 1400, a
//! fixed MAC, up, 10.96.0.2/24) whose peer zn01o is in the namespace it
//! left, in the bridge zn01br it made there (criu's namespace: the restore
//! makes the peer there again under the name --veth-pair gives, and puts
//! it in the bridge, up), and a UDP socket bound to 10.96.0.2. After the
//! restore, from inside: zn01i is a veth with the same MAC, MTU, flags
//! and address, its peer in another namespace, and the socket is still
//! bound there and works.
//!
//! `--sabotage check`: zn01i's MTU is changed before the checks.

use zdtm::inet::{self, name};
use zdtm::{run_tool, Checks};

const MAC: &str = "02:00:0a:60:00:02";
const BRIDGE: &str = "zn01br";

/// Run `ip ARGS` in the network namespace of `pid`.
fn ip_in(pid: &str, args: &[&str]) -> String {
    let mut a = vec!["-t", pid, "-n", "ip"];
    a.extend_from_slice(args);
    run_tool("nsenter", &a)
}

fn main() {
    zdtm::test_init();
    let parent = std::os::unix::process::parent_id().to_string();
    // The bridge outside (kept from an earlier run that failed).
    let _ = std::process::Command::new("nsenter").args(["-t", &parent, "-n", "ip", "link", "add", BRIDGE, "type", "bridge"]).output();
    ip_in(&parent, &["link", "set", BRIDGE, "up"]);
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    // The peer goes to our parent's namespace: the one we left. A run
    // that just ended may still be taking its pair down.
    let add = ["link", "add", "zn01i", "type", "veth", "peer", "name", "zn01o", "netns", &parent];
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::process::Command::new("ip").args(add).output().map_or(true, |o| !o.status.success()) && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run_tool("ip", &["link", "show", "zn01i"]);
    run_tool("ip", &["link", "set", "zn01i", "address", MAC, "mtu", "1400", "up"]);
    ip_in(&parent, &["link", "set", "zn01o", "master", BRIDGE, "up"]);
    run_tool("ip", &["addr", "add", "10.96.0.2/24", "dev", "zn01i"]);
    let u = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    inet::set_opt(u, libc::SOL_IP, libc::IP_FREEBIND, 1, "IP_FREEBIND");
    inet::bind(u, "10.96.0.2:0");
    let addr = name(u, false);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("ip", &["link", "set", "zn01i", "mtu", "1300"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let link = run_tool("ip", &["-o", "-d", "link", "show", "zn01i"]);
    c.check(link.contains("veth"), || format!("zn01i is not a veth: {}", link.trim()));
    c.check(link.contains(MAC), || format!("zn01i lost its MAC {MAC}: {}", link.trim()));
    c.check(link.contains("mtu 1400 "), || format!("zn01i lost its MTU 1400: {}", link.trim()));
    c.check(link.contains(",UP"), || format!("zn01i is not up: {}", link.trim()));
    c.check(link.contains("link-netnsid"), || format!("zn01i's peer is not in another namespace: {}", link.trim()));
    let addrs = run_tool("ip", &["-o", "-4", "addr", "show", "dev", "zn01i"]);
    c.check(addrs.contains("10.96.0.2/24"), || format!("zn01i lost 10.96.0.2/24: {}", addrs.trim()));
    c.eq("UDP socket address", name(u, false), addr);
    // Sent to itself over the restored address.
    if let Some(a) = addr {
        let sa = std::net::UdpSocket::bind("10.96.0.2:0").and_then(|x| x.send_to(b"netns01", a));
        let mut buf = [0u8; 16];
        // SAFETY: recv into our buffer, non-blocking.
        let n = unsafe { libc::recv(u, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        let n = if n < 0 && inet::wait_for(u, libc::POLLIN, 2000) {
            // SAFETY: as above.
            unsafe { libc::recv(u, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) }
        } else {
            n
        };
        c.check(sa.is_ok() && n == 7 && &buf[..7] == b"netns01", || format!("a datagram to {a} did not arrive ({sa:?}, {n})"));
    }
    // The bridge goes (the pair goes with our namespace).
    let parent = std::os::unix::process::parent_id().to_string();
    let _ = std::process::Command::new("nsenter").args(["-t", &parent, "-n", "ip", "link", "del", BRIDGE]).output();
    c.finish()
}
