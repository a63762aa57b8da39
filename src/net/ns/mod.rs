//! The network namespace of a tree whose root has one of its own (the
//! tasks all in it; nested ones are refused by task), as CRIU 4.2 carries
//! it: net_ns_id 9 in every task's ids (criu's is 2), and the namespace's
//! images: netns-9.img (the "all"/"default" ipv4 and ipv6 confs, the unix
//! and ipv4 sysctls, the ids it gives other namespaces), netdev-9.img
//! (`link`: lo, veths, bridges and their ports, macvlans, tun/tap devices:
//! `bridge`, `macvlan`, `tun`), the tools' raw dumps (`tools`), and the
//! lock inside it (`lock`).
//!
//! Dump: criu's thread enters the namespace for the whole dump
//! ([`DumpNetns`]): the socket dumps see its sockets, the tools and
//! /proc/sys its state. With `--empty-ns net` nothing of the namespace is
//! saved (the caller makes it anew).
//!
//! Restore ([`enter`]): criu's thread unshares a new namespace, sets its
//! sysctls, makes its links, restores addresses, routes, rules, firewall
//! (all before any task exists), forks the root into it and returns to
//! its own ([`Entered::leave`]). The root waits until the setup-namespaces
//! scripts ran ([`root_wait`]) before it makes any socket.

pub mod bridge;
pub mod link;
pub mod lock;
pub mod macvlan;
mod rtnl;
pub mod sysctl;
pub mod tools;
pub mod tun;

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use tracing::{info, warn};

use crate::images::kind::kinds;
use crate::images::pb::{NetDeviceEntry, NetnsEntry, TaskKobjIdsEntry};
use crate::images::{inventory, ImageDir, ImageReader, ImageWriter};

/// The id of the tree's own network namespace in the images (the first
/// after criu's eight, as CRIU numbers it).
pub const OWN_NET_NS_ID: u32 = 9;

fn ns_link(who: &str) -> Result<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{who}/ns/net")).with_context(|| format!("can't read the network namespace of {who}"))
}

fn open_ns(who: &str) -> Result<OwnedFd> {
    Ok(File::open(format!("/proc/{who}/ns/net")).with_context(|| format!("can't open the network namespace of {who}"))?.into())
}

fn setns(fd: &OwnedFd, what: &str) -> Result<()> {
    nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).with_context(|| format!("can't enter {what}"))
}

/// Whether the tree of `root` has a network namespace of its own.
pub fn is_own(root: i32) -> Result<bool> {
    Ok(ns_link(&root.to_string())? != ns_link("thread-self")?)
}

/// The network namespace of a tree being dumped, entered by criu's
/// thread until dropped.
pub struct DumpNetns {
    root: i32,
    /// criu's own namespace, to return to.
    back: Option<OwnedFd>,
    empty: bool,
    locked: bool,
}

impl DumpNetns {
    /// For the live tasks `pids` (the root first): None when the root is
    /// in criu's namespace; else every task (and thread) must be in the
    /// root's, which criu's thread enters.
    /// `externals`: the `--external` values (the namespace named as an
    /// external one is refused: it is not carried yet).
    pub fn of_tree(pids: &[i32], empty: bool, externals: &[String]) -> Result<Option<DumpNetns>> {
        let root = *pids.first().context("an empty tree")?;
        if !is_own(root)? {
            return Ok(None);
        }
        let theirs = ns_link(&root.to_string())?;
        let ino = theirs.to_string_lossy().trim_start_matches("net:[").trim_end_matches(']').to_string();
        if let Some(x) = externals.iter().find(|x| x.starts_with(&format!("net[{ino}]:"))) {
            bail!("--external {x}: the network namespace of task {root} as an external one is not supported yet");
        }
        for &pid in pids {
            for tid in crate::proc::threads(pid)? {
                let ns = ns_link(&format!("{pid}/task/{tid}"))?;
                if ns != theirs {
                    let who = if tid == pid { format!("task {pid}") } else { format!("thread {tid} of task {pid}") };
                    bail!(
                        "{who} is in network namespace {}, not in the root {root}'s ({}): nested network namespaces can't be dumped",
                        ns.display(),
                        theirs.display()
                    );
                }
            }
        }
        info!("Will take net namespace in the image");
        info!("Add net ns {OWN_NET_NS_ID} pid {root}");
        let back = open_ns("thread-self")?;
        setns(&open_ns(&root.to_string())?, &format!("the network namespace of task {root}"))?;
        crate::ns::set_sock_net_ns_id(OWN_NET_NS_ID);
        Ok(Some(DumpNetns { root, back: Some(back), empty, locked: false }))
    }

