//! Pipes: each end's pipe_entry (the pipe is named by its inode), and the
//! bytes buffered in the pipe, read without consuming them (tee into a
//! pipe of ours) into pipes-data.img; at restore, one pipe2 per pipe,
//! refilled, its ends shared by the descriptions that name it.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, tee, FcntlArg, OFlag, SpliceFFlags};

use super::kind::{DumpCx, FdKind, FdProbe, Images, OpenCx, State};
use crate::images::kind::{kinds, Kind};
use crate::images::pb::{FdTypes, FileEntry, FownEntry, PipeDataEntry, PipeEntry};
use crate::images::{ImageDir, ImageReader, ImageWriter};

/// The pipe kind (FD_TYPES PIPE).
pub struct Pipe;

/// The buffered bytes of a dump's pipes (or FIFOs): one record per pipe,
/// empty or not (as CRIU: it also carries the pipe's size).
#[derive(Default)]
pub struct Buffers {
    pub data: Vec<(PipeDataEntry, Vec<u8>)>,
    seen: HashSet<u64>,
}

impl Buffers {
    /// Read the bytes of pipe `ino`, which fd `fd` of `pid` holds, unless
    /// they were read through another fd already.
    pub fn record(&mut self, ino: u64, pid: i32, fd: i32) -> Result<()> {
        if self.seen.insert(ino) {
            self.data.push(peek_data(pid, fd)?);
        }
        Ok(())
    }
}

/// What the dump gathers: the pipes' bytes for pipes-data.img.
#[derive(Default)]
struct Dumped(Buffers);

/// pipes-data.img as a restore reads it: pipe_id -> (buffer size, bytes).
#[derive(Default)]
struct Data(HashMap<u32, (u32, Vec<u8>)>);

/// The pipes a restore made: pipe_id -> (read end, write end), and which
/// ends already gave their first description.
#[derive(Default)]
struct Made {
    pipes: HashMap<u32, (OwnedFd, OwnedFd)>,
    used_ends: Vec<(u32, bool)>,
}

fn pipe_keys(p: &PipeEntry) -> Vec<String> {
    vec![format!("pipe:[{}]", p.pipe_id), format!("pipe[{}]", p.pipe_id)]
}

impl FdKind for Pipe {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Pipe
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_fifo() && p.link.starts_with("pipe:")
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let ino = p.md.ino();
        cx.fds.state.get_mut::<Dumped>().0.record(ino, p.pid, p.fd)?;
        Ok(FileEntry { r#type: FdTypes::Pipe as i32, id, pipe: Some(entry(id, ino, p.flags)), ..Default::default() })
    }

    fn travels(&self) -> bool {
        true
    }

    fn write_images(&self, st: &State, dir: &ImageDir) -> Result<()> {
        let Some(d) = st.get::<Dumped>() else { return Ok(()) };
        write_data(dir, "pipes-data.img", kinds::pipes_data(), &d.0.data)
    }

    fn load_images(&self, dir: &ImageDir, imgs: &mut Images) -> Result<()> {
        imgs.state.get_mut::<Data>().0 = read_data(dir, "pipes-data.img", kinds::pipes_data())?;
        Ok(())
    }

    fn inherit_keys(&self, fe: &FileEntry) -> Vec<String> {
        fe.pipe.as_ref().map(pipe_keys).unwrap_or_default()
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.pipe.as_ref().map(|p| p.flags)
    }

    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let p = fe.pipe.as_ref().with_context(|| format!("file {} has no pipe entry", fe.id))?;
        let made = cx.state.get_mut::<Made>();
        if let std::collections::hash_map::Entry::Vacant(v) = made.pipes.entry(p.pipe_id) {
            let data = cx.images.state.get::<Data>().and_then(|d| d.0.get(&p.pipe_id));
            v.insert(new_pipe(p.pipe_id, data)?);
        }
        let (r, w) = &made.pipes[&p.pipe_id];
        let acc = p.flags as i32 & libc::O_ACCMODE;
        let (end, read_end) = match acc {
            // Opened read-write through /proc (bash's `<> <(...)`): the
            // same, from the read end.
            libc::O_RDWR => return reopen(r, true, true, p.pipe_id, fd).map(Some),
            libc::O_RDONLY => (r, true),
            _ => (w, false),
        };
        // The first description of each end is the one pipe2 made (a
        // reopen would add O_LARGEFILE); others are reopened.
        if !made.used_ends.contains(&(p.pipe_id, read_end)) {
            let first = end.try_clone().context("dup of a pipe end")?;
            made.used_ends.push((p.pipe_id, read_end));
            return Ok(Some(first));
        }
        reopen(end, read_end, !read_end, p.pipe_id, fd).map(Some)
    }
}

/// Write buffered data records (pipes-data.img, fifo-data.img): each
/// entry followed by its bytes.
pub fn write_data(dir: &ImageDir, name: &str, kind: Kind<PipeDataEntry>, data: &[(PipeDataEntry, Vec<u8>)]) -> Result<()> {
    let mut w = ImageWriter::create(dir, name, kind)?;
    for (e, bytes) in data {
        w.write(e)?;
        w.payload(bytes)?;
    }
    w.finish()?;
    Ok(())
}

