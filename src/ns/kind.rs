//! The namespace-kind interface and its one table: what each kind does at
//! dump (in the tree's namespace, entered by criu's thread) and at restore
//! (criu's thread makes the new namespace and forks the root into it,
//! then, after the setup-namespaces scripts, enters it again to fill it),
//! and which kinds are carried elsewhere (net: `net::ns`, time:
//! `ns::timens`) or not yet at all (refused by name).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use tracing::info;

use super::ids::{Kind, TreeNs};
use crate::images::pb::TaskKobjIdsEntry;
use crate::images::{inventory, ImageDir};

/// One kind of namespace carried here.
pub trait NsKind: Sync {
    fn kind(&self) -> Kind;
    /// The images of namespace `id`.
    fn images(&self, id: u32) -> Vec<String>;
    /// Write namespace `id`'s images; the calling thread is in it. Pages
    /// files it writes take ids from `pages_id` on (and move it on).
    fn dump(&self, dir: &ImageDir, id: u32, pages_id: &mut u32) -> Result<()>;
    /// Restore namespace `id` into the new one the calling thread is in.
    fn prepare(&self, dir: &ImageDir, id: u32) -> Result<()>;
}

/// How a kind is carried.
pub enum Carry {
    Here(&'static dyn NsKind),
    /// By its own module (net, time).
    Module,
    /// Not yet: a tree whose root has its own is refused.
    No,
}

/// The table.
pub fn carry(k: Kind) -> Carry {
    match k {
        Kind::Uts => Carry::Here(&super::uts::Uts),
        Kind::Ipc => Carry::Here(&crate::ipc::Ipc),
        Kind::Net | Kind::Time => Carry::Module,
        Kind::Pid | Kind::Mnt | Kind::User | Kind::Cgroup => Carry::No,
    }
}

fn open_ns(who: &str, k: Kind) -> Result<OwnedFd> {
    let p = format!("/proc/{who}/ns/{}", k.proc_name());
    Ok(File::open(&p).with_context(|| format!("can't open {p}"))?.into())
}

fn setns(fd: &OwnedFd, k: Kind, what: &str) -> Result<()> {
    nix::sched::setns(fd.as_fd(), CloneFlags::from_bits_retain(k.cflag()))
        .with_context(|| format!("can't enter the {} namespace of {what}", k.proc_name()))
}

/// Refuse a root `pid` with a namespace of its own that is not carried.
pub fn check_root(pid: i32) -> Result<()> {
    let t = TreeNs::of_root(pid)?;
    let no: Vec<&str> = t.owned().filter(|k| matches!(carry(*k), Carry::No)).map(Kind::proc_name).collect();
    if !no.is_empty() {
        bail!("task {pid} is in its own {} namespace(s): dumping these namespaces is not supported yet", no.join(", "));
    }
    Ok(())
}

/// Write the images of every carried namespace the tree of `root` has of
/// its own: criu's thread enters each, dumps it and comes back.
pub fn dump_own(dir: &ImageDir, root: i32, t: &TreeNs, pages_id: &mut u32) -> Result<()> {
    for k in t.owned() {
        let Carry::Here(kind) = carry(k) else { continue };
        let id = t.id(k);
        info!("Dump {} namespace info {id} via {root}", k.proc_name().to_uppercase());
        let back = open_ns("thread-self", k)?;
        setns(&open_ns(&root.to_string(), k)?, k, &format!("task {root}"))?;
        let r = kind.dump(dir, id, pages_id).with_context(|| format!("{} namespace {id} of task {root}", k.proc_name()));
        setns(&back, k, "criu")?;
        r?;
    }
    Ok(())
}

/// The kinds (with the image's ids) where the tree of a restore has a
/// namespace of its own that is carried here; refuses the kinds not carried
/// and tasks in other namespaces than the root's.
pub fn restore_kinds(dir: &ImageDir, live: &[(i32, &TaskKobjIdsEntry)]) -> Result<Vec<(Kind, u32)>> {
    let &(root, root_ids) = live.first().context("no live task to restore")?;
    let inv = inventory::read(dir)?;
    let criu = inv.root_ids.unwrap_or_default();
    let mut out = Vec::new();
    for k in super::ids::ALL {
        let (Some(theirs), Some(ours)) = (k.get(root_ids), k.get(&criu)) else { continue };
        if theirs == ours {
            continue;
        }
        match carry(k) {
            Carry::Module => continue,
            Carry::No => bail!(
                "ids-{root}.img: task {root} is in {} namespace {theirs} of its own: restoring it is not supported yet",
                k.proc_name()
            ),
            Carry::Here(_) => {}
        }
        for &(pid, ids) in &live[1..] {
            if k.get(ids) != Some(theirs) {
                bail!(
                    "ids-{pid}.img: task {pid} is in {} namespace {:?}, the root {root} in {theirs}: nested {} namespaces can't be restored",
                    k.proc_name(),
                    k.get(ids),
                    k.proc_name()
                );
            }
        }
        out.push((k, theirs));
    }
    Ok(out)
}

/// criu's thread in the tree's new namespaces (until [`Entered::leave`]).
pub struct Entered {
    back: Vec<(Kind, OwnedFd)>,
    /// The kinds to fill, with the image's ids.
    kinds: Vec<(Kind, u32)>,
}

impl Entered {
    /// Back to criu's namespaces once the root is forked into the new ones
    /// (the scripts run in criu's); what is left is to fill them.
    pub fn leave(mut self) -> Result<Unfilled> {
        for (k, fd) in std::mem::take(&mut self.back) {
            setns(&fd, k, "criu after forking the root")?;
        }
        Ok(Unfilled { kinds: std::mem::take(&mut self.kinds) })
    }
}

/// The root's new namespaces, still empty.
pub struct Unfilled {
    kinds: Vec<(Kind, u32)>,
}

impl Unfilled {
    /// Fill each from the images, criu's thread in the namespace of task
    /// `root` meanwhile (CRIU does it after the setup-namespaces scripts).
    pub fn fill(self, dir: &ImageDir, root: i32) -> Result<()> {
        for (k, id) in self.kinds {
            let Carry::Here(kind) = carry(k) else { continue };
            info!("Restoring {} namespace {id}", k.proc_name());
            let back = open_ns("thread-self", k)?;
            setns(&open_ns(&root.to_string(), k)?, k, &format!("task {root}"))?;
            let r = kind.prepare(dir, id).with_context(|| format!("restoring {} namespace {id} of task {root}", k.proc_name()));
            setns(&back, k, "criu")?;
            r?;
        }
        Ok(())
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        for (k, fd) in std::mem::take(&mut self.back) {
            if let Err(e) = setns(&fd, k, "criu") {
                tracing::warn!("{e:#}");
            }
        }
    }
}

/// Before criu forks the root: each carried namespace the tree has of its
/// own made anew by criu's thread (the root is forked into them).
pub fn enter(dir: &ImageDir, live: &[(i32, &TaskKobjIdsEntry)]) -> Result<Option<Entered>> {
    let kinds = restore_kinds(dir, live)?;
    super::set_restored_own(kinds.iter().map(|(k, id)| (k.proc_name(), *id)).collect());
    if kinds.is_empty() {
        return Ok(None);
    }
    let mut e = Entered { back: Vec::new(), kinds: kinds.clone() };
    for (k, _) in kinds {
        e.back.push((k, open_ns("thread-self", k)?));
        nix::sched::unshare(CloneFlags::from_bits_retain(k.cflag())).with_context(|| format!("can't make a new {} namespace", k.proc_name()))?;
    }
    Ok(Some(e))
}
