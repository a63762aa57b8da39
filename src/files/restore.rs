//! The restore side of the fd table: read files.img and every kind's side
//! images, open each file description once through its kind (or take the
//! one `--inherit-fd` gives), then put every fd at its number with its
//! close-on-exec flag, and close everything else the restoring process
//! had, but its service fds.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::kind::{Images, OpenCx, State};
use super::registry::{self, KINDS};
use crate::images::kind::kinds;
use crate::images::pb::{FdinfoEntry, FileEntry};
use crate::images::{ImageDir, ImageReader};

/// Flags that only mean something at open time and must not be replayed.
pub const OPEN_ONLY: i32 = libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Set the file status flags a record holds on a description we made
/// (access mode and open-time flags left out).
pub fn set_status_flags(fd: std::os::fd::BorrowedFd<'_>, flags: u32) -> nix::Result<()> {
    let fl = OFlag::from_bits_truncate(flags as i32 & !libc::O_ACCMODE & !OPEN_ONLY);
    fcntl(fd, FcntlArg::F_SETFL(fl)).map(drop)
}

impl Images {
    /// files.img and the side images of every kind.
    pub fn load(dir: &ImageDir) -> Result<Images> {
        let entries: HashMap<u32, FileEntry> =
            ImageReader::open_kind(dir, "files.img", kinds::files())?.all()?.into_iter().map(|f| (f.id, f)).collect();
        let mut imgs = Images { entries, state: State::default() };
        for k in KINDS {
            k.load_images(dir, &mut imgs).with_context(|| format!("reading the images of {} files", k.name()))?;
        }
        super::locks::load(dir, &mut imgs)?;
        Ok(imgs)
    }

    /// Before anything is checked or opened: what each kind makes on disk
    /// for its records (ghost files).
    pub fn prepare(&mut self, dir: &ImageDir) -> Result<()> {
        for k in KINDS {
            k.prepare(dir, self).with_context(|| format!("preparing {} files", k.name()))?;
        }
        Ok(())
    }

    /// Every task of the tree holds its files: what was made for them
    /// goes (also when the restore fails: on drop).
    pub fn settle(&self) {
        for k in KINDS {
            k.settled(self);
        }
    }
}

/// Opened descriptions, by file id, ready to be put at their fd numbers.
/// Opened once for a whole tree (before its tasks fork), so a description
/// several tasks share is one description again; each task installs the
/// ones its fd table names.
#[derive(Default)]
pub struct Opened {
    by_id: HashMap<u32, OwnedFd>,
}

/// `--inherit-fd fd[N]:RES`: the fd of ours to use for a file instead of
/// opening it, RES being one of the names the file's kind gives it.
fn inherited(inherit: &[(i32, String)], keys: &[String]) -> Option<i32> {
    inherit.iter().find(|(_, r)| keys.iter().any(|k| k == r)).map(|(n, _)| *n)
}

fn dup_inherited(n: i32, what: &str) -> Result<OwnedFd> {
    crate::sys::inherited::dup(n).with_context(|| format!("--inherit-fd fd[{n}] for {what}"))
}

