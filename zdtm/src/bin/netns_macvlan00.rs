//! netns_macvlan00 (suid): in a network namespace of its own, the test
//! makes a veth pair zm0/zm1 (both inside, up) and a macvlan zm2 over zm0
//! (mode private, a fixed MAC, MTU 1400, 10.80.0.1/24, up). After the
//! restore, from inside: zm2 is a macvlan over zm0 in mode private with
//! its MAC, MTU, flags and address; zm0 and zm1 are each other's peers.
//!
//! `--sabotage check`: zm2 goes down before the checks.

use zdtm::{run_tool, Checks};

fn link(name: &str) -> String {
    run_tool("ip", &["-o", "-d", "link", "show", name])
}

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    run_tool("ip", &["link", "add", "zm0", "type", "veth", "peer", "name", "zm1"]);
    run_tool("ip", &["link", "set", "zm0", "up"]);
    run_tool("ip", &["link", "set", "zm1", "up"]);
    run_tool("ip", &["link", "add", "zm2", "link", "zm0", "address", "02:00:0a:50:00:01", "mtu", "1400", "type", "macvlan", "mode", "private"]);
    run_tool("ip", &["link", "set", "zm2", "up"]);
    run_tool("ip", &["addr", "add", "10.80.0.1/24", "dev", "zm2"]);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("ip", &["link", "set", "zm2", "down"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let m = link("zm2");
    for want in ["zm2@zm0", "macvlan mode private", "02:00:0a:50:00:01", "mtu 1400", ",UP"] {
        c.check(m.contains(want), || format!("zm2 lost {want:?}: {}", m.trim()));
    }
    let a = run_tool("ip", &["-o", "-4", "addr", "show", "dev", "zm2"]);
    c.check(a.contains("10.80.0.1/24"), || format!("zm2 lost 10.80.0.1/24: {}", a.trim()));
    let p = link("zm0");
    c.check(p.contains("zm0@zm1") && p.contains("veth"), || format!("zm0: {}", p.trim()));
    let q = link("zm1");
    c.check(q.contains("zm1@zm0"), || format!("zm1: {}", q.trim()));
    c.finish()
}
