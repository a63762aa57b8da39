//! Pipes: each end's pipe_entry (the pipe is named by its inode), and the
//! bytes buffered in the pipe, read without consuming them (tee into a
//! pipe of ours) into pipes-data.img.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, tee, FcntlArg, SpliceFFlags};

use crate::images::pb::{FownEntry, PipeDataEntry, PipeEntry};

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
