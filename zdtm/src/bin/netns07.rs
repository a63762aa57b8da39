//! netns07 (suid, excl, `--veth-pair=zn07i=zn07o`): a network namespace of
//! the test's own with a veth zn07i (up, 10.93.0.2/24, a route to
//! 10.92.0.0/16 via 10.93.0.1) whose peer zn07o, in the namespace the test
//! left, stays down: its routes are saved "linkdown". The restore makes
//! the peer again (down, no bridge) and the routes anyway. After the
//! restore, from inside: the veth with its address and both routes.
//!
//! `--sabotage check`: the route to 10.92.0.0/16 is deleted before the
//! checks.

use zdtm::{run_tool, Checks};

fn main() {
    zdtm::test_init();
    let parent = std::os::unix::process::parent_id().to_string();
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    // A run that just ended may still be taking its pair down.
    let add = ["link", "add", "zn07i", "type", "veth", "peer", "name", "zn07o", "netns", &parent];
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::process::Command::new("ip").args(add).output().map_or(true, |o| !o.status.success()) && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run_tool("ip", &["link", "set", "zn07i", "up"]);
    run_tool("ip", &["addr", "add", "10.93.0.2/24", "dev", "zn07i"]);
    run_tool("ip", &["route", "add", "10.92.0.0/16", "via", "10.93.0.1", "dev", "zn07i"]);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("ip", &["route", "del", "10.92.0.0/16"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let link = run_tool("ip", &["-o", "-d", "link", "show", "zn07i"]);
    c.check(link.contains("veth") && link.contains(",UP"), || format!("zn07i is not an up veth: {}", link.trim()));
    let addrs = run_tool("ip", &["-o", "-4", "addr", "show", "dev", "zn07i"]);
    c.check(addrs.contains("10.93.0.2/24"), || format!("zn07i lost 10.93.0.2/24: {}", addrs.trim()));
    let routes = run_tool("ip", &["route"]);
    c.check(routes.contains("10.92.0.0/16 via 10.93.0.1 dev zn07i"), || format!("the route to 10.92.0.0/16 is gone: {routes:?}"));
    c.check(routes.contains("10.93.0.0/24 dev zn07i"), || format!("the route to 10.93.0.0/24 is gone: {routes:?}"));
    c.finish()
}
