//! The namespace's addresses, routes, rules and firewall as the system
//! tools save and restore them, kept raw in their images as CRIU 4.2
//! does: `ip addr|route|-6 route|rule save` (ifaddr-, route-, route6-,
//! rule-ID.img), `iptables-save`/`ip6tables-save` (the legacy ones when
//! iptables runs on nf_tables, whose rules `nft list ruleset` has in
//! nftables-ID.img). The tools run in the namespace of the calling thread.
//! `CR_IP_TOOL`, `CR_IPTABLES` and `CR_NFTABLES` name other tools, as
//! with CRIU.

use std::fs::File;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use tracing::{debug, info, warn};

use crate::images::ImageDir;

pub fn ifaddr(id: u32) -> String {
    format!("ifaddr-{id}.img")
}
pub fn route(id: u32) -> String {
    format!("route-{id}.img")
}
pub fn route6(id: u32) -> String {
    format!("route6-{id}.img")
}
pub fn rule(id: u32) -> String {
    format!("rule-{id}.img")
}
pub fn iptables(id: u32) -> String {
    format!("iptables-{id}.img")
}
pub fn ip6tables(id: u32) -> String {
    format!("ip6tables-{id}.img")
}
pub fn nftables(id: u32) -> String {
    format!("nftables-{id}.img")
}

fn ip_tool() -> String {
    std::env::var("CR_IP_TOOL").unwrap_or_else(|_| "ip".into())
}

/// Run `cmd args` with stdin and stdout as given; fail naming it.
fn run(cmd: &str, args: &[&str], stdin: Stdio, stdout: Stdio) -> Result<()> {
    debug!("\tRunning {cmd} {}", args.join(" "));
    let out = Command::new(cmd)
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("can't run {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {} failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Run a shell command line (the iptables and nft tools, as CRIU runs them).
fn run_sh(line: &str, stdin: Stdio, stdout: Stdio) -> Result<()> {
    run("sh", &["-c", line], stdin, stdout)
}

fn exists(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `iptables` (or `ip6tables`) works on nf_tables: then its rules
/// are nftables', and only the legacy tables are left to it.
fn nft_backend(tool: &str) -> bool {
    Command::new(format!("{tool}-save"))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nf_tables"))
}

fn has_ipv6() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

fn create(dir: &ImageDir, name: &str) -> Result<File> {
    dir.create_file(name).with_context(|| format!("can't create {}", dir.display(name)))
}

/// Save the addresses, routes, rules and firewall rules of the namespace.
pub fn dump(dir: &ImageDir, id: u32) -> Result<()> {
    let ip = ip_tool();
    run(&ip, &["addr", "save"], Stdio::null(), create(dir, &ifaddr(id))?.into())?;
    run(&ip, &["route", "save"], Stdio::null(), create(dir, &route(id))?.into())?;
    if has_ipv6() {
        run(&ip, &["-6", "route", "save"], Stdio::null(), create(dir, &route6(id))?.into())?;
    }
    if let Err(e) = run(&ip, &["rule", "save"], Stdio::null(), create(dir, &rule(id))?.into()) {
        warn!("Check if \"ip rule save\" is supported! ({e:#})");
        let _ = std::fs::remove_file(dir.path().join(rule(id)));
    }
    let mut tables = vec![("iptables", iptables(id))];
    if has_ipv6() {
        tables.push(("ip6tables", ip6tables(id)));
    }
    for (tool, name) in tables {
        let f = create(dir, &name)?;
        let cmd = match std::env::var("CR_IPTABLES") {
            Ok(c) => c,
            Err(_) if nft_backend(tool) => {
                info!("{tool} has nft backend");
                let legacy = format!("{tool}-legacy-save");
                if !exists(&legacy) {
                    info!("skipping {tool} dump - no legacy version present");
                    continue;
                }
                legacy
            }
            Err(_) => format!("{tool}-save"),
        };
        run_sh(&cmd, Stdio::null(), f.into())?;
    }
    if exists("nft") {
        let cmd = std::env::var("CR_NFTABLES").unwrap_or_else(|_| "nft list ruleset".into());
        run_sh(&cmd, Stdio::null(), create(dir, &nftables(id))?.into())?;
    }
    Ok(())
}

/// The image `name` if it holds anything.
fn nonempty(dir: &ImageDir, name: &str) -> Result<Option<File>> {
    if !dir.exists(name) {
        return Ok(None);
    }
    let f = dir.open_file(name).with_context(|| format!("can't open {}", dir.display(name)))?;
    Ok((f.metadata()?.len() > 0).then_some(f))
}

/// `ip OBJ restore` from image `name` (nothing for an empty or missing one).
fn ip_restore(dir: &ImageDir, name: &str, obj: &str) -> Result<()> {
    let Some(f) = nonempty(dir, name)? else { return Ok(()) };
    run(&ip_tool(), &[obj, "restore"], f.into(), Stdio::null()).with_context(|| format!("restoring {}", dir.display(name)))
}

/// Restore what [`dump`] saved, into the namespace of the calling thread.
pub fn restore(dir: &ImageDir, id: u32) -> Result<()> {
    ip_restore(dir, &ifaddr(id), "addr")?;
    ip_restore(dir, &route(id), "route")?;
    ip_restore(dir, &route6(id), "route")?;
    if nonempty(dir, &rule(id))?.is_some() {
        // A new namespace has the default rules: they are in the image.
        let ip = ip_tool();
        run(&ip, &["rule", "flush"], Stdio::null(), Stdio::null())?;
        run(&ip, &["rule", "delete", "table", "local"], Stdio::null(), Stdio::null())?;
        ip_restore(dir, &rule(id), "rule")?;
    }
    for (tool, name) in [("iptables", iptables(id)), ("ip6tables", ip6tables(id))] {
        let Some(f) = nonempty(dir, &name)? else { continue };
        let cmd = match std::env::var("CR_IPTABLES") {
            Ok(c) => c,
            Err(_) if nft_backend(tool) => {
                let legacy = format!("{tool}-legacy-restore");
                if !exists(&legacy) {
                    bail!("Can't restore {tool} dump - no legacy version present ({})", dir.display(&name));
                }
                format!("{legacy} -w")
            }
            Err(_) => format!("{tool}-restore -w"),
        };
        run_sh(&cmd, f.into(), Stdio::null()).with_context(|| format!("restoring {}", dir.display(&name)))?;
    }
    if let Some(f) = nonempty(dir, &nftables(id))? {
        if !exists("nft") {
            bail!("{} holds nftables rules and there is no nft tool to restore them", dir.display(&nftables(id)));
        }
        let cmd = std::env::var("CR_NFTABLES").unwrap_or_else(|_| "nft -f /proc/self/fd/0".into());
        run_sh(&cmd, f.into(), Stdio::null()).with_context(|| format!("restoring {}", dir.display(&nftables(id))))?;
    }
    Ok(())
}
