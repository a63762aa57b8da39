//! The time namespace (CLONE_NEWTIME) of a dump and of a restore, as
//! CRIU 4.2 handles it.
//!
//! Dump: every live task of the tree must be in the root's time namespace,
//! and its children's (`ns/time_for_children`) must be that one too;
//! anything else is refused by task, as CRIU refuses nested time
//! namespaces. A root in criu's own time namespace gives timens-0.img with
//! criu's CLOCK_MONOTONIC/CLOCK_BOOTTIME; a root in another one is "taken
//! in the image": its id (9, the next after criu's eight namespaces) goes
//! into every task's ids-PID.img and timens-9.img holds the clocks as the
//! tree sees them (criu's clock, less criu's namespace offsets, plus the
//! tree's, all from /proc/PID/timens_offsets).
//!
//! Restore: the root's time_ns_id differs from inventory.img's root_ids
//! (the tree had its own namespace) → a new namespace with that id's
//! clocks; otherwise, where the kernel has time namespaces, a new one with
//! timens-0.img's clocks (none if that image is missing). Either way criu
//! unshares a namespace for its children just before forking the root,
//! sets its offsets so the saved clocks continue from where the dump read
//! them, and returns to its own right after the fork: the root is born in
//! the namespace (its vDSO data page is the namespace's from the start)
//! and every task it forks inherits it.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use tracing::{info, warn};

use crate::images::kind::kinds;
use crate::images::pb::{TaskKobjIdsEntry, Timespec, TimensEntry};
use crate::images::{inventory, ImageDir, ImageReader};

const NSEC: i128 = 1_000_000_000;

/// A clock reading or an offset, in nanoseconds.
type Nanos = i128;

fn newtime() -> CloneFlags {
    CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)
}

/// The time namespaces of `who` ("self" or a pid): its own and its
/// children's, as ns links ("time:[4026531834]"). None: the kernel has no
/// time namespaces.
fn links(who: &str) -> Result<Option<(String, String)>> {
    let rd = |n: &str| std::fs::read_link(format!("/proc/{who}/ns/{n}"));
    match (rd("time"), rd("time_for_children")) {
        (Ok(a), Ok(b)) => Ok(Some((a.to_string_lossy().into_owned(), b.to_string_lossy().into_owned()))),
        (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound && !has_timens() => Ok(None),
        (Err(e), _) | (_, Err(e)) => Err(e).with_context(|| format!("can't read the time namespace of task {who}")),
    }
}

/// Whether the kernel has time namespaces.
pub fn has_timens() -> bool {
    std::path::Path::new("/proc/self/ns/time").exists()
}

/// (CLOCK_MONOTONIC, CLOCK_BOOTTIME) offsets of the time namespace `who`'s
/// children get (/proc/PID/timens_offsets).
fn offsets(who: &str) -> Result<(Nanos, Nanos)> {
    let path = format!("/proc/{who}/timens_offsets");
    let text = std::fs::read_to_string(&path).with_context(|| format!("can't read {path}"))?;
    parse_offsets(&text).with_context(|| format!("{path}: can't parse {text:?}"))
}

fn parse_offsets(text: &str) -> Result<(Nanos, Nanos)> {
    let (mut mono, mut boot) = (None, None);
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [name, sec, nsec] = f[..] else { bail!("bad line {l:?}") };
        let v = i128::from(sec.parse::<i64>()?) * NSEC + i128::from(nsec.parse::<i64>()?);
        match name {
            "monotonic" => mono = Some(v),
            "boottime" => boot = Some(v),
            _ => {}
        }
    }
    Ok((mono.context("no monotonic offset")?, boot.context("no boottime offset")?))
}

fn clock(id: libc::clockid_t) -> Result<Nanos> {
    let t = nix::time::clock_gettime(nix::time::ClockId::from_raw(id)).context("clock_gettime")?;
    Ok(i128::from(t.tv_sec()) * NSEC + i128::from(t.tv_nsec()))
}

/// (seconds, nanoseconds in 0..1e9) of `v`.
fn split(v: Nanos) -> (i64, i64) {
    (v.div_euclid(NSEC) as i64, v.rem_euclid(NSEC) as i64)
}

fn timespec(v: Nanos) -> Result<Timespec> {
    let (s, n) = split(v);
    if s < 0 {
        bail!("a clock reads {v} ns: below zero");
    }
    Ok(Timespec { tv_sec: s as u64, tv_nsec: n as u64 })
}

fn nanos(t: &Timespec) -> Nanos {
    i128::from(t.tv_sec) * NSEC + i128::from(t.tv_nsec)
}

/// The time namespace of a tree being dumped.
pub struct DumpTimens {
    root: i32,
    /// The root's namespace is not criu's: it is taken in the image.
    own: bool,
    /// The clocks as read by [`DumpTimens::read_clocks`] (else at write).
    read: Option<TimensEntry>,
    /// Its id when own (the next after criu's and the tree's other ones).
    id: u32,
}

