//! The network lock (`--network-lock iptables|nftables|skip`), as CRIU 4.2
//! takes it: while the tree's TCP connections are dumped with their state
//! and until they are restored, no packet may reach or leave them, or the
//! peer would see a reset.
//!
//! Connections are locked one by one, by their 4-tuple ([`Conn`]):
//! - `iptables`: two rules each (INPUT from the peer, OUTPUT to it) that
//!   drop the connection's packets unless marked 0xC114 (CRIU's repair
//!   mark), added with `iptables -A` and removed with `iptables -D`
//!   (ip6tables for IPv6);
//! - `nftables`: a table `inet CRIU-<dump run id>` with sets `conns4` and
//!   `conns6` of (address . port . address . port) and drop rules on the
//!   input and output hooks; each connection adds both its directions to
//!   the set; unlocking deletes the table;
//! - `skip`: nothing (the user locks the network by other means).
//!
//! CRIU's default is `iptables`; the method a dump used is recorded in
//! inventory.img (0 iptables, 1 nftables, 2 skip) and the restore unlocks
//! with that one. Connections restored closed (`--tcp-close`) are neither
//! dumped with their state nor locked (as CRIU 4.2). The `network-lock`
//! and `network-unlock` action scripts belong to a dumped network
//! namespace, which this dump does not carry: they run only for one.

use std::net::IpAddr;

use anyhow::{bail, Result};
use tracing::{info, warn};

use super::lock_cmd;
use crate::images::pb::{FileEntry, InetSkEntry};

/// A locking method, as `--network-lock` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Iptables,
    Nftables,
    Skip,
}

impl Method {
    /// The method `--network-lock` (or the RPC field) asked for; CRIU
    /// 4.2's default is iptables.
    pub fn from_opt(v: Option<&str>) -> Result<Method> {
        Ok(match v {
            None | Some("iptables") => Method::Iptables,
            Some("nftables") => Method::Nftables,
            Some("skip") => Method::Skip,
            Some(o) => bail!("Invalid value for --network-lock: {o}"),
        })
    }

    /// The value inventory.img holds (CRIU's enum order).
    pub fn inventory(self) -> u32 {
        match self {
            Method::Iptables => 0,
            Method::Nftables => 1,
            Method::Skip => 2,
        }
    }

    /// The method an inventory records; none: iptables (as CRIU 4.2).
    pub fn from_inventory(v: Option<u32>) -> Result<Method> {
        Ok(match v {
            None => {
                info!("Network lock method not found in inventory image; falling back to iptables");
                Method::Iptables
            }
            Some(0) => Method::Iptables,
            Some(1) => Method::Nftables,
            Some(2) => Method::Skip,
            Some(m) => bail!("inventory.img: unknown network lock method {m}"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Iptables => "iptables",
            Method::Nftables => "nftables",
            Method::Skip => "skip",
        }
    }
}

/// One TCP connection, seen from its socket: local and peer ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
}

impl std::fmt::Display for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} - {} {}", self.src, self.sport, self.dst, self.dport)
    }
}

const TCP_CLOSE: u32 = 7;
const TCP_LISTEN: u32 = 10;

impl Conn {
    /// The connection an inet entry records: a TCP socket with a peer
    /// (neither closed nor listening); else none.
    pub fn of(ie: &InetSkEntry) -> Option<Conn> {
        if ie.proto != libc::IPPROTO_TCP as u32 || ie.state == TCP_CLOSE || ie.state == TCP_LISTEN || ie.dst_port == 0 {
            return None;
        }
        Some(Conn {
            src: addr(ie.family, &ie.src_addr)?,
            sport: u16::try_from(ie.src_port).ok()?,
            dst: addr(ie.family, &ie.dst_addr)?,
            dport: u16::try_from(ie.dst_port).ok()?,
        })
    }

