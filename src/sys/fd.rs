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

/// Take ownership of a raw fd a syscall just returned to us.
pub fn owned(fd: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: callers pass an fd freshly returned by a successful syscall
    // (F_DUPFD, dup, ...) that nothing else owns.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// dup2(src, target): make fd number `target` refer to `src`'s description.
/// `target` is a number the caller manages by hand (a restored task's fd).
pub fn dup_to(src: std::os::fd::BorrowedFd<'_>, target: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 onto a number no Rust object owns (the restore installs
    // the task's fd table; its own fds were moved out of the way).
    let r = unsafe { libc::dup2(src.as_raw_fd(), target) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// F_SETFD on a raw fd number (close-on-exec of a restored fd).
pub fn set_fd_flags(fd: i32, flags: nix::fcntl::FdFlag) -> std::io::Result<()> {
    // SAFETY: F_SETFD only changes a flag of the fd number.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, flags.bits()) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Close every fd of this process except `keep` (a restore becoming the
/// task: whatever Rust objects held the closed fds are not used again).
pub fn close_all_but(keep: &[i32]) {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => return,
    };
    for fd in fds {
        if !keep.contains(&fd) {
            close_raw(fd);
        }
    }
}

/// Borrow an fd number we inherited from our caller (--inherit-fd), after
/// checking it is open.
pub fn borrow_inherited(fd: i32) -> std::io::Result<std::os::fd::BorrowedFd<'static>> {
    // SAFETY: F_GETFD only queries the fd number.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked above) and was handed to us by our
    // caller for the whole run; nothing in criu closes it while borrowed.
    Ok(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
}

/// eventfd(initval) with close-on-exec; a 64-bit count is set by writing
/// what does not fit the initial value.
pub fn eventfd(count: u64) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::Write;
    let init = u32::try_from(count).unwrap_or(0);
    // SAFETY: eventfd takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::eventfd(init, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = owned(fd);
    if u64::from(init) != count {
        let mut f = std::fs::File::from(fd.try_clone()?);
        f.write_all(&count.to_ne_bytes())?;
    }
    Ok(fd)
}

/// Who gets the I/O signals of the description behind `fd` (F_GETSIG,
/// F_GETOWN_EX, F_GETOWNER_UIDS): (signal, owner type, owner pid, owner
/// uid, owner euid); pid 0: no owner (the uids are then 0).
pub fn owner(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(u32, u32, i32, u32, u32)> {
    use std::os::fd::AsRawFd;
    let fd = fd.as_raw_fd();
    let mut ex = FOwnerEx { kind: 0, pid: 0 };
    let mut uids = [0u32; 2];
    // SAFETY: F_GETSIG takes no argument; F_GETOWN_EX writes one
    // f_owner_ex and F_GETOWNER_UIDS two u32s, into locals.
    unsafe {
        let sig = libc::fcntl(fd, F_GETSIG);
        if sig < 0 || libc::fcntl(fd, F_GETOWN_EX, &mut ex as *mut FOwnerEx) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if ex.pid != 0 && libc::fcntl(fd, F_GETOWNER_UIDS, uids.as_mut_ptr()) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((sig as u32, ex.kind as u32, ex.pid, uids[0], uids[1]))
    }
}

/// The kernel's struct f_owner_ex.
#[repr(C)]
struct FOwnerEx {
    kind: libc::c_int,
    pid: libc::c_int,
}

const F_GETSIG: libc::c_int = 11;
const F_GETOWN_EX: libc::c_int = 16;
const F_GETOWNER_UIDS: libc::c_int = 17;

/// F_GETFL of fd number `fd` (of this process).
pub fn get_fl(fd: i32) -> std::io::Result<i32> {
    // SAFETY: F_GETFL takes no argument; a bad fd is EBADF.
    let r = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// F_SETFL of fd number `fd` (of this process).
pub fn set_fl(fd: i32, flags: i32) -> std::io::Result<()> {
    // SAFETY: F_SETFL takes an integer; a bad fd is EBADF.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}
