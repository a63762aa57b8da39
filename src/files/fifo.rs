//! FIFOs (named pipes): as CRIU 4.2 records them, a fifo_entry naming the
//! pipe (its inode) and a regular-file record of its path and open flags
//! (regf_id), and the bytes buffered in it in fifo-data.img, once per FIFO.
//! At restore the path is opened read-write first (so no open waits for
//! the other end), then with the record's flags, each open non-blocking
//! and checked to be the FIFO looked at (nothing swapped in can make us
//! wait); the first description of each FIFO refills it through the
//! read-write one.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, Images, OpenCx, State};
use super::pipe;
use crate::images::kind::kinds;
use crate::images::pb::{FdTypes, FifoEntry, FileEntry};
use crate::images::ImageDir;

/// The FIFO kind (FD_TYPES FIFO).
pub struct Fifo;

/// What the dump gathers: one fifo-data record per FIFO.
#[derive(Default)]
struct Dumped(pipe::Buffers);

/// fifo-data.img as a restore reads it: pipe_id -> (buffer size, bytes).
#[derive(Default)]
struct Data(HashMap<u32, (u32, Vec<u8>)>);

/// FIFOs refilled so far by this restore, by pipe_id.
#[derive(Default)]
struct Refilled(HashSet<u32>);

impl FdKind for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Fifo
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_fifo() && !p.link.starts_with("pipe:") && p.flags & libc::O_PATH as u32 == 0
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        // Our copy of the description: reopening the path could wait for
        // a writer.
        let f = File::from(p.dup()?);
        let regf_id = cx.files.alloc_id();
        let reg = cx.files.reg_entry(regf_id, p.link, &f, p.flags, 0).with_context(|| format!("{} is a fifo", p.who()))?;
        cx.files.push_reg(reg);
        let ino = p.md.ino();
        let what = || format!("data of the fifo {} of {}", p.link, p.who());
        cx.fds.state.get_mut::<Dumped>().0.record(ino, p.pid, p.fd).with_context(what)?;
        let fifo = FifoEntry { id, pipe_id: ino as u32, regf_id: Some(regf_id) };
        Ok(FileEntry { r#type: FdTypes::Fifo as i32, id, fifo: Some(fifo), ..Default::default() })
    }

    fn write_images(&self, st: &State, dir: &ImageDir) -> Result<()> {
        let Some(d) = st.get::<Dumped>() else { return Ok(()) };
        pipe::write_data(dir, "fifo-data.img", kinds::fifo_data(), &d.0.data)
    }

    fn load_images(&self, dir: &ImageDir, imgs: &mut Images) -> Result<()> {
        imgs.state.get_mut::<Data>().0 = pipe::read_data(dir, "fifo-data.img", kinds::fifo_data())?;
        Ok(())
    }

    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let fifo = fe.fifo.as_ref().with_context(|| format!("file {} has no fifo entry", fe.id))?;
        // CRIU before 2.x kept the path record under the fifo's own id.
        let regf_id = fifo.regf_id.unwrap_or(fifo.id);
        let reg = cx
            .images
            .get(&regf_id)
            .and_then(|f| f.reg.as_ref())
            .with_context(|| format!("fd {fd}: fifo {} has no path record {regf_id} in files.img", fe.id))?;
        let path = &reg.name;
        let md = std::fs::symlink_metadata(path).with_context(|| format!("fifo {path} of fd {fd} is gone"))?;
        if !md.file_type().is_fifo() {
            bail!("{path} (fd {fd}) was a fifo and is not one any more");
        }
        // Read-write: keeps the FIFO's buffer while the other ends open.
        let rw = open_checked(path, libc::O_RDWR, &md).with_context(|| format!("can't open fifo {path}"))?;
        let flags = reg.flags as i32 & !super::restore::OPEN_ONLY;
        let f = open_checked(path, flags, &md).with_context(|| format!("can't open fifo {path} for fd {fd}"))?;
        if cx.state.get_mut::<Refilled>().0.insert(fifo.pipe_id)
            && let Some(d) = cx.images.state.get::<Data>().and_then(|d| d.0.get(&fifo.pipe_id))
        {
            pipe::refill(rw.as_fd(), d).with_context(|| format!("fifo {path}"))?;
        }
        Ok(Some(f.into()))
    }

    fn companions(&self, fe: &FileEntry) -> Vec<u32> {
        // The path record is checked when the fifo is opened (opening it
        // to check would wait for a writer).
        fe.fifo.as_ref().and_then(|f| f.regf_id).into_iter().collect()
    }
}

/// Open `path` with `flags`, non-blocking (whatever was put in the FIFO's
/// place meanwhile must not make us wait), check it is still the FIFO
/// looked at (`md`), then give it `flags`' blocking mode.
fn open_checked(path: &str, flags: i32, md: &std::fs::Metadata) -> Result<File> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let acc = flags & libc::O_ACCMODE;
    let f = OpenOptions::new()
        .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags((flags & !libc::O_ACCMODE) | libc::O_NONBLOCK)
        .open(path)?;
    let now = f.metadata()?;
    if (now.dev(), now.ino()) != (md.dev(), md.ino()) {
        bail!("fifo {path} changed while it was opened");
    }
    if flags & libc::O_NONBLOCK == 0 {
        let fl = fcntl(&f, FcntlArg::F_GETFL)?;
        fcntl(&f, FcntlArg::F_SETFL(OFlag::from_bits_retain(fl & !libc::O_NONBLOCK)))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
        let open = |read: bool, write: bool| -> OwnedFd {
            std::fs::OpenOptions::new().read(read).write(write).custom_flags(libc::O_NONBLOCK).open(&path).unwrap().into()
        };
        let (rw, ro) = (open(true, true), open(true, false));
        let wo = open(false, true);
        std::fs::File::from(wo.try_clone().unwrap()).write_all(b"in the fifo").unwrap();
        let list = [rw.as_raw_fd(), ro.as_raw_fd(), wo.as_raw_fd()];
        let flags = |f: &OwnedFd| nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let orig_flags: Vec<i32> = [&rw, &ro, &wo].into_iter().map(flags).collect();
        // The originals close before the restore (their buffer goes with them).
        let (before, back, after) = super::super::round_trip::run_with(&list, move || drop((rw, ro, wo)));
        let data = |d: &super::super::round_trip::Dumped| {
            let st = d.fds.state.get::<super::Dumped>().unwrap();
            st.0.data.iter().map(|(e, bytes)| (e.bytes, bytes.clone())).collect::<Vec<_>>()
        };
        // The same FIFO, read in both dumps (the restore refilled it).
        assert_eq!(data(&before), vec![(11, b"in the fifo".to_vec())]);
        assert_eq!(data(&after), data(&before));
        assert_eq!(back.iter().map(flags).collect::<Vec<_>>(), orig_flags);
        let ino = |f: &OwnedFd| std::fs::metadata(format!("/proc/self/fd/{}", f.as_raw_fd())).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
        let fifo_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        assert!(back.iter().all(|f| ino(f) == fifo_ino), "every fd is the one FIFO again");
        assert!(before.entries.iter().zip(&after.entries).all(|(b, a)| b.fifo.is_some() && a.fifo.is_some()));
    }
}
