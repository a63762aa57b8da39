//! The commands behind the network lock: `iptables`/`ip6tables` rules
//! and `nft -f -` scripts, each run with its output captured for the
//! error message.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use tracing::debug;

use super::lock::Conn;

/// CRIU's mark for its own (repair) packets: they pass the lock.
pub const REPAIR_MARK: &str = "0xC114";

/// Run `cmd` with `args` (`stdin` fed to it); fail with its stderr.
fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> Result<()> {
    debug!("network lock: running {cmd} {}", args.join(" "));
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("network lock: can't run {cmd} (is it installed?)"))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes()).with_context(|| format!("network lock: writing to {cmd}"))?;
    }
    let out = child.wait_with_output().with_context(|| format!("network lock: waiting for {cmd}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let what = stdin.map_or_else(|| args.join(" "), |s| s.trim().replace('\n', "; "));
        bail!("network lock: {cmd} failed ({}) on [{what}]: {}", out.status, err.trim());
    }
    Ok(())
}

/// Whether this iptables takes `-w` (wait for the xtables lock): a check
/// (`-C`) answers 0 or 1 when it does, 2 on an unknown option; unlike a
/// listing, it makes no table on an nf_tables backend.
fn iptables_wait(cmd: &'static str) -> bool {
    static V4: OnceLock<bool> = OnceLock::new();
    static V6: OnceLock<bool> = OnceLock::new();
    let cell = if cmd == "iptables" { &V4 } else { &V6 };
    *cell.get_or_init(|| {
        let st = Command::new(cmd).args(["-w", "-t", "filter", "-C", "INPUT", "-j", "ACCEPT"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        st.is_ok_and(|s| matches!(s.code(), Some(0 | 1)))
    })
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Add (`lock`) or delete the two rules that drop `c`'s packets: INPUT
/// from the peer, OUTPUT to it. A failed second rule takes the first back.
pub fn iptables_switch(c: &Conn, lock: bool) -> Result<()> {
    iptables_rules(c, if lock { "-A" } else { "-D" })
}

/// Whether `c`'s lock rules are there (`iptables -C`, which changes
/// nothing: a delete of a missing rule would make an empty filter table
/// on an nf_tables backend).
pub fn iptables_locked(c: &Conn) -> bool {
    iptables_rules(c, "-C").is_ok()
}

fn iptables_rules(c: &Conn, op: &'static str) -> Result<()> {
    let lock = op != "-D";
    let cmd = if c.v6() { "ip6tables" } else { "iptables" };
    let rule = |chain: &str, src: String, sport: u16, dst: String, dport: u16, add: bool| -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if iptables_wait(cmd) {
            a.push("-w".into());
        }
        let (sp, dp) = (sport.to_string(), dport.to_string());
        let op = match (op, add) {
            ("-C", _) => "-C",
            (_, true) => "-A",
            (_, false) => "-D",
        };
        for s in ["-t", "filter", op, chain, "--protocol", "tcp", "-m", "mark", "!", "--mark", REPAIR_MARK] {
            a.push(s.into());
        }
        for s in ["--source", &src, "--sport", &sp, "--destination", &dst, "--dport", &dp, "-j", "DROP"] {
            a.push(s.into());
        }
        a
    };
    let (s, d) = (c.src.to_string(), c.dst.to_string());
    let input = rule("INPUT", d.clone(), c.dport, s.clone(), c.sport, lock);
    run(cmd, &argv(&input), None)?;
    let output = rule("OUTPUT", s, c.sport, d.clone(), c.dport, lock);
    if let Err(e) = run(cmd, &argv(&output), None) {
        if op == "-C" {
            return Err(e);
        }
        let undo = rule("INPUT", d, c.dport, c.src.to_string(), c.sport, !lock);
        let _ = run(cmd, &argv(&undo), None);
        return Err(e);
    }
    Ok(())
}

/// Feed `script` to `nft -f -`.
pub fn nft_run(script: &str) -> Result<()> {
    run("nft", &["-f", "-"], Some(script))
}

/// Check `script` with `nft -c -f -` (nothing is applied).
pub fn nft_check(script: &str) -> Result<()> {
    run("nft", &["-c", "-f", "-"], Some(script))
}

/// Whether nftables has `table` ("inet NAME").
pub fn nft_has_table(table: &str) -> bool {
    let mut a = vec!["list", "table"];
    a.extend(table.split(' '));
    Command::new("nft").args(&a).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The table of the lock: its two sets and the drop rules on both hooks
/// (the repair mark passes).
pub fn nft_table_script(t: &str) -> String {
    let mut s = String::new();
    for line in [
        format!("add table {t}"),
        format!("add chain {t} output {{ type filter hook output priority 0; }}"),
        format!("add rule {t} output meta mark {REPAIR_MARK} accept"),
        format!("add chain {t} input {{ type filter hook input priority 0; }}"),
        format!("add rule {t} input meta mark {REPAIR_MARK} accept"),
        format!("add set {t} conns4 {{ type ipv4_addr . inet_service . ipv4_addr . inet_service; }}"),
        format!("add rule {t} output ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop"),
        format!("add rule {t} input ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop"),
        format!("add set {t} conns6 {{ type ipv6_addr . inet_service . ipv6_addr . inet_service; }}"),
        format!("add rule {t} output ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop"),
        format!("add rule {t} input ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop"),
    ] {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// Both directions of `c` into the table's set.
pub fn nft_conn_script(t: &str, c: &Conn) -> String {
    let set = if c.v6() { '6' } else { '4' };
    format!(
        "add element {t} conns{set} {{ {} . {} . {} . {} }}\nadd element {t} conns{set} {{ {} . {} . {} . {} }}\n",
        c.src, c.sport, c.dst, c.dport, c.dst, c.dport, c.src, c.sport
    )
}
