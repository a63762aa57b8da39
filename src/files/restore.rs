//! The restore side of the fd table: open each file description once
//! (regular files and char devices reopened by path at their position and
//! checked against the image; pipes recreated and refilled with their
//! data), then put every fd at its number with its close-on-exec flag, and
//! close everything else the restoring process had, but its service fds.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::reg;
use crate::images::pb::{FdTypes, FdinfoEntry, FileEntry};
use crate::sockets::unix::Queued;

/// Flags that only mean something at open time and must not be replayed.
const OPEN_ONLY: i32 = libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOCTTY | libc::O_CLOEXEC;

fn open_reg(e: &crate::images::pb::RegFileEntry) -> Result<File> {
    let mut flags = e.flags as i32 & !OPEN_ONLY;
    // An O_TMPFILE file (a ghost by now) is reopened by name: its
    // O_TMPFILE bits (which include O_DIRECTORY) go.
    if flags & libc::O_TMPFILE == libc::O_TMPFILE {
        flags &= !libc::O_TMPFILE;
    }
    let acc = flags & libc::O_ACCMODE;
    let f = OpenOptions::new()
        .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags(flags & !libc::O_ACCMODE)
        .open(&e.name)
        .with_context(|| format!("can't open {}", e.name))?;
    reg::validate(e, &f)?;
    let is_file = f.metadata().is_ok_and(|m| m.file_type().is_file());
    // An O_PATH fd has no position (and refuses lseek).
    if flags & libc::O_PATH == 0 && (is_file || e.pos != 0) {
        (&f).seek(SeekFrom::Start(e.pos)).with_context(|| format!("can't seek {} to {}", e.name, e.pos))?;
    }
    Ok(f)
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
/// opening it. RES names a regular file by path (with or without the
/// leading '/') or a pipe as `pipe:[INODE]` / `pipe[INODE]`.
fn inherited(inherit: &[(i32, String)], keys: &[String]) -> Option<i32> {
    inherit.iter().find(|(_, r)| keys.iter().any(|k| k == r)).map(|(n, _)| *n)
}

fn dup_inherited(n: i32, what: &str) -> Result<OwnedFd> {
    crate::sys::inherited::dup(n).with_context(|| format!("--inherit-fd fd[{n}] for {what}"))
}

/// Open every file the fd table refers to. `pipe_data` maps pipe_id to the
/// bytes the pipe held; `inherit` is --inherit-fd.
pub fn open(
    fdinfo: &[FdinfoEntry],
    files: &HashMap<u32, FileEntry>,
    pipe_data: &HashMap<u32, (u32, Vec<u8>)>,
    sk_queues: &HashMap<u32, Vec<Queued>>,
    inherit: &[(i32, String)],
    shell_job: bool,
    tree_pids: &[i32],
) -> Result<Opened> {
    let mut by_id: HashMap<u32, OwnedFd> = HashMap::new();
    let mut pipes: HashMap<u32, (OwnedFd, OwnedFd)> = HashMap::new();
    let mut used_ends: Vec<(u32, bool)> = Vec::new();
    // Unix pairs made, by (file id, peer's file id): their queues are
    // refilled once every file is open, the files in flight included.
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    // The files to open: the fd table's, then those in flight in queues
    // (fi.fd is then u32::MAX, named as "a file in flight").
    let mut todo: Vec<FdinfoEntry> = fdinfo.to_vec();
    let mut next = 0;
    while next < todo.len() {
        let fi = todo[next].clone();
        next += 1;
        if by_id.contains_key(&fi.id) {
            continue;
        }
        let fe = files.get(&fi.id).with_context(|| format!("fd {}: file id {} is not in files.img", fi.fd, fi.id))?;
        let fd: OwnedFd = match FdTypes::try_from(fe.r#type).unwrap_or(FdTypes::Und) {
            FdTypes::Reg if fe.reg.as_ref().and_then(|e| super::proc_pid_of(&e.name)).is_some_and(|p| tree_pids.contains(&p)) => {
                // Under /proc/PID of a task of the tree: opened by its task
                // once every task exists (Opened::open_deferred).
                continue;
            }
            FdTypes::Reg => {
                let e = fe.reg.as_ref().with_context(|| format!("file {} has no reg entry", fe.id))?;
                let keys = [e.name.clone(), e.name.trim_start_matches('/').to_string()];
                match inherited(inherit, &keys) {
                    Some(n) => dup_inherited(n, &e.name)?,
                    None => open_reg(e).with_context(|| format!("restoring fd {}", fi.fd))?.into(),
                }
            }
            FdTypes::Pipe
                if fe.pipe.as_ref().is_some_and(|p| {
                    inherited(inherit, &[format!("pipe:[{}]", p.pipe_id), format!("pipe[{}]", p.pipe_id)]).is_some()
                }) =>
            {
                let p = fe.pipe.as_ref().context("pipe entry")?;
                let keys = [format!("pipe:[{}]", p.pipe_id), format!("pipe[{}]", p.pipe_id)];
                dup_inherited(inherited(inherit, &keys).context("inherited pipe")?, &keys[0])?
            }
            FdTypes::Pipe => {
                let p = fe.pipe.as_ref().with_context(|| format!("file {} has no pipe entry", fe.id))?;
                if let std::collections::hash_map::Entry::Vacant(e) = pipes.entry(p.pipe_id) {
                    e.insert(new_pipe(p.pipe_id, pipe_data.get(&p.pipe_id))?);
                }
                let (r, w) = &pipes[&p.pipe_id];
                let acc = p.flags as i32 & libc::O_ACCMODE;
                if acc == libc::O_RDWR {
                    // Opened read-write through /proc (bash's `<> <(...)`):
                    // the same, from the read end.
                    let path = format!("/proc/self/fd/{}", r.as_raw_fd());
                    let reopened = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&path)
                        .with_context(|| format!("reopening pipe {} read-write for fd {}", p.pipe_id, fi.fd))?;
                    let fl = OFlag::from_bits_truncate(p.flags as i32 & !libc::O_ACCMODE & !OPEN_ONLY);
                    fcntl(reopened.as_fd(), FcntlArg::F_SETFL(fl)).context("F_SETFL on a pipe")?;
                    by_id.insert(fi.id, reopened.into());
                    continue;
                }
                let read_end = acc == libc::O_RDONLY;
                let end = if read_end { r } else { w };
                let fl = OFlag::from_bits_truncate(p.flags as i32 & !libc::O_ACCMODE & !OPEN_ONLY);
                // The first description of each end is the one pipe2 made
                // (a reopen would add O_LARGEFILE); others are reopened.
                if !used_ends.contains(&(p.pipe_id, read_end)) {
                    used_ends.push((p.pipe_id, read_end));
                    let fd = end.try_clone().context("dup of a pipe end")?;
                    fcntl(fd.as_fd(), FcntlArg::F_SETFL(fl)).context("F_SETFL on a pipe")?;
                    by_id.insert(fi.id, fd);
                    continue;
                }
                let path = format!("/proc/self/fd/{}", end.as_raw_fd());
                let reopened = OpenOptions::new()
                    .read(end.as_raw_fd() == r.as_raw_fd())
                    .write(end.as_raw_fd() == w.as_raw_fd())
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&path)
                    .with_context(|| format!("reopening pipe {} for fd {}", p.pipe_id, fi.fd))?;
                fcntl(reopened.as_fd(), FcntlArg::F_SETFL(fl)).context("F_SETFL on a pipe")?;
                reopened.into()
            }
            FdTypes::Unixsk => {
                let a = fe.usk.as_ref().with_context(|| format!("file {} has no unix socket entry", fe.id))?;
                let (peer_id, b) = files
                    .values()
                    .find_map(|f| f.usk.as_ref().filter(|u| u.ino == a.peer).map(|u| (f.id, u)))
                    .with_context(|| format!("fd {}: the peer {} of unix socket {} is not in the image", fi.fd, a.peer, a.ino))?;
                let (fa, fb) = crate::sockets::unix::restore_pair(a, b).with_context(|| format!("restoring fd {}", fi.fd))?;
                // The peer's fd is ready for when its fdinfo comes.
                by_id.insert(peer_id, fb);
                pairs.push((fe.id, peer_id));
                for q in [fe.id, peer_id].iter().filter_map(|i| sk_queues.get(i)).flatten() {
                    todo.extend(q.rights.iter().map(|&id| FdinfoEntry { id, fd: u32::MAX, ..Default::default() }));
                }
                fa
            }
            FdTypes::Eventfd => {
                let e = fe.efd.as_ref().with_context(|| format!("file {} has no eventfd entry", fe.id))?;
                let fd = crate::sys::fd::eventfd(e.counter).with_context(|| format!("eventfd for fd {}", fi.fd))?;
                let fl = OFlag::from_bits_truncate(e.flags as i32 & !libc::O_ACCMODE & !OPEN_ONLY);
                fcntl(fd.as_fd(), FcntlArg::F_SETFL(fl)).context("F_SETFL on an eventfd")?;
                fd
            }
            FdTypes::Inotify => {
                let e = fe.ify.as_ref().with_context(|| format!("file {} has no inotify entry", fe.id))?;
                let fd = super::inotify::restore(e).with_context(|| format!("restoring fd {}", fi.fd))?;
                let fl = OFlag::from_bits_truncate(e.flags as i32 & !libc::O_ACCMODE & !OPEN_ONLY);
                fcntl(fd.as_fd(), FcntlArg::F_SETFL(fl)).context("F_SETFL on an inotify fd")?;
                fd
            }
            FdTypes::Eventpoll => {
                let e = fe.epfd.as_ref().with_context(|| format!("file {} has no eventpoll entry", fe.id))?;
                let fd = super::epoll::create()?;
                let fl = OFlag::from_bits_truncate(e.flags as i32 & !libc::O_ACCMODE & !OPEN_ONLY);
                fcntl(fd.as_fd(), FcntlArg::F_SETFL(fl)).context("F_SETFL on an epoll fd")?;
                fd
            }
            FdTypes::Signalfd | FdTypes::Timerfd => {
                let fd = match (&fe.sgfd, &fe.tfd) {
                    (Some(e), _) => super::anonfd::restore_signalfd(e),
                    (_, Some(e)) => super::anonfd::restore_timerfd(e),
                    _ => bail!("file {} has no signalfd/timerfd entry", fe.id),
                }
                .with_context(|| format!("restoring fd {}", fi.fd))?;
                let flags = fe.sgfd.as_ref().map(|e| e.flags).or(fe.tfd.as_ref().map(|e| e.flags)).unwrap_or(0);
                let fl = OFlag::from_bits_truncate(flags as i32 & !libc::O_ACCMODE & !OPEN_ONLY);
                fcntl(fd.as_fd(), FcntlArg::F_SETFL(fl)).context("F_SETFL")?;
                fd
            }
            FdTypes::Tty => {
                if !shell_job {
                    bail!("fd {} is the task's terminal: restore it with --shell-job", fi.fd);
                }
                let t = fe.tty.as_ref().with_context(|| format!("file {} has no tty entry", fe.id))?;
                let term = super::tty::our_terminal()?;
                let fl = OFlag::from_bits_truncate(t.flags as i32 & !libc::O_ACCMODE & !OPEN_ONLY);
                fcntl(term.as_fd(), FcntlArg::F_SETFL(fl)).context("F_SETFL on the terminal")?;
                term.into()
            }
            other => bail!("fd {}: files of type {other:?} can't be restored yet", fi.fd),
        };
        by_id.insert(fi.id, fd);
    }
    let none = Vec::new();
    for (a, b) in pairs {
        let (ea, eb) = match (files.get(&a).and_then(|f| f.usk.as_ref()), files.get(&b).and_then(|f| f.usk.as_ref())) {
            (Some(x), Some(y)) => (x, y),
            _ => bail!("unix sockets {a} and {b} lost their entries"),
        };
        let fd_of = |id: u32| by_id.get(&id).map(|f| f.as_raw_fd()).with_context(|| format!("file {id} in flight was not opened"));
        crate::sockets::unix::refill_and_shut(
            [(by_id[&a].as_fd(), ea, sk_queues.get(&a).unwrap_or(&none)), (by_id[&b].as_fd(), eb, sk_queues.get(&b).unwrap_or(&none))],
            &fd_of,
        )?;
    }
    Ok(Opened { by_id })
}

