//! File locks and leases (`--file-locks`), as CRIU 4.2 carries them in
//! filelocks.img: one file_lock_entry per lock (flag: POSIX 1, FLOCK 2,
//! OFD 4, LEASE 8; type: F_RDLCK/F_WRLCK, a breaking lease's target type
//! with LEASE_BREAKING; the task and fd that take it back; range).
//!
//! Dump: the "lock:" lines of each fd's fdinfo (the locks set through that
//! description; a POSIX lock only in its owner's). A flock, OFD lock or
//! lease belongs to the description: recorded once, with the fd of the
//! task that set it when that task holds the description, else with its
//! first fd. A POSIX lock belongs to its task: recorded with that task's
//! first fd of the description.
//! Restore: each task, once its fds are at their numbers and nothing of
//! its own will be closed any more, takes its locks again
//! ([`restore`]); a breaking lease is taken and broken again by an open
//! of its path that can't wait.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use super::kind::{Images, State};
use crate::images::kind::kinds;
use crate::images::pb::{FdinfoEntry, FileLockEntry};
use crate::images::{ImageDir, ImageReader, ImageWriter};
use crate::proc::fdinfo::FdInfo;
use crate::sys::locks as sys;

pub const FL_POSIX: u32 = 1;
pub const FL_FLOCK: u32 = 2;
pub const FL_OFD: u32 = 4;
pub const FL_LEASE: u32 = 8;
/// In a lease's type: the lease is breaking (the rest is its target).
pub const LEASE_BREAKING: u32 = 4;
/// The mandatory-flock bit of old kernels (LOCK_MAND): not carried.
const LOCK_MAND: u32 = 32;

const IMAGE: &str = "filelocks.img";

/// One "lock:" line of fdinfo (or /proc/locks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// FL_POSIX, FL_FLOCK, FL_OFD or FL_LEASE.
    pub kind: u32,
    /// F_RDLCK/F_WRLCK/F_UNLCK (a lease's target type), | LEASE_BREAKING.
    pub ltype: u32,
    /// Who set it (-1 for OFD locks).
    pub pid: i32,
    /// "maj:min" and inode of the file.
    pub dev: String,
    pub ino: u64,
    pub start: i64,
    /// 0: to the end of the file.
    pub len: i64,
}

/// Parse the value of a "lock:" line: `1: POSIX  ADVISORY  WRITE 7934 fe:00:10011345 10 29`.
pub fn parse(v: &str) -> Result<Line> {
    let w: Vec<&str> = v.split_whitespace().collect();
    let bad = || format!("bad lock line {v:?}");
    if w.len() != 8 || !w[0].ends_with(':') {
        bail!(bad());
    }
    let kind = match w[1] {
        "POSIX" => FL_POSIX,
        "FLOCK" => FL_FLOCK,
        "OFDLCK" => FL_OFD,
        "LEASE" => FL_LEASE,
        k => bail!("a lock of kind {k} ({v}): only POSIX, OFD and flock locks and leases are carried"),
    };
    let mut ltype = match w[3] {
        "READ" => libc::F_RDLCK as u32,
        "WRITE" => libc::F_WRLCK as u32,
        "UNLCK" => libc::F_UNLCK as u32,
        t => bail!("a lock of mode {t} ({v}): not supported"),
    };
    match (kind, w[2]) {
        (FL_LEASE, "BREAKING") => ltype |= LEASE_BREAKING,
        (FL_LEASE, "ACTIVE") | (FL_POSIX | FL_FLOCK | FL_OFD, "ADVISORY") => {}
        (_, c) => bail!("a {} lock of class {c} ({v}): not supported", w[1]),
    }
    let (dev, ino) = w[5].rsplit_once(':').with_context(bad)?;
    let start: i64 = w[6].parse().with_context(bad)?;
    let len = match w[7] {
        "EOF" => 0,
        e => e.parse::<i64>().with_context(bad)? + 1 - start,
    };
    Ok(Line { kind, ltype, pid: w[4].parse().with_context(bad)?, dev: dev.to_string(), ino: ino.parse().with_context(bad)?, start, len })
}

/// The locks fdinfo shows for an fd.
pub fn lines(info: &FdInfo) -> Result<Vec<Line>> {
    info.extra.iter().filter(|(k, _)| k == "lock").map(|(_, v)| parse(v)).collect()
}

/// What the dump gathers: each entry with the file id of its description
/// and the pid that set it (who should take it back if it can).
#[derive(Debug, Default)]
pub struct Dumped {
    entries: Vec<(u32, i32, FileLockEntry)>,
    /// (task, description) pairs whose POSIX locks are recorded.
    posix_seen: HashSet<(i32, u32)>,
}

