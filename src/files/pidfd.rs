//! pidfds: as CRIU 4.2 records them in files.img, a pidfd_entry with the
//! pid the pidfd names in the tree's pid namespace (`nspid`, -1 once the
//! process was reaped), its pidfs inode and its status flags (O_RDWR left
//! out; PIDFD_NONBLOCK is O_NONBLOCK). A pidfd of a live or zombie task
//! must name a task of the dumped tree (checked once every task is dumped)
//! and is opened by its own task once every task exists; a pidfd of a
//! reaped process is opened on a stand-in process the restore forks and
//! kills at once (one per dead process, as CRIU does), so it names a dead
//! process again, one killed by SIGKILL: a pidfd of a process that ended
//! otherwise is refused where the kernel reports how it ended.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{FdTypes, FdinfoEntry, FileEntry, PidfdEntry};

/// The pidfd kind (FD_TYPES PIDFD).
pub struct Pidfd;

/// PIDFD_THREAD: a pidfd of one thread (O_EXCL in the file's flags).
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// The flags pidfd_open takes; the others are set with F_SETFL after.
const OPEN_FLAGS: u32 = libc::O_NONBLOCK as u32 | PIDFD_THREAD;

/// pidfds of dead processes opened so far by this restore, by file id.
#[derive(Default)]
struct Dead(HashMap<u32, OwnedFd>);

/// (pid in our namespace, pid in the task's innermost namespace) of the
/// pidfd whose fdinfo lines are `info`; -1 for a reaped process.
fn target(info: &crate::proc::fdinfo::FdInfo) -> Result<(i32, i32)> {
    let pid: i32 = info.get("Pid").context("no Pid line in the pidfd's fdinfo")?.parse().context("bad Pid line")?;
    let nspid = match info.get("NSpid").and_then(|l| l.split_whitespace().last()) {
        Some(n) => n.parse().context("bad NSpid line")?,
        None => pid,
    };
    Ok((pid, nspid))
}

impl FdKind for Pidfd {
    fn name(&self) -> &'static str {
        "pidfd"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Pidfd
    }

    fn claims(&self, p: &FdProbe) -> bool {
        // pidfs (Linux 6.9) still names its files so.
        p.link == "anon_inode:[pidfd]"
    }

    fn dump(&self, p: &mut FdProbe, id: u32, _cx: &mut DumpCx) -> Result<FileEntry> {
        if p.flags & PIDFD_THREAD != 0 {
            bail!("{} is a pidfd of a thread (PIDFD_THREAD): not supported (CRIU 4.2 refuses it too)", p.who());
        }
        let (pid, nspid) = target(p.info).with_context(|| p.who())?;
        if pid == 0 {
            bail!("{} is a pidfd of a process outside our pid namespace: not supported", p.who());
        }
        if nspid == -1 {
            // The stand-in of a restore dies by SIGKILL: another way of
            // dying (which the kernel reports since 6.15) would not come
            // back, and CRIU's record has no place for it.
            let f = p.dup()?;
            if let Some(status) = crate::sys::pidfd::exit_status(f.as_fd()).filter(|&s| s != libc::SIGKILL) {
                bail!(
                    "{} is a pidfd of a reaped process that ended with wait status {status:#x}: CRIU's image keeps no exit status (it would come back killed by SIGKILL)",
                    p.who()
                );
            }
        }
        let e = PidfdEntry {
            id,
            ino: p.info.ino as u32,
            flags: p.flags & !(libc::O_RDWR as u32),
            nspid,
            fown: Default::default(),
        };
        Ok(FileEntry { r#type: FdTypes::Pidfd as i32, id, pidfd: Some(e), ..Default::default() })
    }

    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.pidfd.as_ref().with_context(|| format!("file {} has no pidfd entry", fe.id))?;
        if e.nspid != -1 {
            if !cx.tree_pids.contains(&e.nspid) {
                bail!("fd {fd} is a pidfd of process {}, which is not in the restored tree", e.nspid);
            }
            // Its task may not exist yet: opened by our task, later.
            return Ok(None);
        }
        if !cx.state.get_mut::<Dead>().0.contains_key(&fe.id) {
            // Every pidfd of that dead process, on one stand-in.
            let all: Vec<&PidfdEntry> =
                cx.images.values().filter_map(|f| f.pidfd.as_ref()).filter(|o| o.nspid == -1 && o.ino == e.ino).collect();
            let opened = open_dead(&all).with_context(|| format!("fd {fd}: a pidfd of a process that had died"))?;
            cx.state.get_mut::<Dead>().0.extend(opened);
        }
        let f = cx.state.get_mut::<Dead>().0.remove(&fe.id).context("the stand-in's pidfd")?;
        Ok(Some(f))
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.pidfd.as_ref().map(|e| e.flags)
    }

    fn open_late(&self, fe: &FileEntry, fd: u32) -> Result<Option<OwnedFd>> {
        let Some(e) = fe.pidfd.as_ref().filter(|e| e.nspid != -1) else { return Ok(None) };
        let f = open_with(Pid::from_raw(e.nspid), e.flags).with_context(|| format!("fd {fd}: a pidfd of task {}", e.nspid))?;
        Ok(Some(f))
    }
}

