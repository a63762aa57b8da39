//! Image files: the images directory, the magic/kind table, framed protobuf
//! readers and writers typed by kind, the pagemap/pages pair, and the schemas (`pb`).
//! Every error names the file and, where it applies, the byte offset.

pub mod dir;
pub mod file;
pub mod inventory;
pub mod kind;
pub mod pagemap;
pub mod pb;

pub use dir::ImageDir;
pub use file::{ImageReader, ImageWriter};
pub use kind::{ImageKind, Kind};

/// A problem with an image file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{path}: truncated {what} at offset {offset}")]
    Truncated { path: String, offset: u64, what: &'static str },
    #[error("{path}: bad magic {found:#x}{}", expected.map(|e| format!(" (expected {e:#x})")).unwrap_or_default())]
    BadMagic { path: String, found: u32, expected: Option<u32> },
    #[error("{path}: entry of {size} bytes at offset {offset} is too big")]
    TooBig { path: String, offset: u64, size: u64 },
    #[error("{path}: can't decode entry at offset {offset}: {msg}")]
    Decode { path: String, offset: u64, msg: String },
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
}

impl ImageError {
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        ImageError::Io { path: path.into(), err: source }
    }

    /// The errno behind this error, for RPC's cr_errno.
    pub fn errno(&self) -> i32 {
        match self {
            ImageError::Io { err, .. } => err.raw_os_error().unwrap_or(libc::EIO),
            _ => libc::EINVAL,
        }
    }
}
