//! The fd table of a task: classify each fd (by st_mode, then what the link
//! says), record its file description in files.img once per description
//! (fds sharing one, e.g. dup'ed, share an id), and write fdinfo-N.img.
//! Kinds we can't dump yet are refused naming the fd and its type.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{bail, Context, Result};

use std::os::fd::AsFd;

use super::{pipe, tty, FileTable};
use crate::sockets::unix;
use crate::images::pb::{FdTypes, FdinfoEntry, FileEntry, PipeDataEntry};
use crate::proc::fdinfo;

/// Pipe data found while dumping fds, for pipes-data.img.
pub type PipeData = Vec<(PipeDataEntry, Vec<u8>)>;

/// What dumping the fds of a tree's tasks gathers, shared by all of them:
/// an open file description found in several tasks (inherited over fork)
/// is one files.img entry, its data (pipe contents, socket queues) dumped
/// once.
#[derive(Debug, Default)]
pub struct Fds {
    pub pipe_data: PipeData,
    pub has_pipes: bool,
    pub ttys: tty::TtyInfos,
    /// Messages queued on unix sockets, for sk-queues.img.
    pub sk_queues: Vec<(crate::images::pb::SkPacketEntry, Vec<u8>)>,
    /// Unix sockets dumped: (ino, peer ino), to check pairs are complete.
    pub unix: Vec<(u32, u32)>,
    /// files.img records of unix sockets whose peer is not dumped yet, by
    /// peer ino: as in CRIU, a socket's record follows its peer's.
    unix_waiting: Vec<(u32, FileEntry)>,
    /// Descriptions recorded so far: (pid, fd, dev, ino, id).
    seen: Vec<(i32, i32, u64, u64, u32)>,
    /// Files found in flight in socket queues, held open for the dump.
    held: Vec<std::os::fd::OwnedFd>,
    /// Pipes whose data is dumped already, by inode.
    pipes_seen: HashMap<u64, ()>,
    /// Timerfds recorded: (pid, fd, file id), read again last
    /// ([`refresh_timerfds`]).
    timerfds: Vec<(i32, i32, u32)>,
}

fn kind_name(ft: &std::fs::FileType, link: &str) -> String {
    if ft.is_socket() {
        format!("socket ({link})")
    } else if let Some(name) = link.strip_prefix("anon_inode:") {
        format!("anon inode ({name})")
    } else if ft.is_block_device() {
        format!("block device ({link})")
    } else if ft.is_fifo() {
        format!("fifo ({link})")
    } else {
        link.to_string()
    }
}

use super::tty::is_tty;

