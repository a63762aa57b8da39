//! netns_ipip00 (suid, crfail): in a network namespace of its own, the test
//! makes a ipip tunnel zipip0 (local 10.82.0.1, remote 10.82.0.2, ttl 64,
//! 10.82.1.1/24, up). ipip links are refused by name at dump (not carried
//! yet), the task left running: after the failed dump, from inside, the
//! tunnel is still there with its endpoints, ttl and address. Skipped
//! where the kernel has no ipip tunnels.
//!
//! `--sabotage check`: the tunnel's address is removed before the checks.

use zdtm::{run_tool, Checks};

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    let add = ["link", "add", "zipip0", "type", "ipip", "local", "10.82.0.1", "remote", "10.82.0.2", "ttl", "64"];
    match std::process::Command::new("ip").args(add).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => zdtm::skip(&format!("no ipip tunnels here: ip {}: {}", add.join(" "), String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => zdtm::skip(&format!("ip can't run here: {e}")),
    }
    run_tool("ip", &["addr", "add", "10.82.1.1/24", "dev", "zipip0"]);
    run_tool("ip", &["link", "set", "zipip0", "up"]);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("ip", &["addr", "del", "10.82.1.1/24", "dev", "zipip0"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let l = run_tool("ip", &["-o", "-d", "link", "show", "zipip0"]);
    for want in ["remote 10.82.0.2", "local 10.82.0.1", "ttl 64", ",UP"] {
        c.check(l.contains(want), || format!("zipip0 lost {want:?}: {}", l.trim()));
    }
    let a = run_tool("ip", &["-o", "-4", "addr", "show", "dev", "zipip0"]);
    c.check(a.contains("10.82.1.1/24"), || format!("zipip0 lost 10.82.1.1/24: {}", a.trim()));
    c.finish()
}
