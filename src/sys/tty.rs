//! Terminal ioctls a dump reads and a restore sets: the window size.

use std::os::fd::{AsRawFd, BorrowedFd};

/// struct winsize.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Winsize {
    pub row: u16,
    pub col: u16,
    pub xpixel: u16,
    pub ypixel: u16,
}

/// TIOCGWINSZ.
pub fn get_winsize(fd: BorrowedFd<'_>) -> std::io::Result<Winsize> {
    let mut w = Winsize::default();
    // SAFETY: TIOCGWINSZ writes one struct winsize into `w`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut w as *mut Winsize) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(w) }
}
