//! The network lock through the real binary, in a network namespace each
//! test makes (criu and the target both run in it; the host's rules and
//! traffic are untouched). A python target holds a loopback connection
//! (both ends) and counts the bytes that cross it.
//!
//! - A tree in criu's own net namespace runs no `network-lock` or
//!   `network-unlock` script (CRIU 4.2 runs them for a dumped net
//!   namespace only): pre-dump, post-dump, whatever --network-lock says;
//!   a connection under --tcp-close is not locked (CRIU: "don't dump the
//!   state of, or block").
//! - A dump that fails after taking the lock (CRIU_FAULT=8) releases it:
//!   no rule or table is left and the connection carries on. It needs a
//!   connection dumped with its state (--tcp-established); while the dump
//!   refuses those, the test says it skipped.

mod common;

use common::{serial, Target};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const TARGET: &str = r#"
import socket, sys, time, os
d = sys.argv[1]
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname())
s, _ = l.accept()
s.settimeout(0.2)
n = 0
open(d + "/ready", "w").close()
while True:
    try:
        c.send(b"x")
        n += len(s.recv(4096))
        with open(d + "/count.tmp", "w") as f:
            f.write(str(n))
        os.rename(d + "/count.tmp", d + "/count")
    except (socket.timeout, BlockingIOError):
        pass
    time.sleep(0.05)
"#;

/// Run `f` on a thread in a new net namespace with lo up; Err: why not.
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

