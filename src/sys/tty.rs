//! Terminal ioctls a dump reads and a restore sets: the window size, the
//! kernel's termios and its locked-fields mask.

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

/// The kernel's `struct termios` (TCGETS; 19 control characters, no speeds).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelTermios {
    pub c_iflag: u32,
    pub c_oflag: u32,
    pub c_cflag: u32,
    pub c_lflag: u32,
    pub c_line: u8,
    pub c_cc: [u8; 19],
}

fn get_termios(fd: BorrowedFd<'_>, req: libc::c_ulong) -> std::io::Result<KernelTermios> {
    let mut t = KernelTermios::default();
    // SAFETY: TCGETS and TIOCGLCKTRMIOS write one kernel struct termios into `t`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, &mut t as *mut KernelTermios) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(t) }
}

/// TCGETS: the terminal's settings.
pub fn termios(fd: BorrowedFd<'_>) -> std::io::Result<KernelTermios> {
    get_termios(fd, libc::TCGETS)
}

/// TIOCGLCKTRMIOS: which settings are locked.
pub fn locked_termios(fd: BorrowedFd<'_>) -> std::io::Result<KernelTermios> {
    get_termios(fd, libc::TIOCGLCKTRMIOS)
}