/// A pidfd of `pid` with status flags `flags`.
fn open_with(pid: Pid, flags: u32) -> Result<OwnedFd> {
    let f = crate::sys::pidfd::open_flags(pid, flags & OPEN_FLAGS).with_context(|| format!("pidfd_open({pid})"))?;
    if flags & !OPEN_FLAGS != 0 {
        super::restore::set_status_flags(f.as_fd(), flags).context("F_SETFL on a pidfd")?;
    }
    Ok(f)
}

/// Fork a stand-in, open the pidfds `all` name on it, then kill and reap
/// it: (file id, pidfd) of each, every one naming the dead stand-in.
fn open_dead(all: &[&PidfdEntry]) -> Result<Vec<(u32, OwnedFd)>> {
    let pid = crate::sys::pidfd::stand_in().context("forking a stand-in process")?;
    let opened: Result<Vec<(u32, OwnedFd)>> = all.iter().map(|e| Ok((e.id, open_with(pid, e.flags)?))).collect();
    kill(pid, Signal::SIGKILL).with_context(|| format!("killing the stand-in {pid}"))?;
    match waitpid(pid, None).with_context(|| format!("reaping the stand-in {pid}"))? {
        WaitStatus::Signaled(_, Signal::SIGKILL, _) => {}
        s => bail!("the stand-in {pid} ended with {s:?}, not SIGKILL"),
    }
    opened
}

