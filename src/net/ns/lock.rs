//! The network lock of a tree with a network namespace of its own, as
//! CRIU 4.2 takes it: no connection by connection, but a `CRIU` chain in
//! the namespace's filter table that drops every packet but the ones
//! marked by the TCP repair code (SOCCR_MARK), hooked into INPUT and
//! OUTPUT, ipv4 and ipv6. The dump takes it (after the network-lock
//! scripts) before the namespace is saved, so the images carry it and the
//! restored namespace starts locked; the restore's unlock (after the
//! network-unlock scripts) removes it. Runs in the namespace of the
//! calling thread.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use tracing::{error, info};

/// The mark TCP repair puts on its own packets.
const SOCCR_MARK: u32 = 0xC114;

fn lock_rules() -> String {
    format!("*filter\n:CRIU - [0:0]\n-I INPUT -j CRIU\n-I OUTPUT -j CRIU\n-A CRIU -m mark --mark {SOCCR_MARK} -j ACCEPT\n-A CRIU -j DROP\nCOMMIT\n")
}

const UNLOCK_RULES: &str = "*filter\n:CRIU - [0:0]\n-D INPUT -j CRIU\n-D OUTPUT -j CRIU\n-X CRIU\nCOMMIT\n";

fn restore(tool: &str, rules: &str) -> Result<()> {
    let mut child = Command::new(tool)
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("can't run {tool}"))?;
    child.stdin.take().context("stdin")?.write_all(rules.as_bytes()).with_context(|| format!("writing to {tool}"))?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{tool} -w --noflush failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn ipv6() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

/// Lock the namespace.
pub fn lock() -> Result<()> {
    let r = restore("iptables-restore", &lock_rules()).and_then(|()| if ipv6() { restore("ip6tables-restore", &lock_rules()) } else { Ok(()) });
    r.context("Locking network failed: iptables-restore could not add the CRIU chain (is CONFIG_NETFILTER_XT_MARK there?)")?;
    info!("network lock: the namespace's CRIU chain drops every packet");
    Ok(())
}

/// Unlock the namespace (failures are logged: there may be no lock, the
/// tree was dumped without one).
pub fn unlock() {
    for tool in ["iptables-restore", "ip6tables-restore"] {
        if tool == "ip6tables-restore" && !ipv6() {
            continue;
        }
        if let Err(e) = restore(tool, UNLOCK_RULES) {
            error!("network unlock: {e:#}");
        }
    }
}
