//! Protobuf image files: the magic header, then entries framed as
//! `[u32 LE length][message]`, optionally followed by raw payload bytes.
//!
//! The reader never trusts a length: an entry is capped at
//! [`MAX_ENTRY_SIZE`] and must fit in what is left of the file, so a corrupt
//! image gives an error naming the file and byte offset, never a panic or a
//! huge allocation.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use prost::Message;

use super::dir::ImageDir;
use super::kind::{self, ImageKind, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, INVENTORY_MAGIC};
use super::ImageError;

/// The largest protobuf entry we accept (an mm entry of a task at the
/// kernel's max_map_count is a few MiB).
pub const MAX_ENTRY_SIZE: u64 = 64 << 20;

/// Reads one image file.
pub struct ImageReader<R = BufReader<File>> {
    inner: R,
    name: String,
    offset: u64,
    len: u64,
    kind: &'static ImageKind,
}

impl ImageReader<BufReader<File>> {
    /// Open `name` in `dir`, detecting its kind from the magic.
    pub fn open(dir: &ImageDir, name: &str) -> Result<Self, ImageError> {
        let file = dir.open_file(name)?;
        let len = file.metadata().map_err(|e| ImageError::io(dir.display(name), e))?.len();
        ImageReader::new(BufReader::new(file), dir.display(name), len)
    }

    /// Open `name` in `dir` and check it holds images of `kind`.
    pub fn open_kind(dir: &ImageDir, name: &str, kind: &'static ImageKind) -> Result<Self, ImageError> {
        let r = Self::open(dir, name)?;
        if r.kind.magic != kind.magic {
            return Err(ImageError::BadMagic {
                path: r.name,
                found: r.kind.magic,
                expected: Some(kind.magic),
            });
        }
        Ok(r)
    }
}

impl<R: Read> ImageReader<R> {
    /// Read the header of an image of `len` bytes from `inner`. `name` is
    /// used in errors.
    pub fn new(mut inner: R, name: String, len: u64) -> Result<Self, ImageError> {
        let mut offset = 0;
        let first = read_u32(&mut inner, &name, &mut offset, len, "magic")?;
        let magic = match first {
            IMG_COMMON_MAGIC | IMG_SERVICE_MAGIC => read_u32(&mut inner, &name, &mut offset, len, "magic")?,
            m => m,
        };
        let kind = kind::by_magic(magic).ok_or(ImageError::BadMagic { path: name.clone(), found: magic, expected: None })?;
        let expected_first = if kind.magic == INVENTORY_MAGIC {
            INVENTORY_MAGIC
        } else if kind.service {
            IMG_SERVICE_MAGIC
        } else {
            IMG_COMMON_MAGIC
        };
        if first != expected_first {
            return Err(ImageError::BadMagic { path: name, found: first, expected: Some(expected_first) });
        }
        Ok(ImageReader { inner, name, offset, len, kind })
    }

    pub fn kind(&self) -> &'static ImageKind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Byte offset of the next read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next entry's bytes, or None at a clean end of file.
    pub fn next_raw(&mut self) -> Result<Option<Vec<u8>>, ImageError> {
        if self.offset == self.len {
            return Ok(None);
        }
        let at = self.offset;
        let size = u64::from(read_u32(&mut self.inner, &self.name, &mut self.offset, self.len, "entry size")?);
        if size > MAX_ENTRY_SIZE {
            return Err(ImageError::TooBig { path: self.name.clone(), offset: at, size });
        }
        // Report a short entry at its start, where its length word is.
        self.read_exact_vec(size, "entry").map(Some).map_err(|e| match e {
            ImageError::Truncated { path, what, .. } => ImageError::Truncated { path, offset: at, what },
            e => e,
        })
    }

    /// The next entry decoded as `M`, or None at a clean end of file.
    pub fn next_entry<M: Message + Default>(&mut self) -> Result<Option<M>, ImageError> {
        let at = self.offset;
        match self.next_raw()? {
            None => Ok(None),
            Some(buf) => M::decode(buf.as_slice())
                .map(Some)
                .map_err(|e| ImageError::Decode { path: self.name.clone(), offset: at, msg: e.to_string() }),
        }
    }

    /// The next entry, which must exist.
    pub fn expect<M: Message + Default>(&mut self) -> Result<M, ImageError> {
        let at = self.offset;
        self.next_entry()?.ok_or_else(|| ImageError::Truncated { path: self.name.clone(), offset: at, what: "entry" })
    }