/// Dump every fd of `pid` into `files` (and `out`, shared by the tree's
/// tasks); returns the task's fdinfo entries, whose `flags` are fd flags.
/// Terminals need `shell_job` (--shell-job).
pub fn dump(pid: i32, out: &mut Fds, files: &mut FileTable, stat: &crate::proc::stat::Stat, shell_job: bool) -> Result<Vec<FdinfoEntry>> {
    let mut fdinfos: Vec<FdinfoEntry> = Vec::new();
    let mut pidfd: Option<std::os::fd::OwnedFd> = None;
    for fd in crate::proc::fds(pid)? {
        let (id, ty, flags) = one(pid, fd, out, files, stat, shell_job, &mut pidfd)?;
        fdinfos.push(FdinfoEntry { id, flags, r#type: ty, fd: fd as u32, xattr_security_selinux: None });
    }
    Ok(fdinfos)
}

/// Record a file found in flight (SCM_RIGHTS of a queued message), `fd`
/// being the copy the peek gave us: as any fd, but held open until the
/// dump ends (so descriptions found later compare equal to it). Regular
/// files, directories, devices and pipes are carried; other kinds are
/// refused.
fn in_flight(fd: std::os::fd::OwnedFd, out: &mut Fds, files: &mut FileTable, stat: &crate::proc::stat::Stat) -> Result<u32> {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    let me = std::process::id() as i32;
    let link = std::fs::read_link(format!("/proc/self/fd/{raw}")).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    let md = std::fs::metadata(format!("/proc/self/fd/{raw}")).with_context(|| format!("can't stat a file in flight ({link})"))?;
    let ft = md.file_type();
    let carried = ft.is_file() || ft.is_dir() || (ft.is_char_device() && !is_tty(md.rdev())) || (ft.is_fifo() && link.starts_with("pipe:"));
    if !carried {
        bail!("a file in flight is of type {}: only regular files, directories, devices and pipes are carried in flight yet", kind_name(&ft, &link));
    }
    out.held.push(fd);
    let mut pidfd = None;
    let (id, _, _) = one(me, raw, out, files, stat, false, &mut pidfd)?;
    Ok(id)
}

/// Dump fd `fd` of `pid`: its description's id (new, or the one it shares
/// with an fd dumped before), its fd type and its fd flags.
#[allow(clippy::too_many_arguments)]
fn one(
    pid: i32,
    fd: i32,
    out: &mut Fds,
    files: &mut FileTable,
    stat: &crate::proc::stat::Stat,
    shell_job: bool,
    pidfd: &mut Option<std::os::fd::OwnedFd>,
) -> Result<(u32, i32, u32)> {
    {
        let link_path = format!("/proc/{pid}/fd/{fd}");
        let link = std::fs::read_link(&link_path)
            .with_context(|| format!("can't read fd {fd} of task {pid}"))?
            .to_string_lossy()
            .into_owned();
        let md = std::fs::metadata(&link_path).with_context(|| format!("can't stat fd {fd} ({link}) of task {pid}"))?;
        let info = fdinfo::read(pid, fd)?;
        if let Some(lock) = info.get("lock") {
            // A lock dropped silently would be lost on restore: refuse, as
            // CRIU does without --file-locks.
            bail!("fd {fd} ({link}) of task {pid} holds a file lock ({}): dumping file locks (--file-locks) is not supported yet", lock.trim());
        }
        let fd_flags = if info.flags & libc::O_CLOEXEC as u32 != 0 { libc::FD_CLOEXEC as u32 } else { 0 };
        let file_flags = info.flags & !(libc::O_CLOEXEC as u32);
        let ft = md.file_type();

        if let Some(&(_, _, _, _, id)) = out.seen.iter().find(|(opid, ofd, dev, ino, _)| {
            *dev == md.dev() && *ino == md.ino() && same_description(*opid, *ofd, pid, fd)
        }) {
            let ty = files
                .entries()
                .iter()
                .chain(out.unix_waiting.iter().map(|(_, e)| e))
                .find(|e| e.id == id)
                .map(|e| e.r#type)
                .unwrap_or(FdTypes::Reg as i32);
            return Ok((id, ty, fd_flags));
        }

        let id = files.alloc_id();
        let o_path = file_flags & libc::O_PATH as u32 != 0;
        let ty = if o_path && (ft.is_file() || ft.is_dir() || ft.is_symlink() || ft.is_char_device() || ft.is_block_device()) {
            // An O_PATH fd (a symlink's itself with O_NOFOLLOW): recorded
            // from a copy of it (reopening it through /proc would follow
            // the link or need read access).
            let f = File::from(their_fd(pid, fd, pidfd)?);
            files.push_reg_file(id, &link, &f, file_flags, info.pos).with_context(|| format!("fd {fd} of task {pid}"))?;
            FdTypes::Reg
        } else if ft.is_file() || ft.is_dir() || (ft.is_char_device() && !is_tty(md.rdev())) {
            let f = File::open(&link_path).with_context(|| format!("can't open fd {fd} ({link}) of task {pid}"))?;
            files.push_reg_file(id, &link, &f, file_flags, info.pos).with_context(|| format!("fd {fd} of task {pid}"))?;
            FdTypes::Reg
        } else if ft.is_fifo() && link.starts_with("pipe:") {
            files.push(FileEntry {
                r#type: FdTypes::Pipe as i32,
                id,
                pipe: Some(pipe::entry(id, md.ino(), file_flags)),
                ..Default::default()
            });
            out.has_pipes = true;
            if out.pipes_seen.insert(md.ino(), ()).is_none() {
                // One record per pipe, empty or not (as CRIU): it also
                // carries the pipe's size.
                out.pipe_data.push(pipe::peek_data(pid, fd)?);
            }
            FdTypes::Pipe
        } else if ft.is_char_device() {
            let t = tty::TtyFd { pid, fd, id, link: &link, flags: file_flags };
            tty::dump(&t, stat, shell_job, files, &mut out.ttys)?;
            FdTypes::Tty
        } else if ft.is_socket() {
            let ours = their_fd(pid, fd, pidfd)?;
            let d = unix::diag(md.ino() as u32);
            let d = match d {
                Ok(d) if d.ino == md.ino() as u32 => d,
                _ => bail!("fd {fd} of task {pid} is a socket ({link}) that is not a unix socket: not supported yet"),
            };
            let e = unix::entry(id, &d, file_flags, ours.as_fd()).with_context(|| format!("fd {fd} of task {pid}"))?;
            let q = unix::peek_queue(ours.as_fd(), d.ty, d.rqlen, d.shutdown).with_context(|| format!("queue of fd {fd} of task {pid}"))?;
            for (data, fds) in q {
                let mut rights = Vec::new();
                for f in fds {
                    rights.push(in_flight(f, out, files, stat).with_context(|| format!("queue of fd {fd} of task {pid}"))?);
                }
                out.sk_queues.push(unix::queue_entry(id, data, rights));
            }
            let rec = FileEntry { r#type: FdTypes::Unixsk as i32, id, usk: Some(e), ..Default::default() };
            if out.unix.iter().any(|(i, _)| *i == d.peer) {
                files.push(rec);
            } else {
                out.unix_waiting.push((d.peer, rec));
            }
            out.unix.push((d.ino, d.peer));
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut out.unix_waiting).into_iter().partition(|(p, _)| *p == d.ino);
            out.unix_waiting = waiting;
            for (_, r) in ready {
                files.push(r);
            }
            FdTypes::Unixsk
        } else if link == "anon_inode:inotify" {
            let e = super::inotify::entry(id, file_flags, &info).with_context(|| format!("fd {fd} of task {pid}"))?;
            files.push(FileEntry { r#type: FdTypes::Inotify as i32, id, ify: Some(e), ..Default::default() });
            FdTypes::Inotify
        } else if link == "anon_inode:[eventpoll]" {
            let e = super::epoll::dump(pid, fd, id, file_flags, &info).with_context(|| format!("fd {fd} of task {pid}"))?;
            files.push(FileEntry { r#type: FdTypes::Eventpoll as i32, id, epfd: Some(e), ..Default::default() });
            FdTypes::Eventpoll
        } else if link == "anon_inode:[signalfd]" {
            let e = super::anonfd::signalfd_entry(id, file_flags, &info).with_context(|| format!("fd {fd} of task {pid}"))?;
            files.push(FileEntry { r#type: FdTypes::Signalfd as i32, id, sgfd: Some(e), ..Default::default() });
            FdTypes::Signalfd
        } else if link == "anon_inode:[timerfd]" {
            // Expired and unread, a periodic timer is not moved on to its
            // next expiry yet: fdinfo would say disarmed, with one tick.
            let ours = their_fd(pid, fd, pidfd)?;
            crate::sys::anonfd::timerfd_refresh(ours.as_fd()).with_context(|| format!("timerfd_gettime on fd {fd} of task {pid}"))?;
            let info = fdinfo::read(pid, fd)?;
            let e = super::anonfd::timerfd_entry(id, file_flags, &info).with_context(|| format!("fd {fd} of task {pid}"))?;
            files.push(FileEntry { r#type: FdTypes::Timerfd as i32, id, tfd: Some(e), ..Default::default() });
            out.timerfds.push((pid, fd, id));
            FdTypes::Timerfd
        } else if link == "anon_inode:[eventfd]" {
            if info.get("eventfd-semaphore") == Some("1") {
                bail!("fd {fd} of task {pid} is a semaphore eventfd: not supported yet (CRIU's image has no place for the flag)");
            }
            let count = info
                .get("eventfd-count")
                .and_then(|c| u64::from_str_radix(c.trim(), 16).ok())
                .with_context(|| format!("fd {fd} of task {pid}: no eventfd-count in fdinfo"))?;
            files.push(FileEntry {
                r#type: FdTypes::Eventfd as i32,
                id,
                efd: Some(crate::images::pb::EventfdFileEntry { id, flags: file_flags, fown: Default::default(), counter: count }),
                ..Default::default()
            });
            FdTypes::Eventfd
        } else {
            bail!("fd {fd} of task {pid} is of type {}: this kind of file is not supported yet", kind_name(&ft, &link));
        };
        // Who gets its I/O signals, in whichever record the kind wrote.
        let fown = if file_flags & libc::O_PATH as u32 != 0 {
            Default::default()
        } else {
            super::fown::read(pid, fd, their_fd(pid, fd, pidfd)?.as_fd())?
        };
        if super::fown::is_set(&fown) {
            let rec = files.entry_mut(id).or_else(|| out.unix_waiting.iter_mut().map(|(_, e)| e).find(|e| e.id == id));
            match rec.and_then(super::fown::of_mut) {
                Some(f) => *f = fown,
                None => bail!("fd {fd} ({link}) of task {pid} has an owner or I/O signal (F_SETOWN/F_SETSIG) its record can't hold"),
            }
        }
        out.seen.push((pid, fd, md.dev(), md.ino(), id));
        Ok((id, ty as i32, fd_flags))
    }
}

/// At the end of the dump, just before the clocks are read for the image:
/// each timerfd's remaining time and ticks again, so they are those of the
/// clocks the image records (a restore in a new time namespace goes on from
/// them; whatever the dump did in between would be lost or counted twice).
pub fn refresh_timerfds(out: &Fds, files: &mut FileTable) -> Result<()> {
    let mut pidfd: Option<(i32, std::os::fd::OwnedFd)> = None;
    for &(pid, fd, id) in &out.timerfds {
        if pidfd.as_ref().is_none_or(|(p, _)| *p != pid) {
            pidfd = Some((pid, crate::sys::pidfd::open(nix::unistd::Pid::from_raw(pid)).with_context(|| format!("pidfd_open({pid})"))?));
        }
        let p = pidfd.as_ref().map(|(_, p)| p.as_fd()).context("pidfd")?;
        let ours = crate::sys::pidfd::getfd(p, fd).with_context(|| format!("pidfd_getfd of fd {fd} of {pid}"))?;
        crate::sys::anonfd::timerfd_refresh(ours.as_fd()).with_context(|| format!("timerfd_gettime on fd {fd} of task {pid}"))?;
        let info = fdinfo::read(pid, fd)?;
        let e = files.entry_mut(id).and_then(|e| e.tfd.as_mut()).with_context(|| format!("timerfd {id} of fd {fd} of task {pid}"))?;
        let new = super::anonfd::timerfd_entry(id, e.flags, &info).with_context(|| format!("fd {fd} of task {pid}"))?;
        *e = crate::images::pb::TimerfdEntry { fown: e.fown, ..new };
    }
    Ok(())
}

/// Once every task's fds are dumped: each unix socket's peer must be one
/// of them (`who` names the dumped tasks in the error).
pub fn check_unix_pairs(out: &Fds, who: &str) -> Result<()> {
    for (ino, peer) in &out.unix {
        if !out.unix.iter().any(|(i, _)| i == peer) {
            bail!("unix socket {ino} of {who} is connected to socket {peer} outside the dumped tasks: not supported yet");
        }
    }
    Ok(())
}

/// A copy of fd `fd` of `pid` (pidfd_getfd; the task is seized).
fn their_fd(pid: i32, fd: i32, pidfd: &mut Option<std::os::fd::OwnedFd>) -> Result<std::os::fd::OwnedFd> {
    if pidfd.is_none() {
        *pidfd = Some(crate::sys::pidfd::open(nix::unistd::Pid::from_raw(pid)).with_context(|| format!("pidfd_open({pid})"))?);
    }
    let p = pidfd.as_ref().context("pidfd")?;
    crate::sys::pidfd::getfd(p.as_fd(), fd).with_context(|| format!("pidfd_getfd of fd {fd} of {pid}"))
}

/// Whether fd `a` of `pid_a` and fd `b` of `pid_b` are one open file
/// description.
fn same_description(pid_a: i32, a: i32, pid_b: i32, b: i32) -> bool {
    let (pa, pb) = (nix::unistd::Pid::from_raw(pid_a), nix::unistd::Pid::from_raw(pid_b));
    matches!(crate::sys::kcmp::kcmp(pa, pb, 0 /* KCMP_FILE */, a as u64, b as u64), Ok(0))
}
