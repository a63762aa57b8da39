//! Protobuf image files: the magic header, then entries framed as
//! `[u32 LE length][message]`, optionally followed by raw payload bytes.
//!
//! Readers and writers are typed by their [`Kind`]: an
//! `ImageWriter<CoreEntry>` writes only `core_entry`s, an
//! `ImageReader<CoreEntry>` yields only them. `ImageReader<AnyKind>` reads
//! whatever kind the magic names, as raw entries (crit).
//!
//! The reader never trusts a length: an entry is capped at
//! [`MAX_ENTRY_SIZE`] and must fit in what is left of the file, so a corrupt
//! image gives an error naming the file and byte offset, never a panic or a
//! huge allocation.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;

use prost::Message;

use super::dir::ImageDir;
use super::kind::{self, ImageKind, Kind, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, INVENTORY_MAGIC};
use super::pb::{GhostChunkEntry, GhostFileEntry, PagemapEntry, PagemapHead};
use super::ImageError;

/// The largest protobuf entry we accept (an mm entry of a task at the
/// kernel's max_map_count is a few MiB).
pub const MAX_ENTRY_SIZE: u64 = 64 << 20;

/// The entry type of a reader that takes any kind, detected from the magic:
/// its entries are only raw bytes.
#[derive(Debug)]
pub enum AnyKind {}

/// Reads one image file whose entries are `M` ([`AnyKind`]: any kind).
pub struct ImageReader<M = AnyKind, R = BufReader<File>> {
    inner: R,
    name: String,
    offset: u64,
    len: u64,
    kind: &'static ImageKind,
    entry: PhantomData<fn() -> M>,
}

impl ImageReader {
    /// Open `name` in `dir`, detecting its kind from the magic.
    pub fn open(dir: &ImageDir, name: &str) -> Result<Self, ImageError> {
        let file = dir.open_file(name)?;
        let len = file.metadata().map_err(|e| ImageError::io(dir.display(name), e))?.len();
        ImageReader::new(BufReader::new(file), dir.display(name), len)
    }
}

impl<M: Message + Default> ImageReader<M> {
    /// Open `name` in `dir` and check it holds images of `kind`.
    pub fn open_kind(dir: &ImageDir, name: &str, kind: Kind<M>) -> Result<Self, ImageError> {
        ImageReader::open(dir, name)?.into_kind(kind)
    }
}

impl<R: Read> ImageReader<AnyKind, R> {
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
        Ok(ImageReader { inner, name, offset, len, kind, entry: PhantomData })
    }

    /// This image as one of `kind`, which its magic must be.
    pub fn into_kind<M: Message + Default>(self, kind: Kind<M>) -> Result<ImageReader<M, R>, ImageError> {
        if self.kind.magic != kind.magic {
            return Err(ImageError::BadMagic { path: self.name, found: self.kind.magic, expected: Some(kind.magic) });
        }
        let ImageReader { inner, name, offset, len, .. } = self;
        Ok(ImageReader { inner, name, offset, len, kind: kind.row(), entry: PhantomData })
    }

    /// The next entry's bytes, or None at a clean end of file.
    pub fn next_raw(&mut self) -> Result<Option<Vec<u8>>, ImageError> {
        self.raw_entry()
    }
}

impl<M, R: Read> ImageReader<M, R> {
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

    /// `n` bytes of raw payload that follow an entry.
    pub fn payload(&mut self, n: u64) -> Result<Vec<u8>, ImageError> {
        self.read_exact_vec(n, "payload")
    }

    /// Everything left in the file.
    pub fn rest(&mut self) -> Result<Vec<u8>, ImageError> {
        self.read_exact_vec(self.len - self.offset, "payload")
    }

