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

/// Mark every fd from `first` up close-on-exec (close_range with
/// CLOSE_RANGE_CLOEXEC), so programs we start inherit only 0..first.
pub fn cloexec_from(first: u32) -> std::io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on fds;
    // it closes nothing, so no Rust-owned fd is invalidated.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}