/// The record of file `id`, and its kind.
fn record(imgs: &Images, id: u32, fd: u32) -> Result<(&FileEntry, &'static dyn super::kind::FdKind)> {
    let fe = imgs.get(&id).with_context(|| format!("fd {fd}: file id {id} is not in files.img"))?;
    let kind = registry::by_type(fe.r#type)
        .with_context(|| format!("fd {fd}: files of type {} can't be restored yet", registry::type_name(fe.r#type)))?;
    Ok((fe, kind))
}

/// Open every file the fd tables refer to (`fdinfo`: all of the tree's).
/// `inherit` is --inherit-fd; `tree_pids` every pid of the tree.
pub fn open(fdinfo: &[FdinfoEntry], imgs: &Images, inherit: &[(i32, String)], shell_job: bool, tree_pids: &[i32]) -> Result<Opened> {
    let mut cx = OpenCx { images: imgs, opened: HashMap::new(), more: Vec::new(), state: State::default(), shell_job, tree_pids };
    // The files to open: the fd tables', then those their kinds ask for
    // (files in flight in queues: fi.fd is u32::MAX).
    let mut todo: Vec<FdinfoEntry> = fdinfo.to_vec();
    let mut next = 0;
    while next < todo.len() {
        let fi = todo[next].clone();
        next += 1;
        if cx.opened.contains_key(&fi.id) {
            continue;
        }
        let (fe, kind) = record(imgs, fi.id, fi.fd)?;
        let keys = kind.inherit_keys(fe);
        let fd = match inherited(inherit, &keys) {
            Some(n) => dup_inherited(n, &keys[0])?,
            None => {
                let Some(fd) = kind.open(fe, fi.fd, &mut cx).with_context(|| format!("restoring fd {}", fi.fd))? else { continue };
                if let Some(flags) = kind.status_flags(fe) {
                    set_status_flags(fd.as_fd(), flags).with_context(|| format!("F_SETFL on {} fd {}", kind.name(), fi.fd))?;
                }
                fd
            }
        };
        cx.opened.insert(fi.id, fd);
        todo.append(&mut cx.more);
    }
    for k in KINDS {
        k.opened_all(&mut cx)?;
    }
    Ok(Opened { by_id: cx.opened })
}

impl Opened {
    /// The description opened for file `id` (taking it).
    pub fn take(&mut self, id: u32) -> Option<OwnedFd> {
        self.by_id.remove(&id)
    }

    /// The description opened for file `id` (kept).
    pub fn get(&self, id: u32) -> Option<&OwnedFd> {
        self.by_id.get(&id)
    }

    /// Open what the kinds left for the task itself (files under /proc/PID
    /// of a task of the tree): every task exists by now.
    pub fn open_deferred(&mut self, fdinfo: &[FdinfoEntry], imgs: &Images) -> Result<()> {
        for fi in fdinfo {
            if self.by_id.contains_key(&fi.id) {
                continue;
            }
            let (fe, kind) = record(imgs, fi.id, fi.fd)?;
            if let Some(fd) = kind.open_late(fe, fi.fd).with_context(|| format!("restoring fd {}", fi.fd))? {
                self.by_id.insert(fi.id, fd);
            }
        }
        Ok(())
    }

    /// Put each fd at its number with its flags, and close every other fd
    /// but `keep` (the restore's service fds, which must not collide), the
    /// descriptions this fd table does not name included.
    pub fn install(self, fdinfo: &[FdinfoEntry], keep: &[RawFd]) -> Result<()> {
        let targets: Vec<RawFd> = fdinfo.iter().map(|f| f.fd as RawFd).collect();
        if let Some(c) = keep.iter().find(|k| targets.contains(k)) {
            bail!("fd {c} of the image collides with a restore service fd");
        }
        // Move our sources above every target first; then everything else
        // goes, and each target number (free now) gets its description.
        let top = targets.iter().chain(keep).copied().max().unwrap_or(2) + 1;
        let mut high: HashMap<u32, OwnedFd> = HashMap::new();
        for (id, fd) in self.by_id {
            if !fdinfo.iter().any(|f| f.id == id) {
                continue;
            }
            high.insert(id, crate::sys::fd::dup_cloexec_from(fd.as_fd(), top).context("F_DUPFD_CLOEXEC")?);
        }
        if let Some(fi) = fdinfo.iter().find(|fi| !high.contains_key(&fi.id)) {
            bail!("fd {}: file {} was not opened", fi.fd, fi.id);
        }
        let sources = high.values().map(AsRawFd::as_raw_fd);
        crate::sys::fd::close_all_except(&sources.chain(keep.iter().copied()).collect::<Vec<_>>());
        for fi in fdinfo {
            let src = high.get(&fi.id).with_context(|| format!("fd {}: file {} was not opened", fi.fd, fi.id))?;
            let cloexec = fi.flags & libc::FD_CLOEXEC as u32 != 0;
            crate::sys::fd::dup_to(src.as_fd(), fi.fd as RawFd, cloexec).with_context(|| format!("dup2 to fd {}", fi.fd))?;
        }
        drop(high);
        // O_ASYNC was set where the description was opened: the kernel's
        // SIGIO record names that fd number (si_fd). Set it again from the
        // first fd of each description (turning it off and on re-registers).
        let mut seen = Vec::new();
        for fi in fdinfo {
            if seen.contains(&fi.id) {
                continue;
            }
            seen.push(fi.id);
            let fd = fi.fd as RawFd;
            let fl = OFlag::from_bits_truncate(crate::sys::fd::get_fl(fd).with_context(|| format!("F_GETFL on fd {fd}"))?);
            if fl.contains(OFlag::O_ASYNC) {
                crate::sys::fd::set_fl(fd, (fl - OFlag::O_ASYNC).bits()).with_context(|| format!("O_ASYNC off on fd {fd}"))?;
                crate::sys::fd::set_fl(fd, fl.bits()).with_context(|| format!("O_ASYNC on fd {fd}"))?;
            }
        }
        Ok(())
    }
}

/// With every fd of the task at its number: what each kind does then
/// (epoll targets), once per description: not for those in `done`,
/// descriptions an earlier task of the tree holds (and did it for).
pub fn installed(fdinfo: &[FdinfoEntry], imgs: &Images, done: &[u32]) -> Result<()> {
    let mut seen = Vec::new();
    for fi in fdinfo {
        if seen.contains(&fi.id) || done.contains(&fi.id) {
            continue;
        }
        seen.push(fi.id);
        let (fe, kind) = record(imgs, fi.id, fi.fd)?;
        kind.installed(fe, fi.fd as i32)?;
    }
    Ok(())
}

/// Check every file the tree uses still matches its record, but those
/// `--inherit-fd` replaces (`inherit`: RES names) and those under /proc/PID
/// of a task of the tree (`tree_pids`; checked when opened).
pub fn check(imgs: &Images, inherit: &[String], tree_pids: &[i32]) -> Result<()> {
    super::locks::check(imgs, tree_pids)?;
    let companions: Vec<u32> = imgs.values().flat_map(|f| registry::by_type(f.r#type).map(|k| k.companions(f)).unwrap_or_default()).collect();
    for (id, f) in imgs.iter() {
        if companions.contains(id) {
            continue;
        }
        if let Some(r) = &f.reg {
            if inherit.iter().any(|k| *k == r.name || *k == r.name.trim_start_matches('/')) {
                continue;
            }
            if super::proc_pid_of(&r.name).is_some_and(|p| tree_pids.contains(&p)) {
                continue;
            }
            let file = super::reg::open_for_check(r).with_context(|| format!("file {} (id {id}) of the image is gone", r.name))?;
            super::reg::validate(r, &file)?;
        }
    }
    Ok(())
}
