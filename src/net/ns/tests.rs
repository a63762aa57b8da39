//! The namespace's images both ways in throw-away namespaces (helper
//! threads: a thread's namespace is its own): set one up, dump its
//! images, make a new one from them, dump that one again; the records and
//! what `ip` shows must be the same.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;

use super::*;
use crate::images::pb::NdType;

fn ip(args: &[&str]) -> String {
    let o = Command::new("ip").args(args).output().expect("ip runs");
    assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What `ip` shows of the namespace, without the counters.
fn shown() -> Vec<String> {
    vec![ip(&["-o", "link"]), ip(&["-o", "addr"]), ip(&["route"]), ip(&["rule"])]
}

fn read(dir: &ImageDir) -> (NetnsEntry, Vec<NetDeviceEntry>) {
    let i = Images::read(dir, OWN_NET_NS_ID, false).expect("images");
    (i.netns.expect("netns entry"), i.links)
}

/// Run `f` in a new network namespace of a helper thread (None: the
/// kernel refused one, the reason printed).
fn in_new_netns<T: Send + 'static>(f: impl FnOnce(OwnedFd) -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(move || {
        let back = open_ns("thread-self").expect("our namespace");
        if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWNET) {
            eprintln!("skipped: unshare(CLONE_NEWNET): {e}");
            return None;
        }
        Some(f(back))
    })
    .join()
    .expect("the helper thread")
}

#[test]
fn images_round_trip() {
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: no ip tool here");
        return;
    }
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (p1, p2): (PathBuf, PathBuf) = (d1.path().into(), d2.path().into());
    let first = in_new_netns(move |_| {
        ip(&["link", "set", "lo", "up"]);
        ip(&["addr", "add", "10.77.0.1/24", "dev", "lo"]);
        ip(&["route", "add", "10.78.0.0/16", "via", "10.77.0.2", "dev", "lo"]);
        for (k, v) in [("ipv4/conf/all/forwarding", "1"), ("ipv4/conf/lo/accept_local", "1"), ("unix/max_dgram_qlen", "41")] {
            std::fs::write(format!("/proc/sys/net/{k}"), v).unwrap();
        }
        dump_images(&ImageDir::open(&p1).unwrap(), OWN_NET_NS_ID, 0, None).unwrap();
        shown()
    });
    let Some(first) = first else { return };
    let p1b = d1.path().to_path_buf();
    let second = in_new_netns(move |back| {
        let dir = ImageDir::open(&p1b).unwrap();
        Images::read(&dir, OWN_NET_NS_ID, false).unwrap().setup(&dir, &[], back.as_fd()).unwrap();
        dump_images(&ImageDir::open(&p2).unwrap(), OWN_NET_NS_ID, 0, None).unwrap();
        shown()
    })
    .expect("a second namespace");
    assert_eq!(first, second);
    let (n1, l1) = read(&ImageDir::open(d1.path()).unwrap());
    let (n2, l2) = read(&ImageDir::open(d2.path()).unwrap());
    assert_eq!(n1, n2);
    assert_eq!(l1, l2);
    // What was set is in the records.
    assert_eq!(n1.unix_conf[0].iarg, Some(41));
    let fwd = sysctl::CONF4.iter().position(|k| *k == "forwarding").unwrap();
    assert_eq!(n1.all_conf4[fwd].iarg, Some(1));
    assert_eq!(l1.len(), 1, "only lo: {l1:?}");
    assert_eq!(l1[0].name, "lo");
    let al = sysctl::CONF4.iter().position(|k| *k == "accept_local").unwrap();
    assert_eq!(l1[0].conf4[al].iarg, Some(1));
}

