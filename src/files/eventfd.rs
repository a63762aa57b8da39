//! eventfd: its counter, from /proc/PID/fdinfo, into eventfd_file_entry;
//! restored with eventfd(counter). Semaphore eventfds are refused: CRIU's
//! record has no place for EFD_SEMAPHORE.

use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{EventfdFileEntry, FdTypes, FileEntry};
use crate::proc::fdinfo::FdInfo;

/// The eventfd kind (FD_TYPES EVENTFD).
pub struct Eventfd;

/// The record of an eventfd whose fdinfo is `info`.
fn entry(id: u32, flags: u32, info: &FdInfo) -> Result<EventfdFileEntry> {
    if info.get("eventfd-semaphore") == Some("1") {
        bail!("a semaphore eventfd: not supported yet (CRIU's image has no place for the flag)");
    }
    let counter =
        info.get("eventfd-count").and_then(|c| u64::from_str_radix(c.trim(), 16).ok()).context("no eventfd-count in fdinfo")?;
    Ok(EventfdFileEntry { id, flags, fown: Default::default(), counter })
}

impl FdKind for Eventfd {
    fn name(&self) -> &'static str {
        "eventfd"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Eventfd
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.link == "anon_inode:[eventfd]"
    }

    fn dump(&self, p: &mut FdProbe, id: u32, _cx: &mut DumpCx) -> Result<FileEntry> {
        if p.info.get("eventfd-semaphore") == Some("1") {
            bail!("{} is a semaphore eventfd: not supported yet (CRIU's image has no place for the flag)", p.who());
        }
        let e = entry(id, p.flags, p.info).with_context(|| p.who())?;
        Ok(FileEntry { r#type: FdTypes::Eventfd as i32, id, efd: Some(e), ..Default::default() })
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.efd.as_ref().map(|e| e.flags)
    }

    fn open(&self, fe: &FileEntry, fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.efd.as_ref().with_context(|| format!("file {} has no eventfd entry", fe.id))?;
        Ok(Some(crate::sys::fd::eventfd(e.counter).with_context(|| format!("eventfd for fd {fd}"))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn round_trip() {
        let fd = crate::sys::fd::eventfd(42).unwrap();
        crate::sys::fd::set_fl(fd.as_raw_fd(), libc::O_NONBLOCK).unwrap();
        let (before, _back, after) = super::super::round_trip::run(&[fd.as_raw_fd()]);
        let (b, a) = (before.entries[0].efd.unwrap(), after.entries[0].efd.unwrap());
        assert_eq!((b.counter, b.flags & libc::O_NONBLOCK as u32), (42, libc::O_NONBLOCK as u32));
        assert_eq!((a.counter, a.flags), (b.counter, b.flags));
        let sem = crate::proc::fdinfo::parse("eventfd-count:\t0\neventfd-semaphore:\t1\n").unwrap();
        assert!(entry(1, 0, &sem).unwrap_err().to_string().contains("semaphore"));
    }
}