    fn raw_entry(&mut self) -> Result<Option<Vec<u8>>, ImageError> {
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

    /// The next entry decoded as `T`: `M`, or the kind's other message
    /// where its format has one (pagemap head, ghost chunks).
    fn decode_next<T: Message + Default>(&mut self) -> Result<Option<T>, ImageError> {
        let at = self.offset;
        match self.raw_entry()? {
            None => Ok(None),
            Some(buf) => T::decode(buf.as_slice())
                .map(Some)
                .map_err(|e| ImageError::Decode { path: self.name.clone(), offset: at, msg: e.to_string() }),
        }
    }

    fn expect_next<T: Message + Default>(&mut self) -> Result<T, ImageError> {
        let at = self.offset;
        self.decode_next()?.ok_or_else(|| ImageError::Truncated { path: self.name.clone(), offset: at, what: "entry" })
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

impl<M: Message + Default, R: Read> ImageReader<M, R> {
    /// The next entry, or None at a clean end of file.
    pub fn next_entry(&mut self) -> Result<Option<M>, ImageError> {
        self.decode_next()
    }

    /// The next entry, which must exist.
    pub fn expect(&mut self) -> Result<M, ImageError> {
        self.expect_next()
    }

    /// Every remaining entry.
    pub fn all(&mut self) -> Result<Vec<M>, ImageError> {
        let mut v = Vec::new();
        while let Some(m) = self.next_entry()? {
            v.push(m);
        }
        Ok(v)
    }
}

impl<R: Read> ImageReader<PagemapEntry, R> {
    /// The `pagemap_head` that comes before the entries.
    pub fn head(&mut self) -> Result<PagemapHead, ImageError> {
        self.expect_next()
    }
}

impl<R: Read> ImageReader<GhostFileEntry, R> {
    /// The next `ghost_chunk_entry` after a chunked ghost's entry (its data
    /// follows as payload), or None at the end.
    pub fn next_chunk(&mut self) -> Result<Option<GhostChunkEntry>, ImageError> {
        self.decode_next()
    }
}

impl<M, R: Read + Seek> ImageReader<M, R> {
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

/// Writes one image file of entries `M`.
pub struct ImageWriter<M, W: Write = BufWriter<File>> {
    inner: W,
    name: String,
    entry: PhantomData<fn(&M)>,
}

impl<M: Message> ImageWriter<M> {
    /// Create `name` in `dir` as an image of `kind` and write its header.
    pub fn create(dir: &ImageDir, name: &str, kind: Kind<M>) -> Result<Self, ImageError> {
        let file = dir.create_file(name)?;
        ImageWriter::new(BufWriter::with_capacity(64 << 10, file), dir.display(name), kind)
    }
}

impl<M: Message, W: Write> ImageWriter<M, W> {
    /// Write the header of a `kind` image to `inner`.
    pub fn new(inner: W, name: String, kind: Kind<M>) -> Result<Self, ImageError> {
        let mut w = ImageWriter { inner, name, entry: PhantomData };
        if kind.magic != INVENTORY_MAGIC {
            w.write_bytes(&(if kind.service { IMG_SERVICE_MAGIC } else { IMG_COMMON_MAGIC }).to_le_bytes())?;
        }
        w.write_bytes(&kind.magic.to_le_bytes())?;
        Ok(w)
    }

    /// Append one entry.
    pub fn write(&mut self, m: &M) -> Result<(), ImageError> {
        self.put(m)
    }

    /// Append raw payload bytes after an entry.
    pub fn payload(&mut self, data: &[u8]) -> Result<(), ImageError> {
        self.write_bytes(data)
    }

    /// Flush and return the inner writer.
    pub fn finish(mut self) -> Result<W, ImageError> {
        self.inner.flush().map_err(|e| ImageError::io(self.name.clone(), e))?;
        Ok(self.inner)
    }

    /// Append `m`: `M`, or the kind's other message where its format has
    /// one.
    fn put<T: Message>(&mut self, m: &T) -> Result<(), ImageError> {
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

    fn write_bytes(&mut self, b: &[u8]) -> Result<(), ImageError> {
        self.inner.write_all(b).map_err(|e| ImageError::io(self.name.clone(), e))
    }
}

impl<W: Write> ImageWriter<PagemapEntry, W> {
    /// Append the `pagemap_head`, which comes before the entries.
    pub fn head(&mut self, h: &PagemapHead) -> Result<(), ImageError> {
        self.put(h)
    }
}

impl<W: Write> ImageWriter<GhostFileEntry, W> {
    /// Append a `ghost_chunk_entry` of a chunked ghost (its data follows as
    /// payload).
    pub fn chunk(&mut self, c: &GhostChunkEntry) -> Result<(), ImageError> {
        self.put(c)
    }
}
