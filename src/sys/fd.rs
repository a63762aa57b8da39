//! Raw file-descriptor operations on fds we do not own as Rust objects.

/// Close a raw fd number (`--close FD`). Errors are ignored as CRIU does.
pub fn close_raw(fd: i32) {
    // SAFETY: closing an fd number has no memory-safety effect on this
    // process; no Rust object owns these fds (they are inherited numbers the
    // user asked us to close before anything opens files).
    unsafe {
        libc::close(fd);
    }
}