    /// The net_ns_id of every task's ids.
    pub fn ns_id(&self) -> u32 {
        OWN_NET_NS_ID
    }

    /// Take the lock inside the namespace (after the network-lock
    /// scripts), unless `--network-lock skip`.
    pub fn lock(&mut self, opts: &crate::opts::Opts, dir: &ImageDir, method: crate::net::lock::Method) -> Result<()> {
        crate::scripts::run(crate::scripts::Action::NetworkLock, opts, Some(dir), Some(self.root))?;
        match method {
            crate::net::lock::Method::Skip => return Ok(()),
            crate::net::lock::Method::Nftables => {
                bail!("--network-lock nftables with the network namespace of task {} of its own is not supported (iptables is)", self.root)
            }
            crate::net::lock::Method::Iptables => {}
        }
        lock::lock()?;
        self.locked = true;
        Ok(())
    }

    /// Release the lock (the network-unlock scripts, then the chain): the
    /// tasks run on.
    pub fn unlock(&mut self, opts: &crate::opts::Opts, dir: &ImageDir) {
        if let Err(e) = crate::scripts::run(crate::scripts::Action::NetworkUnlock, opts, Some(dir), Some(self.root)) {
            tracing::error!("{e:#}");
        }
        if std::mem::take(&mut self.locked) {
            lock::unlock();
        }
    }

    /// The namespace's images (ID = [`OWN_NET_NS_ID`]).
    /// `fds`: what the fd dump kept (tun devices read through the tree's
    /// files).
    pub fn write(&self, dir: &ImageDir, fds: &crate::files::kind::State) -> Result<()> {
        let id = OWN_NET_NS_ID;
        info!("Dump NET namespace info {id} via {}", self.root);
        if self.empty {
            // --empty-ns net: no image of it at all (as CRIU 4.2).
            return Ok(());
        }
        dump_images(dir, id, self.root, fds.get::<crate::files::tun::Attached>())
    }

    /// A dump whose tasks die: the restore lifts the lock.
    pub fn keep_locked(&mut self) {
        self.locked = false;
    }
}

/// The images of namespace `id` (of the tree of `root`), read in the
/// namespace the calling thread is in.
fn dump_images(dir: &ImageDir, id: u32, root: i32, tuns: Option<&crate::files::tun::Attached>) -> Result<()> {
    let (links, nsids) = link::dump(id, root, tuns)?;
    tools::dump(dir, id)?;
    let netns = NetnsEntry {
        def_conf4: sysctl::read_conf(false, "default")?,
        all_conf4: sysctl::read_conf(false, "all")?,
        def_conf6: sysctl::read_conf(true, "default")?,
        all_conf6: sysctl::read_conf(true, "all")?,
        nsids,
        unix_conf: sysctl::read_unix()?,
        ipv4_sysctl: sysctl::read_ipv4()?,
        ..Default::default()
    };
    let name = kinds::netdev().file_name(u64::from(id));
    let mut w = ImageWriter::create(dir, &name, kinds::netdev())?;
    for l in &links {
        w.write(l)?;
    }
    w.finish()?;
    let name = kinds::netns().file_name(u64::from(id));
    let mut w = ImageWriter::create(dir, &name, kinds::netns())?;
    w.write(&netns)?;
    w.finish()?;
    Ok(())
}