impl DumpTimens {
    /// Check the live tasks `pids` (the root first) of a frozen tree: each
    /// in the root's time namespace, with its children's the same.
    pub fn of_tree(pids: &[i32]) -> Result<DumpTimens> {
        let root = *pids.first().context("an empty tree")?;
        let Some(ours) = links("self")? else { return Ok(DumpTimens { root, own: false, read: None, id: super::OWN_TIME_NS_ID }) };
        let Some((root_ns, _)) = links(&root.to_string())? else { return Ok(DumpTimens { root, own: false, read: None, id: super::OWN_TIME_NS_ID }) };
        for &pid in pids {
            // Each thread has its own (a thread's unshare makes one for
            // the children it forks).
            for tid in crate::proc::threads(pid)? {
                let who = if tid == pid { format!("task {pid}") } else { format!("thread {tid} of task {pid}") };
                let (ns, children) = links(&format!("{pid}/task/{tid}"))?.context("the kernel lost its time namespaces")?;
                if ns != root_ns {
                    bail!(
                        "{who} is in time namespace {ns}, not in the root {root}'s ({root_ns}): \
                         nested time namespaces can't be dumped (CRIU 4.2 refuses them too)"
                    );
                }
                if children != ns {
                    bail!(
                        "{who} made a time namespace for its children ({children}) other than its own ({ns}): \
                         nested time namespaces can't be dumped (CRIU 4.2 refuses them too)"
                    );
                }
            }
        }
        let own = root_ns != ours.0;
        if own {
            info!("Will take time namespace in the image");
            info!("Add time ns {} pid {root}", super::OWN_TIME_NS_ID);
        }
        Ok(DumpTimens { root, own, read: None, id: super::OWN_TIME_NS_ID })
    }

    /// Number an own namespace `id` (the tree has another namespace of its
    /// own, numbered before it, as CRIU 4.2 does: net comes first).
    pub fn renumber(&mut self, id: u32) {
        self.id = id;
    }

    /// The time_ns_id of every task's ids.
    pub fn ns_id(&self) -> u32 {
        if self.own {
            self.id
        } else {
            super::CRIU_TIME_NS_ID
        }
    }

    /// Read the clocks now for the image (the dump does it right after
    /// reading its timers' remaining times, which then match them).
    pub fn read_clocks(&mut self) -> Result<()> {
        self.read = Some(self.clocks()?);
        Ok(())
    }

    /// The tree's clocks now, as the tree sees them.
    pub fn clocks(&self) -> Result<TimensEntry> {
        let (mut mono, mut boot) = (clock(libc::CLOCK_MONOTONIC)?, clock(libc::CLOCK_BOOTTIME)?);
        if self.own {
            let (ours, ours_children) = links("self")?.context("criu's time namespace")?;
            let (theirs, theirs_children) = links(&self.root.to_string())?.context("the root's time namespace")?;
            // timens_offsets shows the namespace of a task's children:
            // criu's and the root's must be their own.
            if ours_children != ours {
                bail!("criu's children's time namespace ({ours_children}) is not its own ({ours}): can't read the tree's clocks");
            }
            if theirs_children != theirs {
                bail!("task {} changed its children's time namespace during the dump", self.root);
            }
            let (cm, cb) = offsets("self")?;
            let (tm, tb) = offsets(&self.root.to_string())?;
            mono += tm - cm;
            boot += tb - cb;
        }
        Ok(TimensEntry { monotonic: timespec(mono)?, boottime: timespec(boot)? })
    }

    /// timens-ID.img: the clocks, read now.
    pub fn write(&self, dir: &ImageDir) -> Result<()> {
        let id = if self.own { self.ns_id() } else { 0 };
        if self.own {
            info!("Dumping {}({})'s namespaces", self.root, self.root);
            info!("Dump TIME namespace {id} via {}", self.root);
        }
        let mut w = crate::images::ImageWriter::create(dir, &kinds::timens().file_name(u64::from(id)), kinds::timens())?;
        let clocks = match &self.read {
            Some(c) => *c,
            None => self.clocks()?,
        };
        w.write(&clocks)?;
        w.finish()?;
        if self.own {
            info!("Namespaces dump complete");
        }
        Ok(())
    }
}

/// A time namespace criu made for its children (the tree's root); criu
/// returns to its own with [`Entered::leave`] (or on drop).
pub struct Entered {
    /// criu's own time namespace.
    back: Option<OwnedFd>,
    /// The image's namespace id (0: timens-0.img of a tree in criu's).
    pub id: u32,
}

impl Entered {
    /// The tree had a time namespace of its own: CRIU 4.2 runs the
    /// setup-namespaces stages for it.
    pub fn own(&self) -> bool {
        self.id != 0
    }

