//! The fd table of a task at dump: each fd goes to the first kind of the
//! registry that claims it, which records its file description in
//! files.img once per description (fds sharing one, dup'ed or inherited
//! over fork, share an id); the fd itself goes to fdinfo-N.img. What no
//! kind claims is refused, naming the fd and its type.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdProbe, State};
use super::registry::KINDS;
use super::FileTable;
use crate::images::pb::FdinfoEntry;
use crate::images::ImageDir;
use crate::proc::fdinfo;

/// What dumping the fds of a tree's tasks gathers, shared by all of them:
/// an open file description found in several tasks (inherited over fork)
/// is one files.img entry, its data (pipe contents, socket queues) dumped
/// once by its kind.
#[derive(Debug, Default)]
pub struct Fds {
    /// Each kind's own data (see [`State`]).
    pub state: State,
    /// Descriptions recorded so far: (pid, fd, dev, ino, id, fd type).
    seen: Vec<(i32, i32, u64, u64, u32, i32)>,
    /// Files found in flight in socket queues, held open for the dump.
    held: Vec<OwnedFd>,
    /// --file-locks: carry the locks and leases fds hold (else refused).
    pub file_locks: bool,
    /// --tcp-close: connected TCP sockets are recorded, to come back closed.
    pub tcp_close: bool,
}

/// Dump every fd of `pid` into `files` (and `out`, shared by the tree's
/// tasks); returns the task's fdinfo entries, whose `flags` are fd flags.
/// Terminals need `shell_job` (--shell-job).
pub fn dump(pid: i32, out: &mut Fds, files: &mut FileTable, stat: &crate::proc::stat::Stat, shell_job: bool) -> Result<Vec<FdinfoEntry>> {
    dump_fds(pid, &crate::proc::fds(pid)?, out, files, stat, shell_job)
}