    /// Every remaining entry.
    pub fn all<M: Message + Default>(&mut self) -> Result<Vec<M>, ImageError> {
        let mut v = Vec::new();
        while let Some(m) = self.next_entry()? {
            v.push(m);
        }
        Ok(v)
    }

    /// `n` bytes of raw payload that follow an entry.
    pub fn payload(&mut self, n: u64) -> Result<Vec<u8>, ImageError> {
        self.read_exact_vec(n, "payload")
    }

    /// Everything left in the file.
    pub fn rest(&mut self) -> Result<Vec<u8>, ImageError> {
        self.read_exact_vec(self.len - self.offset, "payload")
    }

    fn read_exact_vec(&mut self, n: u64, what: &'static str) -> Result<Vec<u8>, ImageError> {
        let at = self.offset;
        if n > self.len - self.offset {
            return Err(ImageError::Truncated { path: self.name.clone(), offset: at, what });
        }
        let mut buf = vec![0u8; n as usize];
        self.inner.read_exact(&mut buf).map_err(|e| ImageError::io(format!("{} at offset {at}", self.name), e))?;
        self.offset += n;
        Ok(buf)
    }
}

impl<R: Read + Seek> ImageReader<R> {
    /// Skip `n` payload bytes without reading them.
    pub fn skip(&mut self, n: u64) -> Result<(), ImageError> {
        let at = self.offset;
        if n > self.len - self.offset {
            return Err(ImageError::Truncated { path: self.name.clone(), offset: at, what: "payload" });
        }
        self.inner.seek(SeekFrom::Current(n as i64)).map_err(|e| ImageError::io(self.name.clone(), e))?;
        self.offset += n;
        Ok(())
    }
}

fn read_u32<R: Read>(r: &mut R, name: &str, offset: &mut u64, len: u64, what: &'static str) -> Result<u32, ImageError> {
    if len - *offset < 4 {
        return Err(ImageError::Truncated { path: name.to_string(), offset: *offset, what });
    }
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(|e| ImageError::io(format!("{name} at offset {offset}"), e))?;
    *offset += 4;
    Ok(u32::from_le_bytes(b))
}

/// Writes one image file.
pub struct ImageWriter<W: Write = BufWriter<File>> {
    inner: W,
    name: String,
}

impl ImageWriter<BufWriter<File>> {
    /// Create `name` in `dir` as an image of `kind` and write its header.
    pub fn create(dir: &ImageDir, name: &str, kind: &'static ImageKind) -> Result<Self, ImageError> {
        let file = dir.create_file(name)?;
        ImageWriter::new(BufWriter::with_capacity(64 << 10, file), dir.display(name), kind)
    }
}

impl<W: Write> ImageWriter<W> {
    /// Write the header of a `kind` image to `inner`.
    pub fn new(inner: W, name: String, kind: &'static ImageKind) -> Result<Self, ImageError> {
        let mut w = ImageWriter { inner, name };
        if kind.magic != INVENTORY_MAGIC {
            w.write_bytes(&(if kind.service { IMG_SERVICE_MAGIC } else { IMG_COMMON_MAGIC }).to_le_bytes())?;
        }
        w.write_bytes(&kind.magic.to_le_bytes())?;
        Ok(w)
    }

    /// Append one entry.
    pub fn write<M: Message>(&mut self, m: &M) -> Result<(), ImageError> {
        let len = m.encoded_len();
        let len32 = u32::try_from(len)
            .ok()
            .filter(|l| u64::from(*l) <= MAX_ENTRY_SIZE)
            .ok_or(ImageError::TooBig { path: self.name.clone(), offset: 0, size: len as u64 })?;
        let mut buf = Vec::with_capacity(4 + len);
        buf.extend_from_slice(&len32.to_le_bytes());
        m.encode(&mut buf).map_err(|e| ImageError::Decode { path: self.name.clone(), offset: 0, msg: e.to_string() })?;
        self.write_bytes(&buf)
    }

    /// Append raw payload bytes after an entry.
    pub fn payload(&mut self, data: &[u8]) -> Result<(), ImageError> {
        self.write_bytes(data)
    }

    fn write_bytes(&mut self, b: &[u8]) -> Result<(), ImageError> {
        self.inner.write_all(b).map_err(|e| ImageError::io(self.name.clone(), e))
    }

    /// Flush and return the inner writer.
    pub fn finish(mut self) -> Result<W, ImageError> {
        self.inner.flush().map_err(|e| ImageError::io(self.name.clone(), e))?;
        Ok(self.inner)
    }
}
