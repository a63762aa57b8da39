//! netns_bridge00 (suid): in a network namespace of its own, the test
//! makes a bridge zb0 (a fixed MAC, MTU 1400, 10.79.0.1/24, up) and a veth
//! pair with both ends inside: zb1 (up) enslaved to zb0, zb2 (a fixed MAC,
//! 10.79.0.2/24, up) not. After the restore, from inside: zb0 is a bridge
//! with its MAC, MTU and address, zb1 is its port, zb1 and zb2 are each
//! other's peers with their MACs and flags, zb2 has its address, `bridge
//! link` lists zb1 in zb0, a socket stays bound to the bridge's address.
//!
//! `--sabotage check`: zb1 leaves the bridge before the checks.

use zdtm::inet;
use zdtm::{run_tool, Checks};

fn link(name: &str) -> String {
    run_tool("ip", &["-o", "-d", "link", "show", name])
}

/// The MAC of `name` (after "link/ether ").
fn mac(name: &str) -> String {
    let l = link(name);
    l.split("link/ether ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or("").to_string()
}

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    run_tool("ip", &["link", "add", "zb0", "address", "02:00:0a:4f:00:01", "type", "bridge"]);
    run_tool("ip", &["link", "add", "zb1", "type", "veth", "peer", "name", "zb2"]);
    run_tool("ip", &["link", "set", "zb2", "address", "02:00:0a:4f:00:02", "up"]);
    run_tool("ip", &["link", "set", "zb1", "master", "zb0", "up"]);
    // Set after the port joined (a bridge's MTU follows its ports' until set).
    run_tool("ip", &["link", "set", "zb0", "mtu", "1400", "up"]);
    run_tool("ip", &["addr", "add", "10.79.0.1/24", "dev", "zb0"]);
    run_tool("ip", &["addr", "add", "10.79.0.2/24", "dev", "zb2"]);
    let mac1 = mac("zb1");
    let rx = inet::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    inet::bind(rx, "10.79.0.1:4700");

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("ip", &["link", "set", "zb1", "nomaster"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let b = link("zb0");
    c.check(b.contains("bridge ") && b.contains("mtu 1400") && b.contains(",UP"), || format!("zb0: {}", b.trim()));
    c.eq("zb0's MAC", mac("zb0"), "02:00:0a:4f:00:01".to_string());
    let p = link("zb1");
    c.check(p.contains("master zb0") && p.contains("zb1@zb2") && p.contains(",UP"), || format!("zb1: {}", p.trim()));
    c.eq("zb1's MAC", mac("zb1"), mac1);
    let q = link("zb2");
    c.check(q.contains("zb2@zb1") && q.contains(",UP") && !q.contains("master"), || format!("zb2: {}", q.trim()));
    c.eq("zb2's MAC", mac("zb2"), "02:00:0a:4f:00:02".to_string());
    for (dev, a) in [("zb0", "10.79.0.1/24"), ("zb2", "10.79.0.2/24")] {
        let s = run_tool("ip", &["-o", "-4", "addr", "show", "dev", dev]);
        c.check(s.contains(a), || format!("{dev} lost {a}: {}", s.trim()));
    }
    let ports = run_tool("bridge", &["link", "show"]);
    c.check(ports.contains("zb1") && ports.contains("master zb0"), || format!("the bridge's ports: {}", ports.trim()));
    c.check(inet::name(rx, false).is_some_and(|a| a.to_string() == "10.79.0.1:4700"), || "the socket on the bridge's address moved".into());
    c.finish()
}
