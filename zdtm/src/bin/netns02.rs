//! netns02 (suid): firewall rules and sysctls of a network namespace of
//! the test's own: an iptables rule (INPUT, tcp dport 9, DROP), an
//! ip6tables one (OUTPUT, udp dport 9, DROP), a native nftables table
//! (inet zdtm02, an output chain dropping udp dport 7), and sysctls: ipv4
//! "default" rp_filter 2, ipv6 "all" hop_limit 33, lo's ipv4 accept_local
//! 1, the ping group range "0 1000". After the restore, from inside: every
//! rule, table and value is there, and the dump's network lock (the CRIU
//! chain) is not.
//!
//! `--sabotage check`: the nftables table is deleted before the checks.

use zdtm::{run_tool, Checks};

const SYSCTLS: &[(&str, &str)] = &[
    ("ipv4/conf/default/rp_filter", "2"),
    ("ipv6/conf/all/hop_limit", "33"),
    ("ipv4/conf/lo/accept_local", "1"),
    ("ipv4/ping_group_range", "0\t1000"),
];

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    run_tool("iptables", &["-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"]);
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        run_tool("ip6tables", &["-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "DROP"]);
    }
    run_tool("nft", &["add table inet zdtm02"]);
    run_tool("nft", &["add chain inet zdtm02 out { type filter hook output priority 10 ; }"]);
    run_tool("nft", &["add rule inet zdtm02 out udp dport 7 drop"]);
    for (k, v) in SYSCTLS {
        if let Err(e) = std::fs::write(format!("/proc/sys/net/{k}"), v) {
            zdtm::fail(&format!("net/{k}: {e}"));
        }
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("nft", &["delete table inet zdtm02"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let v4 = run_tool("iptables", &["-S"]);
    c.check(v4.contains("-A INPUT -p tcp -m tcp --dport 9 -j DROP"), || format!("the iptables rule is gone: {v4:?}"));
    c.check(!v4.contains("CRIU"), || format!("the network lock is still there: {v4:?}"));
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        let v6 = run_tool("ip6tables", &["-S"]);
        c.check(v6.contains("-A OUTPUT -p udp -m udp --dport 9 -j DROP"), || format!("the ip6tables rule is gone: {v6:?}"));
        c.check(!v6.contains("CRIU"), || format!("the ipv6 network lock is still there: {v6:?}"));
    }
    let nft = std::process::Command::new("nft").args(["list", "table", "inet", "zdtm02"]).output();
    let nft = nft.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    c.check(nft.contains("hook output priority filter + 10") && nft.contains("udp dport 7 drop"), || format!("the nftables table is not as made: {nft:?}"));
    for (k, v) in SYSCTLS {
        let got = std::fs::read_to_string(format!("/proc/sys/net/{k}")).map(|s| s.trim_end().to_string()).unwrap_or_else(|e| e.to_string());
        c.eq(&format!("net/{k}"), got, v.to_string());
    }
    c.finish()
}