impl Drop for DumpNetns {
    fn drop(&mut self) {
        crate::ns::set_sock_net_ns_id(crate::ns::NET_NS_ID);
        if let Some(fd) = self.back.take()
            && let Err(e) = setns(&fd, "criu's network namespace")
        {
            warn!("{e:#}");
        }
    }
}

/// Set by [`enter`] before the root is forked: the root waits for criu's
/// word (after the setup-namespaces scripts) before it makes its files.
static ROOT_WAITS: AtomicBool = AtomicBool::new(false);

/// In the root, before any file is made: whether to wait for criu's
/// [`crate::restorer::stages::msg::NETNS_READY`].
pub fn root_waits() -> bool {
    ROOT_WAITS.load(Ordering::SeqCst)
}

/// The new network namespace of a restore, criu's thread in it until
/// [`Entered::leave`] (or drop).
pub struct Entered {
    back: Option<OwnedFd>,
    pub id: u32,
    /// `--empty-ns net`: the caller's scripts set it up.
    pub empty: bool,
    veth_pairs: Vec<(String, String)>,
}

impl Entered {
    /// Back to criu's namespace; the outer ends of `--veth-pair
    /// IN=OUT@BRIDGE` go into their bridges.
    pub fn leave(mut self) -> Result<()> {
        // (The root, forked by now, has its copy; a later restore by this
        // process, a service, starts without.)
        ROOT_WAITS.store(false, Ordering::SeqCst);
        let fd = self.back.take().context("left twice")?;
        setns(&fd, "criu's network namespace after forking the root")?;
        link::move_to_bridges(&self.veth_pairs)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        ROOT_WAITS.store(false, Ordering::SeqCst);
        if let Some(fd) = self.back.take()
            && let Err(e) = setns(&fd, "criu's network namespace")
        {
            warn!("{e:#}");
        }
    }
}

/// The image's id of the network namespace of the tree `live` (pid and
/// ids of each live task, the root first), when it is not criu's.
pub fn image_id(dir: &ImageDir, live: &[(i32, &TaskKobjIdsEntry)]) -> Result<Option<u32>> {
    let &(root, root_ids) = live.first().context("no live task to restore")?;
    for &(pid, ids) in &live[1..] {
        if ids.net_ns_id != root_ids.net_ns_id {
            bail!(
                "ids-{pid}.img: task {pid} is in network namespace {:?}, the root {root} in {:?}: \
                 nested network namespaces can't be restored",
                ids.net_ns_id,
                root_ids.net_ns_id
            );
        }
    }
    let inv = inventory::read(dir)?;
    let criu = inv.root_ids.as_ref().and_then(|r| r.net_ns_id);
    Ok(match (root_ids.net_ns_id, criu) {
        (Some(theirs), Some(criu)) if theirs != criu => Some(theirs),
        _ => None,
    })
}

/// Before criu forks the root: the tree's own network namespace, made
/// and set up (nothing when the tree was in criu's).
pub fn enter(dir: &ImageDir, opts: &crate::opts::Opts, live: &[(i32, &TaskKobjIdsEntry)]) -> Result<Option<Entered>> {
    let Some(id) = image_id(dir, live)? else { return Ok(None) };
    let images = Images::read(dir, id, opts.empty_ns_net)?;
    sysctl::WEAK.store(opts.weak_sysctls, Ordering::Relaxed);
    let back = open_ns("thread-self")?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).context("Unable to create a new netns")?;
    let entered = Entered { back: Some(back), id, empty: opts.empty_ns_net, veth_pairs: opts.veth_pairs.clone() };
    ROOT_WAITS.store(true, Ordering::SeqCst);
    if opts.empty_ns_net {
        return Ok(Some(entered));
    }
    let criu_ns = entered.back.as_ref().context("criu's namespace")?;
    images.setup(dir, &opts.veth_pairs, criu_ns.as_fd())?;
    Ok(Some(entered))
}

