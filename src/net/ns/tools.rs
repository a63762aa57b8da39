//! The namespace's addresses, routes, rules and firewall as the system
//! tools save and restore them, kept raw in their images as CRIU 4.2
//! does: `ip addr|route|-6 route|rule save` (ifaddr-, route-, route6-,
//! rule-ID.img), `iptables-save`/`ip6tables-save` (the legacy ones when
//! iptables runs on nf_tables, whose rules `nft list ruleset` has in
//! nftables-ID.img). The tools run in the namespace of the calling thread.
//! `CR_IP_TOOL`, `CR_IPTABLES` and `CR_NFTABLES` name other tools, as
//! with CRIU.

use std::fs::File;
use std::io::Write;
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

/// The magic `ip ... save` starts its dump with.
const IP_DUMP_MAGIC: u32 = 0x4531_1224;
/// rtm_flags the kernel refuses in a new route: they only describe the
/// state of its link when saved (a veth whose peer was down).
const RTNH_F_DEAD: u32 = 1;
const RTNH_F_LINKDOWN: u32 = 16;

/// A route dump of `ip route save` with the link-state flags taken off
/// each route (the routes are the same; the kernel sets them again from
/// the links). Anything not shaped as expected is left as it is.
fn without_link_state(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() < 4 || u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) != IP_DUMP_MAGIC {
        return b;
    }
    let mut off = 4;
    while off + 16 <= b.len() {
        let len = u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]) as usize;
        let ty = u16::from_ne_bytes([b[off + 4], b[off + 5]]);
        if len < 16 || off + len > b.len() {
            break;
        }
        // RTM_NEWROUTE: rtmsg's flags after its eight one-byte fields.
        if ty == libc::RTM_NEWROUTE && len >= 16 + 12 {
            let f = off + 16 + 8;
            let flags = u32::from_ne_bytes([b[f], b[f + 1], b[f + 2], b[f + 3]]) & !(RTNH_F_DEAD | RTNH_F_LINKDOWN);
            b[f..f + 4].copy_from_slice(&flags.to_ne_bytes());
        }
        off += (len + 3) & !3;
    }
    b
}

/// `ip route restore` from image `name`, the link-state flags off.
fn route_restore(dir: &ImageDir, name: &str) -> Result<()> {
    let Some(mut f) = nonempty(dir, name)? else { return Ok(()) };
    let mut b = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut b).with_context(|| format!("reading {}", dir.display(name)))?;
    let b = without_link_state(b);
    // ip reads it with ftell: a file, not a pipe.
    let fd = nix::sys::memfd::memfd_create("criu-route", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).context("memfd_create")?;
    let mut tmp = File::from(fd);
    tmp.write_all(&b).and_then(|()| std::io::Seek::rewind(&mut tmp)).with_context(|| format!("copying {}", dir.display(name)))?;
    run(&ip_tool(), &["route", "restore"], tmp.into(), Stdio::null()).with_context(|| format!("restoring {}", dir.display(name)))
}

/// Restore what [`dump`] saved, into the namespace of the calling thread.
pub fn restore(dir: &ImageDir, id: u32) -> Result<()> {
    ip_restore(dir, &ifaddr(id), "addr")?;
    route_restore(dir, &route(id))?;
    route_restore(dir, &route6(id))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn route_msg(flags: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&28u32.to_ne_bytes());
        m.extend_from_slice(&libc::RTM_NEWROUTE.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&[2, 24, 0, 0, 254, 2, 253, 1]);
        m.extend_from_slice(&flags.to_ne_bytes());
        m
    }

    #[test]
    fn link_state_flags_come_off_routes_only() {
        let mut b = IP_DUMP_MAGIC.to_ne_bytes().to_vec();
        b.extend(route_msg(RTNH_F_LINKDOWN | RTNH_F_DEAD | 4));
        b.extend(route_msg(RTNH_F_LINKDOWN));
        let out = without_link_state(b.clone());
        let mut want = IP_DUMP_MAGIC.to_ne_bytes().to_vec();
        want.extend(route_msg(4));
        want.extend(route_msg(0));
        assert_eq!(out, want);
        // Not an ip dump: untouched.
        assert_eq!(without_link_state(b[4..].to_vec()), b[4..].to_vec());
    }
}
