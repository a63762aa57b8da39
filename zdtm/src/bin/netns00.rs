//! netns00 (suid): the test makes a network namespace of its own: lo up,
//! 10.99.0.1/24 on it, a route to 10.98.0.0/16 via 10.99.0.2, a TCP
//! listener on 10.99.0.1, a unix datagram queue length of 37 and
//! ipv4 forwarding on. After the restore, from inside: still in a
//! namespace other than the host's, lo up with the address and the
//! route, both sysctls, the listener (same address) accepts a new
//! connection to 10.99.0.1, and an fd open on /proc/self/ns/net is the
//! file of the namespace the task is in.
//!
//! `--sabotage check`: the address is removed before the checks.

use std::net::SocketAddr;

use zdtm::inet::{self, listener_works, name};
use zdtm::{run_tool, Checks};

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_net();
    run_tool("ip", &["link", "set", "lo", "up"]);
    run_tool("ip", &["addr", "add", "10.99.0.1/24", "dev", "lo"]);
    run_tool("ip", &["route", "add", "10.98.0.0/16", "via", "10.99.0.2", "dev", "lo"]);
    std::fs::write("/proc/sys/net/unix/max_dgram_qlen", "37").unwrap_or_else(|e| zdtm::fail(&format!("max_dgram_qlen: {e}")));
    std::fs::write("/proc/sys/net/ipv4/conf/all/forwarding", "1").unwrap_or_else(|e| zdtm::fail(&format!("forwarding: {e}")));
    let l = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    inet::bind(l, "10.99.0.1:0");
    inet::listen(l, 4);
    let addr = name(l, false);
    // A file of the namespace (ns_file_entry with the namespace's id).
    let nsf = zdtm::open_or_fail(std::path::Path::new("/proc/self/ns/net"), libc::O_RDONLY);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("ip", &["addr", "del", "10.99.0.1/24", "dev", "lo"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let link = run_tool("ip", &["-o", "link", "show", "lo"]);
    c.check(link.contains("UP"), || format!("lo is not up: {}", link.trim()));
    let addrs = run_tool("ip", &["-o", "-4", "addr", "show", "dev", "lo"]);
    c.check(addrs.contains("10.99.0.1/24"), || format!("lo lost 10.99.0.1/24: {}", addrs.trim()));
    c.check(addrs.contains("127.0.0.1/8"), || format!("lo lost 127.0.0.1/8: {}", addrs.trim()));
    let route = run_tool("ip", &["route", "show", "10.98.0.0/16"]);
    c.check(route.contains("via 10.99.0.2"), || format!("the route to 10.98.0.0/16 is gone: {route:?}"));
    let rd = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_else(|e| e.to_string());
    c.eq("net.unix.max_dgram_qlen", rd("/proc/sys/net/unix/max_dgram_qlen"), "37".to_string());
    c.eq("net.ipv4.conf.all.forwarding", rd("/proc/sys/net/ipv4/conf/all/forwarding"), "1".to_string());
    c.eq("listener address", name(l, false), addr);
    let link = |p: &str| std::fs::read_link(p).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    c.eq("the fd on /proc/self/ns/net", link(&format!("/proc/self/fd/{nsf}")), zdtm::netns_link());
    match addr {
        Some(a) => {
            let to: SocketAddr = a;
            if let Err(e) = listener_works(l, &to) {
                c.check(false, || format!("the listener on {to}: {e}"));
            }
        }
        None => c.check(false, || "the listener had no address".into()),
    }
    c.finish()
}