/// The images of a namespace to restore.
struct Images {
    id: u32,
    netns: Option<NetnsEntry>,
    links: Vec<NetDeviceEntry>,
}

impl Images {
    /// Namespace `id`'s images (`empty`: --empty-ns net, no links).
    fn read(dir: &ImageDir, id: u32, empty: bool) -> Result<Images> {
        let netns_name = kinds::netns().file_name(u64::from(id));
        let netns: Option<NetnsEntry> = if dir.exists(&netns_name) {
            ImageReader::open_kind(dir, &netns_name, kinds::netns())?.next_entry()?
        } else {
            None
        };
        if let Some(k) = netns.as_ref().and_then(|n| n.ext_key.as_deref()) {
            bail!("{}: the network namespace is an external one ({k}): not supported", dir.display(&netns_name));
        }
        // (A dump with --empty-ns net wrote none of the images.)
        let netdev = kinds::netdev().file_name(u64::from(id));
        let links: Vec<NetDeviceEntry> = if empty || !dir.exists(&netdev) {
            Vec::new()
        } else {
            ImageReader::open_kind(dir, &netdev, kinds::netdev())?.all()?
        };
        Ok(Images { id, netns, links })
    }

    /// Set up the (new) namespace the calling thread is in: sysctls,
    /// links (veth peers into `criu_ns`), the tools' state.
    fn setup(&self, dir: &ImageDir, veth_pairs: &[(String, String)], criu_ns: std::os::fd::BorrowedFd<'_>) -> Result<()> {
        if let Some(n) = &self.netns {
            sysctl::write_conf(false, "all", &n.all_conf4, None)?;
            sysctl::write_conf(false, "default", &n.def_conf4, None)?;
            sysctl::write_conf(true, "all", &n.all_conf6, None)?;
            sysctl::write_conf(true, "default", &n.def_conf6, None)?;
            sysctl::write_unix(&n.unix_conf)?;
            sysctl::write_ipv4(&n.ipv4_sysctl)?;
        }
        let empty = Vec::new();
        let defaults = self.netns.as_ref().map_or((&empty[..], &empty[..]), |n| (&n.def_conf4[..], &n.def_conf6[..]));
        let nsids = self.netns.as_ref().map_or(&[][..], |n| &n.nsids[..]);
        link::restore(&self.links, defaults, veth_pairs, criu_ns, nsids, self.id)?;
        tools::restore(dir, self.id)
    }
}

/// Run `f` in the network namespace of task `pid` (criu's thread returns
/// to its own after).
pub fn in_netns_of<T>(pid: i32, f: impl FnOnce() -> T) -> Result<T> {
    let back = open_ns("thread-self")?;
    setns(&open_ns(&pid.to_string())?, &format!("the network namespace of task {pid}"))?;
    let r = f();
    setns(&back, "criu's network namespace")?;
    Ok(r)
}

/// The restore's unlock of a tree with its own namespace: the
/// network-unlock scripts, then the CRIU chain inside it.
pub fn unlock_restored(opts: &crate::opts::Opts, dir: &ImageDir, root: i32) {
    if let Err(e) = crate::scripts::run(crate::scripts::Action::NetworkUnlock, opts, Some(dir), Some(root)) {
        tracing::error!("{e:#}");
    }
    if let Err(e) = in_netns_of(root, lock::unlock) {
        tracing::error!("network unlock: {e:#}");
    }
}

/// Refuse a socket `who` of a network namespace other than the tree's (the
/// one criu's thread is in during the dump): its restore would make it in
/// the tree's namespace.
pub fn check_socket_netns(fd: std::os::fd::BorrowedFd<'_>, who: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::metadata("/proc/thread-self/ns/net").context("the dump's network namespace")?.ino();
    let theirs = crate::sys::nlsock::netns_ino(fd).with_context(|| format!("the network namespace of {who}"))?;
    if theirs != ours {
        bail!("{who} is a socket of network namespace net:[{theirs}], not the tree's (net:[{ours}]): sockets of other network namespaces are not carried");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
