//! signalfd: its signal mask (from /proc/PID/fdinfo) into signalfd_entry;
//! restored with signalfd(mask).

use std::os::fd::OwnedFd;

use anyhow::{Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{FdTypes, FileEntry, SignalfdEntry};
use crate::proc::fdinfo::FdInfo;

/// The signalfd kind (FD_TYPES SIGNALFD).
pub struct Signalfd;

impl FdKind for Signalfd {
    fn name(&self) -> &'static str {
        "signalfd"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Signalfd
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.link == "anon_inode:[signalfd]"
    }

    fn dump(&self, p: &mut FdProbe, id: u32, _cx: &mut DumpCx) -> Result<FileEntry> {
        let e = signalfd_entry(id, p.flags, p.info).with_context(|| p.who())?;
        Ok(FileEntry { r#type: FdTypes::Signalfd as i32, id, sgfd: Some(e), ..Default::default() })
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.sgfd.as_ref().map(|e| e.flags)
    }

    fn open(&self, fe: &FileEntry, _fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.sgfd.as_ref().with_context(|| format!("file {} has no signalfd entry", fe.id))?;
        restore_signalfd(e).map(Some)
    }
}

/// The record of a signalfd whose fdinfo is `info`.
pub fn signalfd_entry(id: u32, flags: u32, info: &FdInfo) -> Result<SignalfdEntry> {
    let mask = info.get("sigmask").and_then(|m| u64::from_str_radix(m.trim(), 16).ok()).context("no sigmask in fdinfo")?;
    Ok(SignalfdEntry { id, flags, fown: Default::default(), sigmask: mask })
}

/// A signalfd for the recorded mask.
pub fn restore_signalfd(e: &SignalfdEntry) -> Result<OwnedFd> {
    crate::sys::anonfd::signalfd(e.sigmask).context("signalfd")
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdinfo_parsing() {
        let s = crate::proc::fdinfo::parse("sigmask:\t0000000000000202\n").unwrap();
        assert_eq!(super::signalfd_entry(1, 2, &s).unwrap().sigmask, 0x202);
    }

    #[test]
    fn round_trip() {
        use std::os::fd::AsRawFd;
        let fd = crate::sys::anonfd::signalfd((1 << (libc::SIGUSR1 - 1)) | (1 << (libc::SIGHUP - 1))).unwrap();
        let (before, _back, after) = super::super::round_trip::run(&[fd.as_raw_fd()]);
        let (b, a) = (before.entries[0].sgfd.unwrap(), after.entries[0].sgfd.unwrap());
        assert_eq!(b.sigmask, (1 << (libc::SIGUSR1 - 1)) | (1 << (libc::SIGHUP - 1)));
        assert_eq!((a.sigmask, a.flags), (b.sigmask, b.flags));
    }
}