fn has(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn count(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("count")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Whether the target's byte count grows within a few seconds.
fn flows(dir: &Path) -> bool {
    let n = count(dir);
    (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        count(dir) > n
    })
}

/// The netfilter state of this namespace: nft's tables and iptables' rules.
fn netfilter() -> String {
    let mut s = String::new();
    for (cmd, args) in [("nft", &["list", "ruleset"][..]), ("iptables", &["-S"][..]), ("ip6tables", &["-S"][..])] {
        if let Ok(o) = Command::new(cmd).args(args).output() {
            s.push_str(&String::from_utf8_lossy(&o.stdout));
        }
    }
    s
}

fn recording_script(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("rec.sh");
    let rec = dir.join("calls");
    std::fs::write(&p, format!("#!/bin/sh\necho \"$CRTOOLS_SCRIPT_ACTION\" >> {}\nexit 0\n", rec.display())).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

fn criu(args: &[&str], imgs: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = common::criu_cmd()
        .args(args)
        .args(["-D", imgs.to_str().unwrap(), "-v4", "-o", "dump.log", "--no-default-config"])
        .env_remove("CRIU_CONFIG_FILE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), std::fs::read_to_string(imgs.join("dump.log")).unwrap_or_default())
}

/// The target in this thread's namespace, its dir, its images dir.
fn start(py: &str) -> (Target, tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let t = Target::spawn(py, &["-c", TARGET, tmp.path().to_str().unwrap()], Some(&tmp.path().join("ready")));
    assert!(flows(tmp.path()), "the target's connection carries nothing");
    (t, tmp, imgs)
}

#[test]
fn no_network_lock_scripts_and_no_lock_for_a_tcp_close_tree_in_criu_s_namespace() {
    let _g = serial();
    let Some(py) = common::python() else { return };
    if !has("nft") {
        println!("skipped: nft is not installed");
        return;
    }
    let py = py.to_string();
    let r = in_netns(move || {
        for method in ["nftables", "iptables", "skip"] {
            let (t, tmp, imgs) = start(&py);
            let s = recording_script(tmp.path());
            let before = netfilter();
            let pid = t.child.id().to_string();
            let args = ["dump", "-t", &pid, "-R", "--tcp-close", "--network-lock", method, "--action-script", s.to_str().unwrap()];
            let (code, log) = criu(&args, &imgs, &[]);
            assert_eq!(code, 0, "{method}: {log}");
            let calls = std::fs::read_to_string(tmp.path().join("calls")).unwrap();
            assert_eq!(calls.lines().collect::<Vec<_>>(), ["pre-dump", "post-dump"], "{method}");
            assert!(!log.contains("locked connection"), "{method}: a --tcp-close connection was locked:\n{log}");
            assert_eq!(netfilter(), before, "{method}: the dump left netfilter changed");
            let inv = criu::images::inventory::read(&criu::images::ImageDir::open(&imgs).unwrap()).unwrap();
            let want = criu::net::lock::Method::from_opt(Some(method)).unwrap().inventory();
            assert_eq!(inv.network_lock_method, Some(want), "{method}: inventory.img");
            assert!(flows(tmp.path()), "{method}: the connection stopped after the dump");
        }
    });
    if let Err(why) = r {
        println!("skipped: {why}");
    }
}

#[test]
fn a_dump_failing_after_the_lock_releases_it_and_the_connection_carries_on() {
    let _g = serial();
    let Some(py) = common::python() else { return };
    let py = py.to_string();
    let r = in_netns(move || {
        for method in ["nftables", "iptables"] {
            let tool = if method == "nftables" { "nft" } else { "iptables" };
            if !has(tool) {
                println!("{method}: skipped: {tool} is not installed");
                continue;
            }
            let (t, tmp, imgs) = start(&py);
            if method == "iptables" {
                // Rules added and deleted again leave iptables' empty filter
                // table behind on an nf_tables backend (so does CRIU 4.2's
                // lock): made here first, only leftover rules count.
                for op in ["-A", "-D"] {
                    let _ = Command::new("iptables").args([op, "INPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]).status();
                    let _ = Command::new("iptables").args([op, "OUTPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]).status();
                }
            }
            let before = netfilter();
            let pid = t.child.id().to_string();
            let args = ["dump", "-t", &pid, "--tcp-established", "--network-lock", method];
            let (code, log) = criu(&args, &imgs, &[("CRIU_FAULT", "8")]);
            assert_ne!(code, 0, "{method}: the fault did not fail the dump:\n{log}");
            assert!(common::alive(t.child.id() as i32), "{method}: the failed dump killed the task");
            if !log.contains("locked connection") {
                println!("{method}: skipped: the dump took no lock (established TCP is refused before it):\n{}", log.lines().filter(|l| l.contains("Error")).collect::<Vec<_>>().join("\n"));
                continue;
            }
            assert!(log.contains("fault injected at stage Locked"), "{method}: {log}");
            assert_eq!(netfilter(), before, "{method}: the failed dump left its lock:\n{log}");
            assert!(flows(tmp.path()), "{method}: the connection stopped after the failed dump");
        }
    });
    if let Err(why) = r {
        println!("skipped: {why}");
    }
}

#[test]
fn restore_releases_the_nftables_table_the_dump_left_and_runs_no_unlock_script() {
    let _g = serial();
    if !has("nft") {
        println!("skipped: nft is not installed");
        return;
    }
    let r = in_netns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let imgs = tmp.path().join("imgs");
        std::fs::create_dir(&imgs).unwrap();
        let s = recording_script(tmp.path());
        let mut t = Target::sleeper();
        let pid = t.pid();
        let (code, log) = criu(&["dump", "-t", &pid.to_string(), "--network-lock", "nftables"], &imgs, &[]);
        assert_eq!(code, 0, "{log}");
        t.reap();
        // The lock a dump of a connection leaves behind (no connection is
        // dumped with its state yet): its table, by the dump's run id.
        let inv = criu::images::inventory::read(&criu::images::ImageDir::open(&imgs).unwrap()).unwrap();
        assert_eq!(inv.network_lock_method, Some(1));
        let table = criu::net::lock::table_name(inv.dump_criu_run_id.as_deref().unwrap());
        let add = Command::new("nft").args(["add", "table"]).args(table.split(' ')).status().unwrap();
        assert!(add.success());
        let other = Command::new("nft").args(["add", "table", "inet", "CRIU-someone-else"]).status().unwrap();
        assert!(other.success());
        let out = common::criu_cmd()
            .args(["restore", "-d", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log", "--no-default-config"])
            .args(["--action-script", s.to_str().unwrap()])
            .env_remove("CRIU_CONFIG_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = std::fs::read_to_string(imgs.join("restore.log")).unwrap_or_default();
        assert!(out.status.success(), "restore: {log}");
        common::kill_and_reap(pid);
        let tables = netfilter();
        assert!(!tables.contains(&format!("table {table} ")), "the restore left the lock's table:\n{tables}\n{log}");
        assert!(tables.contains("CRIU-someone-else"), "the restore deleted another table:\n{tables}");
        let calls = std::fs::read_to_string(tmp.path().join("calls")).unwrap();
        assert_eq!(calls.lines().collect::<Vec<_>>(), ["pre-restore", "post-restore", "pre-resume", "post-resume"]);
        let at = |s: &str| log.find(s).unwrap_or_else(|| panic!("{s} not in\n{log}"));
        assert!(at("Unlock network") < at("pre-resume"), "{log}");
    });
    if let Err(why) = r {
        println!("skipped: {why}");
    }
}

#[test]
fn our_restore_releases_the_iptables_lock_criu_4_2_left_on_its_dump() {
    let _g = serial();
    let (Some(py), Some(criu42)) = (common::python(), common::criu42()) else {
        println!("skipped: no python or no CRIU 4.2");
        return;
    };
    if !has("iptables") {
        println!("skipped: iptables is not installed");
        return;
    }
    let py = py.to_string();
    let r = in_netns(move || {
        let (mut t, _tmp, imgs) = start(&py);
        let before = netfilter();
        let pid = t.child.id() as i32;
        let out = Command::new(&criu42)
            .args(["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap(), "-v4", "-o", "dump.log", "--tcp-established"])
            .args(["--shell-job", "--network-lock", "iptables"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = std::fs::read_to_string(imgs.join("dump.log")).unwrap_or_default();
        if !out.status.success() {
            println!("skipped: CRIU 4.2's dump failed: {}", log.lines().filter(|l| l.contains("Error")).collect::<Vec<_>>().join(" | "));
            return;
        }
        let _ = t.child.wait();
        let locked = netfilter();
        assert!(locked.contains("0xC114") || locked.contains("0xc114"), "CRIU 4.2 took no iptables lock:\n{locked}");
        // Ours brings the connection back closed; the lock goes all the same.
        let out = common::criu_cmd()
            .args(["restore", "-d", "--tcp-close", "--shell-job", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let rlog = std::fs::read_to_string(imgs.join("restore.log")).unwrap_or_default();
        assert!(out.status.success(), "restore: {rlog}");
        common::kill_and_reap(pid);
        let after = netfilter();
        assert!(!after.contains("0xC114") && !after.contains("0xc114"), "the lock outlived our restore:\n{after}\n(before the dump:\n{before})");
    });
    if let Err(why) = r {
        println!("skipped: {why}");
    }
}

/// Hold pid `pid` with a sleeping process (ns_last_pid, retried while
/// other processes take the pid first): true once it is held.
fn hold_pid(py: &str, pid: i32) -> bool {
    const HOLD: &str = r#"
import os, sys, time
p = int(sys.argv[1])
for _ in range(500):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(p - 1))
    c = os.fork()
    if c == 0:
        if os.getpid() == p:
            os.setsid()
            time.sleep(120)
        os._exit(0)
    if c == p:
        sys.exit(0)
    os.waitpid(c, 0)
sys.exit(1)
"#;
    Command::new(py).args(["-c", HOLD, &pid.to_string()]).stdin(Stdio::null()).status().is_ok_and(|s| s.success())
}

#[test]
fn a_restore_failing_on_a_taken_pid_releases_the_lock_and_a_later_restore_carries_the_connection() {
    let _g = serial();
    let Some(py) = common::python() else { return };
    common::subreaper();
    let py = py.to_string();
    let r = in_netns(move || {
        for method in ["iptables", "nftables"] {
            let tool = if method == "nftables" { "nft" } else { "iptables" };
            if !has(tool) {
                println!("{method}: skipped: {tool} is not installed");
                continue;
            }
            let (mut t, tmp, imgs) = start(&py);
            if method == "iptables" {
                // iptables' empty filter table (see above) made first.
                for op in ["-A", "-D"] {
                    let _ = Command::new("iptables").args([op, "INPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]).status();
                    let _ = Command::new("iptables").args([op, "OUTPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]).status();
                }
            }
            let before = netfilter();
            let pid = t.child.id() as i32;
            let (code, log) = criu(&["dump", "-t", &pid.to_string(), "--tcp-established", "--network-lock", method], &imgs, &[]);
            assert_eq!(code, 0, "{method}: dump: {log}");
            let _ = t.child.wait();
            assert_ne!(netfilter(), before, "{method}: the dump took no lock:\n{log}");
            assert!(hold_pid(&py, pid), "{method}: pid {pid} could not be held");
            let restore = || {
                let out = common::criu_cmd()
                    .args(["restore", "-d", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log", "--no-default-config", "--tcp-established"])
                    .env_remove("CRIU_CONFIG_FILE")
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                (out.status.success(), common::text(&out.stderr), std::fs::read_to_string(imgs.join("restore.log")).unwrap_or_default())
            };
            let (ok, err, rlog) = restore();
            assert!(!ok && err.contains("is taken"), "{method}: the restore with pid {pid} held did not fail on it: {err}\n{rlog}");
            assert_eq!(netfilter(), before, "{method}: the failed restore left the lock:\n{rlog}");
            common::kill_until_gone(pid);
            let (ok, err, rlog) = restore();
            assert!(ok, "{method}: the restore after the failed one: {err}\n{rlog}");
            let restored = common::Restored(pid);
            assert!(flows(tmp.path()), "{method}: the connection carries nothing after the restore:\n{rlog}");
            assert_eq!(netfilter(), before, "{method}: the restore left the lock:\n{rlog}");
            drop(restored);
        }
    });
    if let Err(why) = r {
        println!("skipped: {why}");
    }
}
