//! tcp-stream-INO.img: one tcp_stream_entry, then the receive queue's
//! bytes, then the send queue's (as CRIU 4.2 writes it).

use anyhow::{Context, Result};

use super::Stream;
use crate::images::ImageDir;
use crate::images::file::{ImageReader, ImageWriter};
use crate::images::kind::kinds;

fn name(ino: u32) -> String {
    format!("tcp-stream-{ino:x}.img")
}

/// Write the stream of the socket with inode `ino`.
pub fn write(dir: &ImageDir, ino: u32, s: &Stream) -> Result<()> {
    let n = name(ino);
    let mut w = ImageWriter::create(dir, &n, kinds::tcp_stream()).with_context(|| n.clone())?;
    w.write(&s.entry)?;
    w.payload(&s.inq)?;
    w.payload(&s.outq)?;
    w.finish()?;
    Ok(())
}

/// Read the stream of the socket with inode `ino`; None without its image.
pub fn read(dir: &ImageDir, ino: u32) -> Result<Option<Stream>> {
    let n = name(ino);
    if !dir.exists(&n) {
        return Ok(None);
    }
    let mut r = ImageReader::open_kind(dir, &n, kinds::tcp_stream()).with_context(|| n.clone())?;
    let entry = r.expect().with_context(|| n.clone())?;
    let inq = r.payload(u64::from(entry.inq_len)).with_context(|| format!("{n}: the receive queue"))?;
    let outq = r.payload(u64::from(entry.outq_len)).with_context(|| format!("{n}: the send queue"))?;
    Ok(Some(Stream { entry, inq, outq }))
}