/// Dump fds `list` of `pid`, as [`dump`] does the whole table.
pub fn dump_fds(
    pid: i32,
    list: &[i32],
    out: &mut Fds,
    files: &mut FileTable,
    stat: &crate::proc::stat::Stat,
    shell_job: bool,
) -> Result<Vec<FdinfoEntry>> {
    let mut cx = DumpCx { files, fds: out, stat, shell_job };
    let mut fdinfos: Vec<FdinfoEntry> = Vec::new();
    let mut pidfd: Option<OwnedFd> = None;
    for &fd in list {
        let (id, ty, flags) = one(pid, fd, &mut cx, &mut pidfd, false)?;
        fdinfos.push(FdinfoEntry { id, flags, r#type: ty, fd: fd as u32, xattr_security_selinux: None });
    }
    Ok(fdinfos)
}

/// Record a file found in flight (SCM_RIGHTS of a queued message), `fd`
/// being the copy the peek gave us: as any fd, but held open until the
/// dump ends (so descriptions found later compare equal to it). Only kinds
/// that say they travel ([`super::kind::FdKind::travels`]) are carried.
pub fn in_flight(fd: OwnedFd, cx: &mut DumpCx) -> Result<u32> {
    let raw = fd.as_raw_fd();
    let me = std::process::id() as i32;
    cx.fds.held.push(fd);
    let mut pidfd = None;
    let (id, _, _) = one(me, raw, cx, &mut pidfd, true)?;
    Ok(id)
}

/// Dump fd `fd` of `pid`: its description's id (new, or the one it shares
/// with an fd dumped before), its fd type and its fd flags. `flying`: a
/// file in flight (fd of ours).
fn one(pid: i32, fd: i32, cx: &mut DumpCx, pidfd: &mut Option<OwnedFd>, flying: bool) -> Result<(u32, i32, u32)> {
    let link_path = format!("/proc/{pid}/fd/{fd}");
    let link = std::fs::read_link(&link_path)
        .with_context(|| format!("can't read fd {fd} of task {pid}"))?
        .to_string_lossy()
        .into_owned();
    let md = std::fs::metadata(&link_path).with_context(|| format!("can't stat fd {fd} ({link}) of task {pid}"))?;
    let info = fdinfo::read(pid, fd)?;
    if let Some(lock) = info.get("lock").filter(|_| !cx.fds.file_locks) {
        // A lock dropped silently would be lost on restore: refuse, as
        // CRIU does without --file-locks.
        bail!("fd {fd} ({link}) of task {pid} holds a file lock ({}): dump with --file-locks to carry it", lock.trim());
    }
    let what = format!("fd {fd} ({link}) of task {pid}");
    let fd_flags = if info.flags & libc::O_CLOEXEC as u32 != 0 { libc::FD_CLOEXEC as u32 } else { 0 };
    let file_flags = info.flags & !(libc::O_CLOEXEC as u32);

    if let Some(&(.., id, ty)) = cx.fds.seen.iter().find(|(opid, ofd, dev, ino, ..)| {
        *dev == md.dev() && *ino == md.ino() && same_description(*opid, *ofd, pid, fd)
    }) {
        if !flying {
            let h = super::locks::Holder { pid, fd, id, first: false, what: &what };
            super::locks::note(&mut cx.fds.state, h, &info, &mut || unreachable_dup(&what))?;
        }
        return Ok((id, ty, fd_flags));
    }

    let mut p = FdProbe { pid, fd, link: &link, md: &md, info: &info, flags: file_flags, pidfd };
    let kind = KINDS.iter().copied().find(|k| k.claims(&p));
    // A file in flight is carried only by a kind that says it travels.
    if flying && !kind.is_some_and(|k| k.travels()) {
        bail!("a file in flight is of type {}: only regular files, directories, devices, pipes and unix sockets are carried in flight yet", p.describe());
    }
    let Some(kind) = kind else {
        if link == "anon_inode:[io_uring]" {
            bail!("fd {fd} of task {pid} is an io_uring instance: not supported");
        }
        bail!("fd {fd} of task {pid} is of type {}: this kind of file is not supported yet", p.describe());
    };
    if std::os::unix::fs::FileTypeExt::is_socket(&md.file_type()) {
        crate::net::ns::check_socket_netns(p.dup()?.as_fd(), &what)?;
    }
    let id = cx.files.alloc_id();
    if flying && info.get("lock").is_some() {
        bail!("a file in flight of type {} holds a file lock: locks of files in flight are not supported", p.describe());
    }
    if !flying {
        let h = super::locks::Holder { pid, fd, id, first: true, what: &what };
        super::locks::note(&mut cx.fds.state, h, &info, &mut || p.dup())?;
    }
    let mut entry = kind.dump(&mut p, id, cx)?;
    // Who gets its I/O signals, in the record's own fown.
    if file_flags & libc::O_PATH as u32 == 0 {
        let fown = super::fown::read(pid, fd, p.dup()?.as_fd())?;
        if super::fown::is_set(&fown) {
            match super::fown::of_mut(&mut entry) {
                Some(f) => *f = fown,
                None => bail!("fd {fd} ({link}) of task {pid} has an owner or I/O signal (F_SETOWN/F_SETSIG) its record can't hold"),
            }
        }
    }
    let ty = kind.fd_type() as i32;
    kind.record(entry, cx);
    cx.fds.seen.push((pid, fd, md.dev(), md.ino(), id, ty));
    Ok((id, ty, fd_flags))
}

/// Once every task's fds are dumped, just before the clocks are read for
/// the image: each kind's last checks and readings (a timerfd's remaining
/// time, a unix socket's peer among the dumped tasks; `who` names them).
pub fn dumped_all(out: &mut Fds, files: &mut FileTable, who: &str) -> Result<()> {
    for k in KINDS {
        k.dumped_all(&mut out.state, files, who).with_context(|| format!("{} files", k.name()))?;
    }
    Ok(())
}

/// Write every kind's side images (pipes-data, sk-queues, tty-info...).
pub fn write_images(out: &Fds, dir: &ImageDir) -> Result<()> {
    for k in KINDS {
        k.write_images(&out.state, dir)?;
    }
    super::locks::write_image(&out.state, dir)
}

/// A description met before needs no copy for its locks.
fn unreachable_dup(what: &str) -> Result<OwnedFd> {
    bail!("{what}: no copy is taken of a description met before")
}

/// Whether fd `a` of `pid_a` and fd `b` of `pid_b` are one open file
/// description.
fn same_description(pid_a: i32, a: i32, pid_b: i32, b: i32) -> bool {
    let (pa, pb) = (nix::unistd::Pid::from_raw(pid_a), nix::unistd::Pid::from_raw(pid_b));
    matches!(crate::sys::kcmp::kcmp(pa, pb, 0 /* KCMP_FILE */, a as u64, b as u64), Ok(0))
}