/// Read buffered data records back: pipe_id -> (buffer size, bytes);
/// empty when there is no such image.
pub fn read_data(dir: &ImageDir, name: &str, kind: Kind<PipeDataEntry>) -> Result<HashMap<u32, (u32, Vec<u8>)>> {
    let mut out = HashMap::new();
    if !dir.exists(name) {
        return Ok(out);
    }
    let mut r = ImageReader::open_kind(dir, name, kind)?;
    while let Some(e) = r.next_entry()? {
        let bytes = r.payload(u64::from(e.bytes))?;
        out.insert(e.pipe_id, (e.size.unwrap_or(0), bytes));
    }
    Ok(out)
}

/// Another description of a pipe end, through /proc (non-blocking: the
/// other end may have no opener yet; the record's flags come after).
fn reopen(end: &OwnedFd, read: bool, write: bool, pipe_id: u32, fd: u32) -> Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", end.as_raw_fd());
    let f = OpenOptions::new()
        .read(read)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .with_context(|| format!("reopening pipe {pipe_id} for fd {fd}"))?;
    Ok(f.into())
}

/// A new pipe with the buffer size and the bytes it held.
fn new_pipe(pipe_id: u32, data: Option<&(u32, Vec<u8>)>) -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    if let Some(d) = data {
        refill(w.as_fd(), d).with_context(|| format!("pipe {pipe_id}"))?;
    }
    Ok((r, w))
}

/// Give a pipe (or FIFO), through a writable fd of it, its recorded buffer
/// size and bytes.
pub fn refill(w: std::os::fd::BorrowedFd<'_>, (size, bytes): &(u32, Vec<u8>)) -> Result<()> {
    if *size > 0 {
        fcntl(w, FcntlArg::F_SETPIPE_SZ(*size as i32)).context("F_SETPIPE_SZ")?;
    }
    let mut f = File::from(w.try_clone_to_owned().context("dup")?);
    f.write_all(bytes).context("refilling it")?;
    Ok(())
}

/// The pipe_entry of one end.
pub fn entry(id: u32, pipe_ino: u64, flags: u32) -> PipeEntry {
    PipeEntry { id, pipe_id: pipe_ino as u32, flags, fown: FownEntry::default() }
}

/// The buffered bytes of the pipe that `pid` has open as `fd`, and the
/// pipe's buffer size. The task's data stays in its pipe.
pub fn peek_data(pid: i32, fd: i32) -> Result<(PipeDataEntry, Vec<u8>)> {
    let path = format!("/proc/{pid}/fd/{fd}");
    let theirs = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .with_context(|| format!("can't open the pipe of fd {fd} of task {pid}"))?;
    let ino = theirs.metadata()?.ino();
    let size = fcntl(theirs.as_fd(), FcntlArg::F_GETPIPE_SZ).with_context(|| format!("F_GETPIPE_SZ on fd {fd} of {pid}"))?;
    let (ours_r, ours_w) = nix::unistd::pipe().context("pipe")?;
    fcntl(ours_w.as_fd(), FcntlArg::F_SETPIPE_SZ(size)).context("F_SETPIPE_SZ")?;
    let mut data = Vec::new();
    let n = match tee(theirs.as_fd(), ours_w.as_fd(), size as usize, SpliceFFlags::SPLICE_F_NONBLOCK) {
        Ok(n) => n,
        Err(nix::errno::Errno::EAGAIN) => 0,
        Err(e) => return Err(e).with_context(|| format!("tee from the pipe of fd {fd} of {pid}")),
    };
    drop(ours_w);
    File::from(ours_r).read_to_end(&mut data).context("reading pipe data")?;
    anyhow::ensure!(data.len() == n, "pipe of fd {fd}: tee gave {n} bytes, read {}", data.len());
    Ok((PipeDataEntry { pipe_id: ino as u32, bytes: n as u32, size: Some(size as u32) }, data))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn round_trip() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 16)).unwrap();
        std::fs::File::from(w.try_clone().unwrap()).write_all(b"queued bytes").unwrap();
        let (before, back, after) = super::super::round_trip::run(&[r.as_raw_fd(), w.as_raw_fd()]);
        for (b, a) in before.entries.iter().zip(&after.entries) {
            let (b, a) = (b.pipe.as_ref().unwrap(), a.pipe.as_ref().unwrap());
            assert_eq!(b.flags, a.flags, "status flags of an end");
        }
        let data = |d: &super::super::round_trip::Dumped| {
            let st = d.fds.state.get::<super::Dumped>().unwrap();
            st.0.data.iter().map(|(e, bytes)| (e.bytes, e.size, bytes.clone())).collect::<Vec<_>>()
        };
        assert_eq!(data(&before), vec![(12, Some(1 << 16), b"queued bytes".to_vec())]);
        assert_eq!(data(&before), data(&after));
        // The two ends are one pipe again.
        let ino = |f: &std::os::fd::OwnedFd| std::fs::metadata(format!("/proc/self/fd/{}", f.as_raw_fd())).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
        assert_eq!(ino(&back[0]), ino(&back[1]));
    }
}