    pub fn v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// An address from inet_sk_entry words (network byte order in memory).
fn addr(family: u32, words: &[u32]) -> Option<IpAddr> {
    match (family as i32, words.len()) {
        (libc::AF_INET, n) if n >= 1 => Some(IpAddr::from(words[0].to_ne_bytes())),
        (libc::AF_INET6, 4) => {
            let mut o = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}

/// The connections of files.img entries that a dump locks: connected TCP
/// sockets dumped with their state (not under `--tcp-close`).
pub fn connections<'a>(files: impl IntoIterator<Item = &'a FileEntry>, tcp_close: bool) -> Vec<Conn> {
    if tcp_close {
        return Vec::new();
    }
    files.into_iter().filter_map(|f| f.isk.as_ref()).filter_map(Conn::of).collect()
}

/// The lock a dump holds (kept in the dump's fd state, so the socket dump
/// locks each connection before reading it): which connections are
/// locked, by which method. Dropped without [`NetLock::unlock`], it stays
/// taken (a dump that ends with the tasks killed leaves it to the restore).
#[derive(Default)]
pub struct NetLock {
    method: Method,
    /// The nftables table (`inet CRIU-<id>`), once made.
    table: String,
    table_made: bool,
    locked: Vec<Conn>,
}

impl NetLock {
    /// A lock by `method`; `id` names the nftables table (the dump's run id).
    pub fn new(method: Method, id: &str) -> NetLock {
        NetLock { method, table: table_name(id), table_made: false, locked: Vec::new() }
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// Whether any connection is locked.
    pub fn taken(&self) -> bool {
        !self.locked.is_empty()
    }

    /// Lock `c` (once): no packet of it passes until [`NetLock::unlock`].
    pub fn lock(&mut self, c: &Conn) -> Result<()> {
        if self.locked.contains(c) {
            return Ok(());
        }
        match self.method {
            Method::Skip => {}
            Method::Iptables => lock_cmd::iptables_switch(c, true)?,
            Method::Nftables => {
                if !self.table_made {
                    lock_cmd::nft_run(&lock_cmd::nft_table_script(&self.table))?;
                    self.table_made = true;
                }
                lock_cmd::nft_run(&lock_cmd::nft_conn_script(&self.table, c))?;
            }
        }
        info!("network lock ({}): locked connection {c}", self.method.name());
        self.locked.push(c.clone());
        Ok(())
    }

    /// Lock every connection of `conns`.
    pub fn lock_all(&mut self, conns: &[Conn]) -> Result<()> {
        conns.iter().try_for_each(|c| self.lock(c))
    }

    /// Let every locked connection's packets pass again. Every rule is
    /// tried; the first failure is returned.
    pub fn unlock(&mut self) -> Result<()> {
        let mut first = None;
        if self.method == Method::Iptables {
            for c in std::mem::take(&mut self.locked) {
                match lock_cmd::iptables_switch(&c, false) {
                    Ok(()) => info!("network lock (iptables): unlocked connection {c}"),
                    Err(e) => {
                        warn!("network unlock of {c}: {e:#}");
                        first.get_or_insert(e);
                    }
                }
            }
        }
        if self.table_made {
            if let Err(e) = lock_cmd::nft_run(&format!("delete table {}\n", self.table)) {
                warn!("network unlock: {e:#}");
                first.get_or_insert(e);
            } else {
                info!("network lock (nftables): deleted table {}", self.table);
            }
            self.table_made = false;
        }
        self.locked.clear();
        first.map_or(Ok(()), Err)
    }
}

/// Whether the nftables method can work here: `nft` checks the lock's
/// table (concatenated sets included) against the kernel without applying it.
pub fn nftables_usable() -> bool {
    lock_cmd::nft_check(&lock_cmd::nft_table_script(&table_name("check"))).is_ok()
}

/// The nftables table of a lock named by `id`: "inet CRIU-<id>" cut to
/// 31 bytes, as CRIU 4.2 cuts it (its name buffer holds 32 with the NUL:
/// a run id's UUID loses its tail), so either tool finds the other's.
pub fn table_name(id: &str) -> String {
    let mut t = format!("inet CRIU-{id}");
    t.truncate(31);
    t
}

/// The restore's unlock, after every connection is in place and before
/// any task runs: what the dump of `files` by `method` left locked is
/// released (rules or table no longer there are not an error, as CRIU).
/// With iptables, every connected TCP entry is tried, also under
/// `--tcp-close` at restore: images dumped with the state of their
/// connections (CRIU 4.2's `--tcp-established`) may be restored closed,
/// and their rules must not outlive the restore.
pub fn unlock_restored<'a>(method: Method, run_id: Option<&str>, root_pid: i32, files: impl IntoIterator<Item = &'a FileEntry>) {
    let conns = connections(files, false);
    match method {
        Method::Skip => {}
        Method::Iptables => {
            for c in conns.iter().filter(|c| lock_cmd::iptables_locked(c)) {
                match lock_cmd::iptables_switch(c, false) {
                    Ok(()) => info!("network lock (iptables): unlocked connection {c}"),
                    Err(e) => warn!("network unlock of {c}: {e:#}"),
                }
            }
        }
        Method::Nftables => {
            let table = table_name(&run_id.map_or_else(|| root_pid.to_string(), str::to_string));
            if lock_cmd::nft_has_table(&table) {
                match lock_cmd::nft_run(&format!("delete table {table}\n")) {
                    Ok(()) => info!("network lock (nftables): deleted table {table}"),
                    Err(e) => warn!("network unlock: {e:#}"),
                }
            }
        }
    }
}

/// The unlock of a restore that failed (at any step: a pid taken, a file
/// changed, a task that died): what the dump of the images in `dir`
/// locked is let go, read from files.img and pstree.img themselves (the
/// restore may have failed before it read them). Nothing of the lock is
/// left behind; images that can't be read leave nothing to find.
pub fn unlock_failed_restore(method: Method, run_id: Option<&str>, dir: &crate::images::ImageDir) {
    use crate::images::file::ImageReader;
    use crate::images::kind::kinds;
    let files = ImageReader::open_kind(dir, "files.img", kinds::files()).and_then(|mut r| r.all());
    let files = match files {
        Ok(f) => f,
        Err(e) => {
            warn!("network unlock after the failed restore: files.img: {e:#}");
            Vec::new()
        }
    };
    let root = ImageReader::open_kind(dir, "pstree.img", kinds::pstree())
        .and_then(|mut r| r.all())
        .ok()
        .and_then(|t| t.first().map(|e| e.pid as i32))
        .unwrap_or(0);
    unlock_restored(method, run_id, root, files.iter());
}
