//! The pagemap-ID.img / pages-N.img pair. A pagemap is a `pagemap_head`
//! naming the pages file, then one `pagemap_entry` per run of pages; the
//! pages file is raw: the present pages of every entry, in entry order,
//! with holes not stored.

use super::dir::ImageDir;
use super::file::{ImageReader, ImageWriter};
use super::kind::kinds;
use super::pb::{PagemapEntry, PagemapHead};
use super::ImageError;

/// The page size of images (x86_64 and aarch64 4K kernels).
pub const PAGE_SIZE: u64 = 4096;

/// Pagemap entry flags.
pub mod flags {
    /// The pages are in the parent images directory.
    pub const PE_PARENT: u32 = 1 << 0;
    /// The pages may be fetched lazily.
    pub const PE_LAZY: u32 = 1 << 1;
    /// The pages are in this image's pages file.
    pub const PE_PRESENT: u32 = 1 << 2;
}

/// The name of pages image `id`.
pub fn pages_file_name(id: u32) -> String {
    format!("pages-{id}.img")
}

/// One run of pages with where its data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRun {
    pub vaddr: u64,
    pub nr_pages: u64,
    pub flags: u32,
    /// Offset of the run in the pages file, for runs stored in it.
    pub pages_offset: Option<u64>,
}

impl PageRun {
    pub fn len(&self) -> u64 {
        self.nr_pages * PAGE_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.nr_pages == 0
    }
}

/// The flags of an entry; images from before flags existed use `in_parent`.
pub fn entry_flags(e: &PagemapEntry) -> u32 {
    match e.flags {
        Some(f) => f,
        None if e.in_parent == Some(true) => flags::PE_PARENT,
        None => flags::PE_PRESENT,
    }
}

/// The number of pages of an entry (`nr_pages`, or the old 32-bit field).
pub fn entry_nr_pages(e: &PagemapEntry) -> u64 {
    e.nr_pages.unwrap_or(u64::from(e.compat_nr_pages))
}

/// A decoded pagemap image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pagemap {
    pub head: PagemapHead,
    pub entries: Vec<PagemapEntry>,
}

impl Pagemap {
    /// Read `pagemap-{id}.img`.
    pub fn read(dir: &ImageDir, id: u64) -> Result<Self, ImageError> {
        Self::read_named(dir, &kinds::pagemap().file_name(id))
    }

    /// Read a pagemap image named `name`.
    pub fn read_named(dir: &ImageDir, name: &str) -> Result<Self, ImageError> {
        let mut r = ImageReader::open_kind(dir, name, kinds::pagemap())?;
        let head = r.head()?;
        let entries = r.all()?;
        Ok(Pagemap { head, entries })
    }

    /// Write `pagemap-{id}.img`.
    pub fn write(&self, dir: &ImageDir, id: u64) -> Result<(), ImageError> {
        self.write_named(dir, &kinds::pagemap().file_name(id))
    }

    /// Write a pagemap image named `name` (pagemap-shmem-ID.img, ...).
    pub fn write_named(&self, dir: &ImageDir, name: &str) -> Result<(), ImageError> {
        let mut w = ImageWriter::create(dir, name, kinds::pagemap())?;
        w.head(&self.head)?;
        for e in &self.entries {
            w.write(e)?;
        }
        w.finish().map(drop)
    }

    /// The runs, with offsets into the pages file, checked for order,
    /// overflow and against `pages_len` (the pages file size). `name` is
    /// used in errors.
    pub fn runs(&self, name: &str, pages_len: u64) -> Result<Vec<PageRun>, ImageError> {
        let bad = |msg: String| ImageError::Invalid { path: name.to_string(), msg };
        let mut off = 0u64;
        let mut prev_end = 0u64;
        let mut out = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            let nr = entry_nr_pages(e);
            let fl = entry_flags(e);
            let len = nr.checked_mul(PAGE_SIZE).ok_or_else(|| bad(format!("entry {i}: {nr} pages overflow")))?;
            let end = e.vaddr.checked_add(len).ok_or_else(|| bad(format!("entry {i}: run at {:#x} overflows", e.vaddr)))?;
            if e.vaddr % PAGE_SIZE != 0 {
                return Err(bad(format!("entry {i}: vaddr {:#x} is not page aligned", e.vaddr)));
            }
            if e.vaddr < prev_end {
                return Err(bad(format!("entry {i}: vaddr {:#x} overlaps or is out of order", e.vaddr)));
            }
            prev_end = end;
            let pages_offset = if fl & flags::PE_PRESENT != 0 && fl & flags::PE_PARENT == 0 {
                let o = off;
                off = off.checked_add(len).ok_or_else(|| bad(format!("entry {i}: pages offset overflows")))?;
                if off > pages_len {
                    return Err(bad(format!(
                        "entry {i} (vaddr {:#x}, {nr} pages) points past the end of {} ({pages_len} bytes)",
                        e.vaddr,
                        pages_file_name(self.head.pages_id)
                    )));
                }
                Some(o)
            } else {
                None
            };
            out.push(PageRun { vaddr: e.vaddr, nr_pages: nr, flags: fl, pages_offset });
        }
        Ok(out)
    }
}
