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

/// TCSETS / TIOCSLCKTRMIOS with a kernel termios.
fn set_termios_req(fd: BorrowedFd<'_>, req: libc::c_ulong, t: &KernelTermios) -> std::io::Result<()> {
    // SAFETY: TCSETS and TIOCSLCKTRMIOS read one kernel struct termios from `t`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, t as *const KernelTermios) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// TCSETS: set the terminal's settings now.
pub fn set_termios(fd: BorrowedFd<'_>, t: &KernelTermios) -> std::io::Result<()> {
    set_termios_req(fd, libc::TCSETS, t)
}

/// TIOCSLCKTRMIOS: set which settings are locked (CAP_SYS_ADMIN).
pub fn set_locked_termios(fd: BorrowedFd<'_>, t: &KernelTermios) -> std::io::Result<()> {
    set_termios_req(fd, libc::TIOCSLCKTRMIOS, t)
}

/// TIOCSWINSZ.
pub fn set_winsize(fd: BorrowedFd<'_>, w: &Winsize) -> std::io::Result<()> {
    // SAFETY: TIOCSWINSZ reads one struct winsize from `w`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, w as *const Winsize) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// An ioctl that reads one int from the kernel (TIOCGPTN, TIOCGPTLCK, TIOCGPKT, TIOCGEXCL, TIOCGSID, FIONREAD...).
fn get_int(fd: BorrowedFd<'_>, req: libc::c_ulong) -> std::io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    // SAFETY: these requests write one int into `v`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, &mut v as *mut libc::c_int) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(v) }
}

/// An ioctl that passes one int to the kernel by pointer (TIOCSPTLCK, TIOCPKT).
fn set_int(fd: BorrowedFd<'_>, req: libc::c_ulong, v: libc::c_int) -> std::io::Result<()> {
    // SAFETY: these requests read one int from `v`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, &v as *const libc::c_int) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// TIOCGPTN: a pty master's index (/dev/pts/N).
pub fn pty_index(master: BorrowedFd<'_>) -> std::io::Result<u32> {
    get_int(master, libc::TIOCGPTN).map(|n| n as u32)
}

/// TIOCGPTLCK: whether a pty master keeps its slave locked.
pub fn pty_locked(master: BorrowedFd<'_>) -> std::io::Result<bool> {
    get_int(master, libc::TIOCGPTLCK).map(|n| n != 0)
}

/// TIOCSPTLCK: lock or unlock a pty master's slave.
pub fn set_pty_locked(master: BorrowedFd<'_>, locked: bool) -> std::io::Result<()> {
    set_int(master, libc::TIOCSPTLCK, libc::c_int::from(locked))
}

/// TIOCGPKT: whether a pty master is in packet mode.
pub fn packet_mode(master: BorrowedFd<'_>) -> std::io::Result<bool> {
    get_int(master, libc::TIOCGPKT).map(|n| n != 0)
}

/// TIOCPKT: packet mode on or off.
pub fn set_packet_mode(master: BorrowedFd<'_>, on: bool) -> std::io::Result<()> {
    set_int(master, libc::TIOCPKT, libc::c_int::from(on))
}

/// TIOCGEXCL: whether the terminal is in exclusive mode.
pub fn exclusive(fd: BorrowedFd<'_>) -> std::io::Result<bool> {
    get_int(fd, libc::TIOCGEXCL).map(|n| n != 0)
}

/// TIOCEXCL: exclusive mode on.
pub fn set_exclusive(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: TIOCEXCL takes no argument.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCEXCL) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// TIOCGSID: the session the terminal controls (on a pty master: its slave's, for any caller).
pub fn session(fd: BorrowedFd<'_>) -> std::io::Result<i32> {
    get_int(fd, libc::TIOCGSID)
}

/// FIONREAD: bytes a read would return now.
pub fn readable(fd: BorrowedFd<'_>) -> std::io::Result<usize> {
    get_int(fd, libc::FIONREAD).map(|n| n.max(0) as usize)
}

/// TIOCGPGRP: the terminal's foreground process group.
pub fn foreground(fd: BorrowedFd<'_>) -> std::io::Result<i32> {
    get_int(fd, libc::TIOCGPGRP)
}

/// TIOCSPGRP: set the terminal's foreground process group.
pub fn set_foreground(fd: BorrowedFd<'_>, pgrp: i32) -> std::io::Result<()> {
    set_int(fd, libc::TIOCSPGRP, pgrp)
}

/// TIOCSCTTY: make the terminal our session's controlling terminal
/// (taking it from another session if need be: CAP_SYS_ADMIN).
pub fn set_ctty(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int by value.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 1 as libc::c_int) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// TIOCGSID on fd number `fd` of ours (EBADF if there is none).
pub fn session_of(fd: std::os::fd::RawFd) -> std::io::Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: TIOCGSID writes one int into `v`; a bad fd number is EBADF.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGSID, &mut v as *mut libc::c_int) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(v) }
}

/// TIOCSPGRP on fd number `fd` of ours (EBADF if there is none).
pub fn set_foreground_of(fd: std::os::fd::RawFd, pgrp: i32) -> std::io::Result<()> {
    // SAFETY: TIOCSPGRP reads one int; a bad fd number is EBADF.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSPGRP, &pgrp as *const libc::c_int) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// TIOCGPGRP on fd number `fd` of ours (EBADF if there is none).
pub fn foreground_of(fd: std::os::fd::RawFd) -> std::io::Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: TIOCGPGRP writes one int into `v`; a bad fd number is EBADF.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGPGRP, &mut v as *mut libc::c_int) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(v) }
}

/// TIOCGDEV: the device number of the terminal behind `fd` (for /dev/tty
/// and /dev/console, the one they stand for).
pub fn real_device(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    let mut v: libc::c_uint = 0;
    // SAFETY: TIOCGDEV writes one unsigned int (the old-style dev_t) into `v`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGDEV, &mut v as *mut libc::c_uint) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The kernel's new_encode_dev: minor's low byte, major, minor's high bits.
    let (major, minor) = ((v & 0xfff00) >> 8, (v & 0xff) | ((v >> 12) & 0xfff00));
    Ok(libc::makedev(major, minor))
}

/// poll() once, without waiting: whether `fd` reports POLLHUP (on a pty
/// master: its slave was opened and every opening of it closed).
pub fn hung_up_peer(fd: BorrowedFd<'_>) -> std::io::Result<bool> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd of ours, no timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(p.revents & libc::POLLHUP != 0) }
}

/// Ignore SIGHUP (a test that is its session's leader closes its
/// controlling terminal's master, which hangs the session up).
#[cfg(test)]
pub fn ignore_hangups() {
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
}
