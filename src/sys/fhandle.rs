//! File handles (open_by_handle_at): how inotify watches name their inodes.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// open_by_handle_at(mount_fd, {bytes, type, handle}, O_PATH|O_CLOEXEC).
pub fn open_by_handle(mount: BorrowedFd<'_>, handle_type: i32, handle: &[u8]) -> std::io::Result<OwnedFd> {
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
    let mut buf = vec![0u8; 8 + handle.len()];
    buf[..4].copy_from_slice(&(handle.len() as u32).to_ne_bytes());
    buf[4..8].copy_from_slice(&handle_type.to_ne_bytes());
    buf[8..].copy_from_slice(handle);
    // SAFETY: `buf` holds a complete struct file_handle of the size it says.
    let r = unsafe {
        libc::syscall(libc::SYS_open_by_handle_at, mount.as_raw_fd(), buf.as_mut_ptr(), libc::O_PATH | libc::O_CLOEXEC)
    };
    super::ret::own_fd(r).map_err(std::io::Error::from)
}