/// `ip -o link` without the carrier and operational state (the kernel
/// works them out after a moment, from the ports' carriers).
fn links_shown() -> String {
    ip(&["-o", "link"])
        .lines()
        .map(|l| {
            let l = l.replace("NO-CARRIER,", "");
            match l.split_once(" state ") {
                Some((a, b)) => format!("{a} {}", b.split_once(' ').map_or("", |x| x.1)),
                None => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn links_round_trip() {
    if Command::new("ip").arg("-V").output().is_err() || !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: no ip tool or no /dev/net/tun here");
        return;
    }
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let d3 = tempfile::tempdir().unwrap();
    let (p1, p2, p3): (PathBuf, PathBuf, PathBuf) = (d1.path().into(), d2.path().into(), d3.path().into());
    let first = in_new_netns(move |_| {
        ip(&["link", "set", "lo", "up"]);
        ip(&["link", "add", "zb0", "address", "02:00:00:00:b0:01", "type", "bridge"]);
        ip(&["link", "add", "zv0", "type", "veth", "peer", "name", "zv1"]);
        ip(&["link", "set", "zv0", "master", "zb0", "up"]);
        ip(&["link", "set", "zb0", "mtu", "1300", "up"]);
        ip(&["link", "add", "zm0", "link", "zv1", "type", "macvlan", "mode", "vepa"]);
        ip(&["tuntap", "add", "zt0", "mode", "tap", "user", "1234"]);
        ip(&["link", "set", "zt0", "master", "zb0"]);
        dump_images(&ImageDir::open(&p1).unwrap(), OWN_NET_NS_ID, 0, None).unwrap();
        let shown = links_shown();
        ip(&["link", "set", "zv0", "type", "bridge_slave", "hairpin", "on"]);
        let port = dump_images(&ImageDir::open(&p3).unwrap(), OWN_NET_NS_ID, 0, None).unwrap_err();
        ip(&["link", "set", "zv0", "type", "bridge_slave", "hairpin", "off"]);
        ip(&["link", "set", "zb0", "type", "bridge", "stp_state", "1"]);
        let refused = dump_images(&ImageDir::open(&p3).unwrap(), OWN_NET_NS_ID, 0, None).unwrap_err();
        (shown, format!("{refused:#} / {port:#}"))
    });
    let Some((first, refused)) = first else { return };
    assert!(refused.contains("(zb0)") && refused.contains("StpState"), "{refused}");
    assert!(refused.contains("(zv0)") && refused.contains("HairpinMode"), "{refused}");
    let p1b = d1.path().to_path_buf();
    let second = in_new_netns(move |back| {
        let dir = ImageDir::open(&p1b).unwrap();
        Images::read(&dir, OWN_NET_NS_ID, false).unwrap().setup(&dir, &[], back.as_fd()).unwrap();
        dump_images(&ImageDir::open(&p2).unwrap(), OWN_NET_NS_ID, 0, None).unwrap();
        links_shown()
    })
    .expect("a second namespace");
    assert_eq!(first, second);
    // The carrier-derived flags (running, lower up) are the kernel's.
    let carrier = (libc::IFF_RUNNING | 0x10000) as u32;
    let strip = |mut l: Vec<NetDeviceEntry>| {
        l.iter_mut().for_each(|n| n.flags &= !carrier);
        l
    };
    let (_, l1) = read(&ImageDir::open(d1.path()).unwrap());
    let (_, l2) = read(&ImageDir::open(d2.path()).unwrap());
    let (l1, l2) = (strip(l1), strip(l2));
    for (a, b) in l1.iter().zip(&l2) {
        assert_eq!(a, b, "{}", a.name);
    }
    assert_eq!(l1.len(), l2.len());
    let by = |n: &str| l1.iter().find(|l| l.name == n).unwrap_or_else(|| panic!("{n} in {l1:?}"));
    assert_eq!(by("zb0").r#type, NdType::Bridge as i32);
    assert_eq!(by("zv0").master, Some(by("zb0").ifindex));
    assert_eq!(by("zv0").peer_ifindex, Some(by("zv1").ifindex));
    assert_eq!(by("zm0").macvlan.as_ref().map(|m| m.mode), Some(2), "vepa");
    let t = by("zt0").tun.as_ref().expect("a tun record");
    assert_eq!((t.owner, t.group, t.flags & 0x0802), (1234, -1, 0x0802), "a persistent tap");
}
