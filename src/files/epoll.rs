//! epoll instances: the dump records each target (fd number, event mask,
//! user data) from /proc/PID/fdinfo; the restore creates the instance and,
//! once every fd of the task is at its number, adds the targets again.

use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{EventpollFileEntry, EventpollTfdEntry, FdTypes, FileEntry};
use crate::proc::fdinfo::FdInfo;

/// The epoll kind (FD_TYPES EVENTPOLL).
pub struct Epoll;

impl FdKind for Epoll {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Eventpoll
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.link == "anon_inode:[eventpoll]"
    }

    fn dump(&self, p: &mut FdProbe, id: u32, _cx: &mut DumpCx) -> Result<FileEntry> {
        let e = dump(p.pid, p.fd, id, p.flags, p.info).with_context(|| p.who())?;
        Ok(FileEntry { r#type: FdTypes::Eventpoll as i32, id, epfd: Some(e), ..Default::default() })
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.epfd.as_ref().map(|e| e.flags)
    }

    fn open(&self, fe: &FileEntry, _fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        fe.epfd.as_ref().with_context(|| format!("file {} has no eventpoll entry", fe.id))?;
        create().map(Some)
    }

    fn installed(&self, fe: &FileEntry, fd: i32) -> Result<()> {
        match &fe.epfd {
            Some(e) => add_targets(fd, e),
            None => Ok(()),
        }
    }
}

/// The record of epoll fd `epfd` of task `pid`. A watch is keyed by the
/// file and the fd number it was added under, and a restore adds it again
/// by that number: when that number was closed or now holds another file
/// (kcmp KCMP_EPOLL_TFD tells), the epoll fd is refused.
pub fn dump(pid: i32, epfd: i32, id: u32, flags: u32, info: &FdInfo) -> Result<EventpollFileEntry> {
    let e = parse(id, flags, info)?;
    for (i, t) in e.tfd.iter().enumerate() {
        // Watches of one fd number (other files dup'ed under it over time)
        // are told apart by their order.
        let toff = e.tfd[..i].iter().filter(|o| o.tfd == t.tfd).count() as u32;
        let p = nix::unistd::Pid::from_raw(pid);
        match crate::sys::kprobe::kcmp_epoll_tfd(p, t.tfd as i32, epfd, t.tfd as i32, toff) {
            Ok(0) => {}
            Ok(_) | Err(nix::errno::Errno::EBADF) => bail!(
                "epoll fd {epfd} of task {pid} watches a file added as fd {} that is no longer at fd {} (closed or replaced since): such watches are not supported",
                t.tfd,
                t.tfd
            ),
            Err(err) => bail!("epoll fd {epfd} of task {pid}: can't compare its target fd {} (kcmp KCMP_EPOLL_TFD): {err}", t.tfd),
        }
    }
    Ok(e)
}

/// Parse the `tfd:` lines of an epoll fdinfo.
fn parse(id: u32, flags: u32, info: &FdInfo) -> Result<EventpollFileEntry> {
    let mut tfds = Vec::new();
    for (k, v) in info.extra.iter().filter(|(k, _)| k == "tfd") {
        let _ = k;
        // "<fd> events: <hex> data: <hex>  pos:<n> ino:<hex> sdev:<hex>"
        let words: Vec<&str> = v.split_whitespace().collect();
        let get = |key: &str| -> Option<&str> {
            words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1).copied()).or_else(|| {
                words.iter().find_map(|w| w.strip_prefix(key))
            })
        };
        let tfd: u32 = words.first().and_then(|w| w.parse().ok()).with_context(|| format!("bad epoll target line {v:?}"))?;
        let hex = |key: &str| get(key).and_then(|x| u64::from_str_radix(x, 16).ok());
        tfds.push(EventpollTfdEntry {
            id,
            tfd,
            events: hex("events:").with_context(|| format!("no events in {v:?}"))? as u32,
            data: hex("data:").with_context(|| format!("no data in {v:?}"))?,
            dev: hex("sdev:").map(|d| d as u32),
            inode: hex("ino:"),
            pos: get("pos:").and_then(|p| p.parse().ok()),
        });
    }
    Ok(EventpollFileEntry { id, flags, fown: Default::default(), tfd: tfds })
}

/// A new epoll instance (targets come later, see [`add_targets`]).
pub fn create() -> Result<OwnedFd> {
    crate::sys::anonfd::epoll().context("epoll_create1")
}

/// Add the recorded targets to the epoll fd `epfd` (a restored fd number),
/// once all of the task's fds are in place.
pub fn add_targets(epfd: i32, e: &EventpollFileEntry) -> Result<()> {
    for t in &e.tfd {
        if let Err(err) = crate::sys::anonfd::epoll_add(epfd, t.tfd as i32, t.events, t.data) {
            bail!("epoll fd {epfd}: adding target fd {}: {err}", t.tfd);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_targets() {
        let i = crate::proc::fdinfo::parse(
            "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\n\
             tfd:        4 events: 8000001c data:                4  pos:0 ino:6648d sdev:9\n\
             tfd:        3 events:       19 data:                3  pos:0 ino:6648c sdev:9\n",
        )
        .unwrap();
        let e = super::parse(7, 2, &i).unwrap();
        assert_eq!(e.tfd.len(), 2);
        assert_eq!((e.tfd[0].tfd, e.tfd[0].events, e.tfd[0].data), (4, 0x8000001c, 4));
        assert_eq!((e.tfd[1].tfd, e.tfd[1].inode, e.tfd[1].dev), (3, Some(0x6648c), Some(9)));
    }

    #[test]
    fn round_trip() {
        use std::os::fd::AsRawFd;
        let target = crate::sys::fd::eventfd(0).unwrap();
        let ep = super::create().unwrap();
        crate::sys::anonfd::epoll_add(ep.as_raw_fd(), target.as_raw_fd(), libc::EPOLLIN as u32, 0xfeed).unwrap();
        let (before, back, after) = super::super::round_trip::run(&[ep.as_raw_fd()]);
        // Targets come once the task's fds are at their numbers (here: the
        // target is still where it was).
        let fe = &before.entries[0];
        super::super::restore::installed(
            &[crate::images::pb::FdinfoEntry { id: fe.id, fd: back[0].as_raw_fd() as u32, ..Default::default() }],
            &[(fe.id, fe.clone())].into_iter().collect::<std::collections::HashMap<_, _>>().into(),
            &[],
        )
        .unwrap();
        let again = super::super::round_trip::dump(&[back[0].as_raw_fd()]);
        let t = |e: &crate::images::pb::FileEntry| e.epfd.as_ref().unwrap().tfd.iter().map(|t| (t.tfd, t.events, t.data)).collect::<Vec<_>>();
        // (The kernel always adds EPOLLERR and EPOLLHUP to a watch.)
        let always = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        assert_eq!(t(&before.entries[0]), vec![(target.as_raw_fd() as u32, libc::EPOLLIN as u32 | always, 0xfeed)]);
        assert!(t(&after.entries[0]).is_empty(), "no target before the fds are installed");
        assert_eq!(t(&again.entries[0]), t(&before.entries[0]));
    }
}