fn new_pipe(pipe_id: u32, data: Option<&(u32, Vec<u8>)>) -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    if let Some((size, bytes)) = data {
        if *size > 0 {
            fcntl(w.as_fd(), FcntlArg::F_SETPIPE_SZ(*size as i32)).with_context(|| format!("F_SETPIPE_SZ for pipe {pipe_id}"))?;
        }
        let mut f = File::from(w.try_clone().context("dup")?);
        f.write_all(bytes).with_context(|| format!("refilling pipe {pipe_id}"))?;
    }
    Ok((r, w))
}

impl Opened {
    /// Open the files of this task's fd table under /proc/PID of a task of
    /// the tree, left out by [`open`]: every task exists by now.
    pub fn open_deferred(&mut self, fdinfo: &[FdinfoEntry], files: &HashMap<u32, FileEntry>) -> Result<()> {
        for fi in fdinfo {
            if self.by_id.contains_key(&fi.id) {
                continue;
            }
            let Some(e) = files.get(&fi.id).and_then(|f| f.reg.as_ref()).filter(|e| super::proc_pid_of(&e.name).is_some()) else {
                continue;
            };
            let f = open_reg(e).with_context(|| format!("restoring fd {}", fi.fd))?;
            self.by_id.insert(fi.id, f.into());
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
        let sources = high.values().map(AsRawFd::as_raw_fd);
        crate::sys::fd::close_all_except(&sources.chain(keep.iter().copied()).collect::<Vec<_>>());
        for fi in fdinfo {
            let src = &high[&fi.id];
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

/// With every fd at its number: give each epoll instance its targets
/// (but those in `skip`: an instance shared with a task that added them).
pub fn epoll_targets(fdinfo: &[FdinfoEntry], files: &HashMap<u32, FileEntry>, skip: &[u32]) -> Result<()> {
    let mut done = Vec::new();
    for fi in fdinfo {
        if let Some(e) = files.get(&fi.id).and_then(|f| f.epfd.as_ref()).filter(|_| !done.contains(&fi.id) && !skip.contains(&fi.id)) {
            done.push(fi.id);
            super::epoll::add_targets(fi.fd as i32, e)?;
        }
    }
    Ok(())
}
