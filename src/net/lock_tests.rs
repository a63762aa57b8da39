//! The lock on a live loopback connection, in a network namespace the test
//! makes (the host's rules and traffic are untouched): while locked, data
//! sent does not arrive; once unlocked, TCP retransmits it and it does.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::lock::{Conn, Method, NetLock};
use super::lock_cmd;

/// Why the test can't run here, if it can't.
fn missing(tool: &str) -> Option<String> {
    let ok = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    (!ok).then(|| format!("{tool} is not installed"))
}

/// Run `f` on a thread in a new network namespace with lo up (commands it
/// spawns run there too).
fn in_netns(f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::spawn(move || -> Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        let up = Command::new("ip").args(["link", "set", "lo", "up"]).status();
        if !up.is_ok_and(|s| s.success()) {
            return Err("ip link set lo up failed (no iproute2?)".into());
        }
        f();
        Ok(())
    })
    .join()
    .expect("the netns thread panicked")
}

/// Whether `n` bytes arrive on `s` within `wait`.
fn arrives(s: &mut TcpStream, n: usize, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).is_ok()
}

fn locks_and_unlocks(method: Method) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut server, _) = l.accept().unwrap();
    let (me, peer) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
    client.write_all(b"before").unwrap();
    assert!(arrives(&mut server, 6, Duration::from_secs(2)), "{method:?}: no traffic even before the lock");

    let conn = Conn { src: me.ip(), sport: me.port(), dst: peer.ip(), dport: peer.port() };
    let mut lock = NetLock::new(method, &format!("test-{}", std::process::id()));
    lock.lock(&conn).unwrap();
    assert!(lock.taken());
    client.write_all(b"locked").unwrap();
    assert!(!arrives(&mut server, 6, Duration::from_millis(700)), "{method:?}: a packet passed the lock");
    server.write_all(b"back").unwrap();
    assert!(!arrives(&mut client, 4, Duration::from_millis(300)), "{method:?}: a packet passed the lock the other way");

    lock.unlock().unwrap();
    assert!(!lock.taken());
    // TCP retransmits what was dropped.
    assert!(arrives(&mut server, 6, Duration::from_secs(10)), "{method:?}: nothing passed after the unlock");
    assert!(arrives(&mut client, 4, Duration::from_secs(10)), "{method:?}: nothing passed back after the unlock");
    if method == Method::Nftables {
        assert!(!lock_cmd::nft_has_table(&super::lock::table_name(&format!("test-{}", std::process::id()))), "the table outlived the unlock");
    }
}

#[test]
fn nftables_lock_drops_a_loopback_connection_until_unlocked() {
    if let Some(why) = missing("nft") {
        println!("skipped: {why}");
        return;
    }
    if let Err(why) = in_netns(|| locks_and_unlocks(Method::Nftables)) {
        println!("skipped: {why}");
    }
}

#[test]
fn iptables_lock_drops_a_loopback_connection_until_unlocked() {
    if let Some(why) = missing("iptables") {
        println!("skipped: {why}");
        return;
    }
    if let Err(why) = in_netns(|| locks_and_unlocks(Method::Iptables)) {
        println!("skipped: {why}");
    }
}

#[test]
fn table_names_are_cut_as_criu_4_2_cuts_them() {
    // Seen in a CRIU 4.2 restore log: "delete table inet CRIU-a8b9a1d2-bd71-46e2-8b".
    assert_eq!(super::lock::table_name("a8b9a1d2-bd71-46e2-8b5e-0123456789ab"), "inet CRIU-a8b9a1d2-bd71-46e2-8b");
    assert_eq!(super::lock::table_name("4242"), "inet CRIU-4242");
}

#[test]
fn skip_locks_nothing() {
    let mut lock = NetLock::new(Method::Skip, "x");
    let c = Conn { src: IpAddr::V4(Ipv4Addr::LOCALHOST), sport: 1, dst: IpAddr::V4(Ipv4Addr::LOCALHOST), dport: 2 };
    lock.lock(&c).unwrap();
    lock.unlock().unwrap();
}

#[test]
fn methods_parse_and_map_as_criu() {
    assert_eq!(Method::from_opt(None).unwrap(), Method::Iptables);
    for (n, m, inv) in [("iptables", Method::Iptables, 0), ("nftables", Method::Nftables, 1), ("skip", Method::Skip, 2)] {
        assert_eq!(Method::from_opt(Some(n)).unwrap(), m);
        assert_eq!(m.inventory(), inv);
        assert_eq!(Method::from_inventory(Some(inv)).unwrap(), m);
        assert_eq!(m.name(), n);
    }
    assert!(Method::from_opt(Some("pf")).is_err());
    assert!(Method::from_inventory(Some(7)).is_err());
    assert_eq!(Method::from_inventory(None).unwrap(), Method::Iptables);
}

#[test]
fn connections_are_connected_tcp_dumped_with_state() {
    use crate::images::pb::{FileEntry, InetSkEntry};
    let isk = |proto: u32, state: u32, dport: u32| FileEntry {
        isk: Some(InetSkEntry {
            family: libc::AF_INET as u32,
            proto,
            state,
            src_port: 5000,
            dst_port: dport,
            src_addr: vec![u32::from_ne_bytes([127, 0, 0, 1])],
            dst_addr: vec![u32::from_ne_bytes([10, 0, 0, 2])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let files = [isk(6, 1, 80), isk(6, 10, 0), isk(6, 7, 0), isk(17, 1, 53)];
    let c = super::lock::connections(&files, false);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].to_string(), "127.0.0.1 5000 - 10.0.0.2 80");
    assert!(super::lock::connections(&files, true).is_empty());
    let script = lock_cmd::nft_conn_script("inet CRIU-x", &c[0]);
    assert!(script.contains("conns4 { 127.0.0.1 . 5000 . 10.0.0.2 . 80 }"), "{script}");
    assert!(script.contains("conns4 { 10.0.0.2 . 80 . 127.0.0.1 . 5000 }"), "{script}");
}