impl Dumped {
    pub fn entries(&self) -> impl Iterator<Item = &FileLockEntry> {
        self.entries.iter().map(|(.., e)| e)
    }
}

/// An fd whose locks the dump notes: fd `fd` of `pid`, of description
/// (file) `id`, met for the first time there or not (`first`); `what`
/// names it for errors.
pub struct Holder<'a> {
    pub pid: i32,
    pub fd: i32,
    pub id: u32,
    pub first: bool,
    pub what: &'a str,
}

/// Dump: the locks fdinfo `info` shows for fd `h`; `dup` gives a copy of
/// it (a breaking lease's target type is asked of it, as CRIU does).
pub fn note(st: &mut State, h: Holder, info: &FdInfo, dup: &mut dyn FnMut() -> Result<OwnedFd>) -> Result<()> {
    let Holder { pid, fd, id, first, what } = h;
    let found = lines(info).with_context(|| format!("{what} holds a file lock"))?;
    if found.is_empty() {
        return Ok(());
    }
    let d = st.get_mut::<Dumped>();
    let posix_new = d.posix_seen.insert((pid, id));
    for l in found {
        let mut e = FileLockEntry { flag: l.kind, r#type: l.ltype, pid, fd, start: l.start, len: l.len };
        if l.kind == FL_POSIX {
            // Its own (fdinfo shows only the owner's), once per description.
            if posix_new {
                mapped_check(pid, &l, what)?;
                d.entries.push((id, l.pid, e));
            }
            continue;
        }
        if !first {
            // The description's: recorded with its first fd; the task
            // that set it takes it back if it holds the description.
            let mine = |(i, setter, e): &&mut (u32, i32, FileLockEntry)| {
                *i == id && *setter == pid && e.pid != pid && e.flag == l.kind && e.start == l.start && e.len == l.len
            };
            if let Some((.., e)) = d.entries.iter_mut().find(mine).filter(|_| l.pid == pid) {
                (e.pid, e.fd) = (pid, fd);
            }
            continue;
        }
        if l.kind == FL_LEASE && l.ltype & LEASE_BREAKING != 0 {
            let f = dup()?;
            let target = sys::get_lease(f.as_fd()).with_context(|| format!("F_GETLEASE on {what}"))?;
            e.r#type = LEASE_BREAKING | target as u32;
        }
        d.entries.push((id, l.pid, e));
    }
    Ok(())
}

/// A task loses its POSIX locks on a file when it closes any fd of it: the
/// restore closes the fds it maps files through, so a POSIX lock on a file
/// the task maps would not come back. Refused by name.
fn mapped_check(pid: i32, l: &Line, what: &str) -> Result<()> {
    let maps = crate::proc::read(pid, "maps")?;
    let key = format!("{} {}", l.dev, l.ino);
    if maps.lines().any(|m| m.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join(" ") == key) {
        bail!("{what} holds a POSIX lock on a file task {pid} also maps: restoring such a lock is not supported");
    }
    Ok(())
}

/// Dump: write filelocks.img (none when no lock was met, as CRIU 4.2).
pub fn write_image(st: &State, dir: &ImageDir) -> Result<()> {
    let Some(d) = st.get::<Dumped>().filter(|d| !d.entries.is_empty()) else { return Ok(()) };
    let mut w = ImageWriter::create(dir, IMAGE, kinds::file_locks())?;
    for (.., e) in &d.entries {
        w.write(e)?;
    }
    w.finish()?;
    Ok(())
}

/// filelocks.img as a restore reads it.
#[derive(Debug, Default)]
pub struct Loaded(pub Vec<FileLockEntry>);

/// Restore: read filelocks.img (if any) into `imgs`.
pub fn load(dir: &ImageDir, imgs: &mut Images) -> Result<()> {
    if !dir.exists(IMAGE) {
        return Ok(());
    }
    let all = ImageReader::open_kind(dir, IMAGE, kinds::file_locks())?.all().with_context(|| format!("reading {IMAGE}"))?;
    imgs.state.get_mut::<Loaded>().0 = all;
    Ok(())
}

/// Restore, before anything is made: every lock names a task of the tree
/// (`tree_pids`), which takes it back (CRIU 4.2 skips others silently).
pub fn check(imgs: &Images, tree_pids: &[i32]) -> Result<()> {
    let Some(l) = imgs.state.get::<Loaded>() else { return Ok(()) };
    if let Some(e) = l.0.iter().find(|e| !tree_pids.contains(&e.pid)) {
        bail!("{IMAGE}: a lock (flag {}, type {}) of task {} on fd {}: no such task in the tree", e.flag, e.r#type, e.pid, e.fd);
    }
    Ok(())
}

/// Restore, in task `pid` with every fd of `fdinfo` at its number and no
/// fd of its own to close any more: take its locks of the images again.
pub fn restore(pid: i32, fdinfo: &[FdinfoEntry], imgs: &Images) -> Result<()> {
    let Some(l) = imgs.state.get::<Loaded>() else { return Ok(()) };
    for e in l.0.iter().filter(|e| e.pid == pid) {
        let who = format!("{IMAGE}: lock (flag {}, type {}) of task {pid} on fd {}", e.flag, e.r#type, e.fd);
        let fi = fdinfo.iter().find(|f| f.fd as i32 == e.fd).with_context(|| format!("{who}: the task has no such fd"))?;
        take(e, sys::installed(e.fd), fi, imgs).with_context(|| who.clone())?;
    }
    Ok(())
}

/// Take lock `e` on `fd` (fd entry `fi`).
fn take(e: &FileLockEntry, fd: BorrowedFd<'_>, fi: &FdinfoEntry, imgs: &Images) -> Result<()> {
    let ty = e.r#type as i32;
    match e.flag {
        FL_FLOCK => {
            if e.r#type & LOCK_MAND != 0 {
                bail!("mandatory flock()s are not supported");
            }
            let op = match ty {
                libc::F_RDLCK => libc::LOCK_SH,
                libc::F_WRLCK => libc::LOCK_EX,
                libc::F_UNLCK => return Ok(()),
                _ => bail!("unknown flock type {ty}"),
            };
            sys::flock(fd, op | libc::LOCK_NB).context("flock")
        }
        FL_POSIX | FL_OFD => {
            let cmd = if e.flag == FL_POSIX { libc::F_SETLK } else { libc::F_OFD_SETLK };
            let mut lk = sys::record(ty, e.start, e.len);
            sys::fcntl_lock(fd, cmd, &mut lk).context(if e.flag == FL_POSIX { "F_SETLK" } else { "F_OFD_SETLK" })
        }
        FL_LEASE if e.r#type & LEASE_BREAKING != 0 => breaking_lease(e, fd, fi, imgs),
        FL_LEASE => sys::set_lease(fd, ty).context("F_SETLEASE"),
        f => bail!("unknown lock flag {f}"),
    }
}

/// A lease that was breaking: taken as the fd's access mode allows, then
/// broken towards its target type by an open of its path that can't wait
/// (O_WRONLY to have it go, O_RDONLY to have it drop to a read lease).
/// The I/O signal the break sends the task (its new lease owner) is
/// blocked and taken off again: the task had it at the first break.
fn breaking_lease(e: &FileLockEntry, fd: BorrowedFd<'_>, fi: &FdinfoEntry, imgs: &Images) -> Result<()> {
    let fe = imgs.get(&fi.id).with_context(|| format!("file {} is not in files.img", fi.id))?;
    let reg = fe.reg.as_ref().context("a breaking lease on a file without a path record")?;
    let target = (e.r#type & !LEASE_BREAKING) as i32;
    let breaker = match target {
        libc::F_UNLCK => libc::O_WRONLY,
        libc::F_RDLCK => libc::O_RDONLY,
        t => bail!("a lease breaking to type {t}"),
    };
    let held = if reg.flags as i32 & libc::O_ACCMODE == libc::O_RDONLY { libc::F_RDLCK } else { libc::F_WRLCK };
    let signo = match sys::get_sig(fd).context("F_GETSIG")? {
        0 => libc::SIGIO,
        s => s,
    };
    let sig = Signal::try_from(signo).context("the lease's I/O signal")?;
    let mut block = SigSet::empty();
    block.add(sig);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&block), Some(&mut old)).context("blocking the I/O signal")?;
    let r = (|| -> Result<()> {
        let was_pending = sys::pending(signo).context("sigpending")?;
        sys::set_lease(fd, held).context("F_SETLEASE")?;
        match nix::fcntl::open(reg.name.as_str(), nix::fcntl::OFlag::from_bits_retain(breaker | libc::O_NONBLOCK | libc::O_CLOEXEC), nix::sys::stat::Mode::empty()) {
            Err(nix::errno::Errno::EWOULDBLOCK) => {}
            Ok(_) => bail!("opening {} did not break the lease again", reg.name),
            Err(err) => bail!("opening {} to break the lease again: {err}", reg.name),
        }
        if !was_pending {
            sys::take_pending(signo).context("taking the break's I/O signal")?;
        }
        Ok(())
    })();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None).context("restoring the signal mask")?;
    r
}

#[cfg(test)]
mod tests;
