//! The images directory, held as a directory fd so an RPC client's
//! `images_dir_fd` fits as well as a `-D` path. Files are opened relative to
//! it with openat.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use super::ImageError;

/// An open images directory.
#[derive(Debug)]
pub struct ImageDir {
    fd: OwnedFd,
    /// For messages and for tools that need a path (action scripts).
    path: PathBuf,
}

impl ImageDir {
    /// Open `path` as the images directory.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| ImageError::io(path.display().to_string(), std::io::Error::from(e)))?;
        Ok(ImageDir { fd, path: path.to_path_buf() })
    }

    /// Use an already open directory fd (RPC's images_dir_fd).
    pub fn from_fd(fd: OwnedFd) -> Self {
        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        ImageDir { fd, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside the directory, for messages.
    pub fn display(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }

    /// Open `name` for reading.
    pub fn open_file(&self, name: &str) -> Result<File, ImageError> {
        let fd = openat(self.fd.as_fd(), name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| ImageError::io(self.display(name), std::io::Error::from(e)))?;
        Ok(File::from(fd))
    }

    /// Does `name` exist?
    pub fn exists(&self, name: &str) -> bool {
        nix::sys::stat::fstatat(self.fd.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// Create (or truncate) `name` for writing, mode 0600 as CRIU.
    pub fn create_file(&self, name: &str) -> Result<File, ImageError> {
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| ImageError::io(self.display(name), std::io::Error::from(e)))?;
        Ok(File::from(fd))
    }

    /// The names of the files in the directory, sorted.
    pub fn list(&self) -> Result<Vec<String>, ImageError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .map_err(|e| ImageError::io(self.path.display().to_string(), e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

impl AsFd for ImageDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