    /// Back to criu's own time namespace (for children forked from now on).
    pub fn leave(mut self) -> Result<()> {
        let fd = self.back.take().context("left twice")?;
        nix::sched::setns(fd.as_fd(), newtime()).context("can't return to criu's time namespace after forking the root")
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(fd) = self.back.take()
            && let Err(e) = nix::sched::setns(fd.as_fd(), newtime())
        {
            warn!("can't return to criu's time namespace: {e}");
        }
    }
}

/// Which timens image a restore of `live` (pid and ids of each live task,
/// the root first) uses: its id, or None (no namespace to make). Refuses a
/// task in another namespace than the root, as CRIU 4.2 does.
fn image_id(dir: &ImageDir, live: &[(i32, &TaskKobjIdsEntry)]) -> Result<Option<u32>> {
    let &(root, root_ids) = live.first().context("no live task to restore")?;
    for &(pid, ids) in &live[1..] {
        if ids.time_ns_id != root_ids.time_ns_id {
            bail!(
                "ids-{pid}.img: task {pid} is in time namespace {:?}, the root {root} in {:?}: \
                 a sub-task in a namespace of its own can't be restored",
                ids.time_ns_id,
                root_ids.time_ns_id
            );
        }
    }
    let inv = inventory::read(dir)?;
    let criu = inv.root_ids.as_ref().and_then(|r| r.time_ns_id);
    match (root_ids.time_ns_id, criu) {
        (Some(theirs), Some(criu)) if theirs != criu => Ok(Some(theirs)),
        _ => Ok(has_timens().then_some(0)),
    }
}

/// The image's CLOCK_MONOTONIC and CLOCK_BOOTTIME (ns) the restored time
/// namespace started from (set by [`enter`] when it made one).
static STARTED_AT: std::sync::OnceLock<(Nanos, Nanos)> = std::sync::OnceLock::new();

/// When the tree is restored in a new time namespace: `clock` (monotonic
/// or boottime) as the dump read it, which is where the namespace's clock
/// started at the restore (so the time since is the restore's).
pub fn clock_at_dump(clock: libc::clockid_t) -> Option<i128> {
    let (mono, boot) = *STARTED_AT.get()?;
    match clock {
        libc::CLOCK_MONOTONIC => Some(mono),
        libc::CLOCK_BOOTTIME => Some(boot),
        _ => None,
    }
}

/// Before criu forks the root: make the time namespace the tree is
/// restored in (as CRIU 4.2: none with --unprivileged, or for a tree of
/// criu's namespace without timens-0.img or kernel support).
pub fn enter(dir: &ImageDir, unprivileged: bool, live: &[(i32, &TaskKobjIdsEntry)]) -> Result<Option<Entered>> {
    let Some(id) = image_id(dir, live)? else { return Ok(None) };
    if unprivileged {
        return Ok(None);
    }
    let name = kinds::timens().file_name(u64::from(id));
    if id == 0 && !dir.exists(&name) {
        warn!("Clocks values have not been dumped");
        return Ok(None);
    }
    let te: TimensEntry = ImageReader::open_kind(dir, &name, kinds::timens())?.expect()?;
    let (mono, boot) = (nanos(&te.monotonic), nanos(&te.boottime));
    let back = File::open("/proc/self/ns/time").context("can't open criu's time namespace")?;
    nix::sched::unshare(newtime()).context("Unable to create a new time namespace")?;
    let entered = Entered { back: Some(back.into()), id };
    // The new namespace starts with criu's offsets: criu's clocks less
    // those are the kernel's; the image's clocks less the kernel's are the
    // offsets that make them go on.
    let (prev_mono, prev_boot) = offsets("self")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/timens_offsets")
        .context("can't open /proc/self/timens_offsets")?;
    for (clk, what, want, prev) in
        [(libc::CLOCK_MONOTONIC, "monotonic", mono, prev_mono), (libc::CLOCK_BOOTTIME, "boottime", boot, prev_boot)]
    {
        let (s, n) = split(want - (clock(clk)? - prev));
        info!("timens: {what} {s} {n}");
        f.write_all(format!("{clk} {s} {n}\n").as_bytes())
            .with_context(|| format!("Unable to set a {what} clock offset ({s} s {n} ns, from {})", dir.display(&name)))?;
    }
    let _ = STARTED_AT.set((mono, boot));
    Ok(Some(entered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_and_split() {
        let (m, b) = parse_offsets("monotonic          -1 968606221\nboottime           -25 5\n").unwrap();
        assert_eq!(m, -NSEC + 968_606_221);
        assert_eq!(b, -25 * NSEC + 5);
        assert_eq!(split(m), (-1, 968_606_221));
        assert_eq!(split(-1), (-1, 999_999_999));
        assert_eq!(split(3 * NSEC), (3, 0));
        assert!(parse_offsets("monotonic 1 2\n").is_err());
        assert!(timespec(-5).is_err());
    }
}