/// At dump once every task's fds are recorded, and at restore before any
/// task exists: a pidfd of a live or zombie process must name a task of
/// the tree (`fdinfos`: each task's fd table), and belong to one task
/// (each task opens its own again).
pub fn check_targets<'a>(files: impl IntoIterator<Item = &'a FileEntry>, fdinfos: &[(i32, &[FdinfoEntry])]) -> Result<()> {
    for e in files.into_iter().filter_map(|f| f.pidfd.as_ref()) {
        let users: Vec<(i32, u32)> =
            fdinfos.iter().flat_map(|(pid, fds)| fds.iter().filter(|f| f.id == e.id).map(move |f| (*pid, f.fd))).collect();
        let Some(&(pid, fd)) = users.first() else { continue };
        if e.nspid == -1 {
            continue;
        }
        if !fdinfos.iter().any(|(t, _)| *t == e.nspid) {
            bail!("fd {fd} of task {pid} is a pidfd of process {}, outside the tree: it would name another process after a restore", e.nspid);
        }
        if users.iter().any(|(t, _)| *t != pid) {
            bail!("fd {fd} of task {pid} is a pidfd of task {} shared with another task: pidfds shared between tasks are not supported yet", e.nspid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};

    use nix::unistd::Pid;

    fn fdinfo_pid(f: &std::os::fd::OwnedFd) -> String {
        let info = crate::proc::fdinfo::read(std::process::id() as i32, f.as_raw_fd()).unwrap();
        info.get("Pid").unwrap().to_string()
    }

    #[test]
    fn round_trip() {
        let me = Pid::from_raw(std::process::id() as i32);
        let own = crate::sys::pidfd::open_flags(me, libc::O_NONBLOCK as u32).unwrap();
        // A reaped process's.
        let dead = {
            let pid = crate::sys::pidfd::stand_in().unwrap();
            let f = crate::sys::pidfd::open(pid).unwrap();
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
            nix::sys::wait::waitpid(pid, None).unwrap();
            f
        };
        let (before, back, after) = super::super::round_trip::run(&[own.as_raw_fd(), dead.as_raw_fd()]);
        let b: Vec<_> = before.entries.iter().map(|e| e.pidfd.unwrap()).collect();
        let a: Vec<_> = after.entries.iter().map(|e| e.pidfd.unwrap()).collect();
        assert_eq!((b[0].nspid, b[0].flags), (me.as_raw(), libc::O_NONBLOCK as u32));
        assert_eq!(b[1].nspid, -1);
        assert_eq!(a.iter().map(|e| (e.nspid, e.flags)).collect::<Vec<_>>(), b.iter().map(|e| (e.nspid, e.flags)).collect::<Vec<_>>());
        assert_eq!(fdinfo_pid(&back[0]), me.as_raw().to_string());
        assert_eq!(fdinfo_pid(&back[1]), "-1");
        // The restored pidfds work: signal 0 reaches us, not the dead one.
        assert!(crate::sys::pidfd::send_signal(back[0].as_fd(), 0).is_ok());
        assert_eq!(crate::sys::pidfd::send_signal(back[1].as_fd(), 0), Err(nix::errno::Errno::ESRCH));
        // Both died by SIGKILL, where the kernel tells.
        assert_eq!(crate::sys::pidfd::exit_status(back[1].as_fd()), crate::sys::pidfd::exit_status(dead.as_fd()));
    }

    #[test]
    fn a_reaped_process_that_did_not_die_by_sigkill_is_refused() {
        let mut child = std::process::Command::new("sh").args(["-c", "read x; exit 3"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
        let f = crate::sys::pidfd::open(Pid::from_raw(child.id() as i32)).unwrap();
        drop(child.stdin.take());
        child.wait().unwrap();
        if crate::sys::pidfd::exit_status(f.as_fd()).is_none() {
            eprintln!("skipped: this kernel keeps no exit status on pidfds (PIDFD_INFO_EXIT, Linux 6.15)");
            return;
        }
        let me = std::process::id() as i32;
        let stat = crate::proc::stat::read(me).unwrap();
        let (mut out, mut files) = (crate::files::fds::Fds::default(), crate::files::FileTable::new());
        let err = crate::files::fds::dump_fds(me, &[f.as_raw_fd()], &mut out, &mut files, &stat, false).unwrap_err().to_string();
        assert!(err.contains("wait status 0x300"), "{err}");
    }

    #[test]
    fn targets_outside_the_tree_are_refused() {
        use crate::images::pb::{FdinfoEntry, FileEntry, PidfdEntry};
        let file = |nspid| FileEntry { id: 1, pidfd: Some(PidfdEntry { id: 1, nspid, ..Default::default() }), ..Default::default() };
        let fds = [FdinfoEntry { id: 1, fd: 4, ..Default::default() }];
        let tree = [(10, &fds[..]), (11, &[][..])];
        assert!(super::check_targets(&[file(11)], &tree).is_ok());
        assert!(super::check_targets(&[file(-1)], &tree).is_ok());
        let err = super::check_targets(&[file(12)], &tree).unwrap_err().to_string();
        assert!(err.contains("fd 4 of task 10") && err.contains("outside the tree"), "{err}");
        let shared = [(10, &fds[..]), (11, &fds[..])];
        assert!(super::check_targets(&[file(11)], &shared).unwrap_err().to_string().contains("shared"));
    }
}
