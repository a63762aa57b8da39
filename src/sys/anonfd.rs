//! signalfd and timerfd creation and setting.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

fn check(r: libc::c_int) -> std::io::Result<OwnedFd> {
    super::ret::own_fd(r as libc::c_long).map_err(std::io::Error::from)
}

/// signalfd(-1, mask, SFD_CLOEXEC).
pub fn signalfd(mask: u64) -> std::io::Result<OwnedFd> {
    // The kernel reads the mask as a 64-bit sigset of size 8.
    // SAFETY: the syscall reads 8 bytes from `mask`.
    let r = unsafe { libc::syscall(libc::SYS_signalfd4, -1, &mask as *const u64, 8usize, libc::SFD_CLOEXEC) };
    check(r as libc::c_int)
}

/// timerfd_create(clockid, TFD_CLOEXEC).
pub fn timerfd(clockid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: takes two integers.
    check(unsafe { libc::timerfd_create(clockid, libc::TFD_CLOEXEC) })
}

/// timerfd_settime(fd, flags, {interval, value}).
pub fn timerfd_settime(fd: BorrowedFd<'_>, flags: i32, value: (u64, u64), interval: (u64, u64)) -> std::io::Result<()> {
    let ts = |(s, n): (u64, u64)| libc::timespec { tv_sec: s as libc::time_t, tv_nsec: n as libc::c_long };
    let its = libc::itimerspec { it_interval: ts(interval), it_value: ts(value) };
    // SAFETY: reads one itimerspec; the old-value pointer is null.
    let r = unsafe { libc::timerfd_settime(fd.as_raw_fd(), flags, &its, std::ptr::null_mut()) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// clock_gettime(clock) as (sec, nsec).
pub fn clock_now(clock: i32) -> std::io::Result<(u64, u64)> {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes one timespec.
    let r = unsafe { libc::clock_gettime(clock, &mut t) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok((t.tv_sec as u64, t.tv_nsec as u64)) }
}

/// timerfd_gettime on `fd`, for its side effect: an expired periodic timer
/// is moved on to its next expiry and its missed expirations counted, as a
/// read would see them (fdinfo shows neither before that).
pub fn timerfd_refresh(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let mut cur = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: libc::timespec { tv_sec: 0, tv_nsec: 0 },
    };
    // SAFETY: writes one itimerspec.
    let r = unsafe { libc::timerfd_gettime(fd.as_raw_fd(), &mut cur) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// TFD_IOC_SET_TICKS: put back expirations not read yet.
pub fn timerfd_set_ticks(fd: BorrowedFd<'_>, ticks: u64) -> std::io::Result<()> {
    const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400; // _IOW('T', 0, u64)
    // SAFETY: the ioctl reads one u64 from `ticks`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TFD_IOC_SET_TICKS, &ticks as *const u64) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// epoll_create1(EPOLL_CLOEXEC).
pub fn epoll() -> std::io::Result<OwnedFd> {
    // SAFETY: takes one integer.
    check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

/// epoll_ctl(EPOLL_CTL_ADD) of target fd number `fd` (a restored task's).
pub fn epoll_add(epfd: i32, fd: i32, events: u32, data: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: reads one epoll_event from `ev`; the fd numbers are the task's.
    let r = unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}
