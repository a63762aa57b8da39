//! Probe experiments: userfaultfd handshake and write-protect registration.

#[allow(unused_imports)]
use super::*;

pub const UFFD_API: u64 = 0xAA;
pub const UFFD_FEATURE_PAGEFAULT_FLAG_WP: u64 = 1 << 0;
pub const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
pub const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
pub const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
pub const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
pub const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;

pub(crate) const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
pub(crate) const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;

#[repr(C)]
pub(crate) struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
pub(crate) struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

/// What `UFFDIO_API` answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UffdApi {
    pub features: u64,
    pub ioctls: u64,
}

/// `userfaultfd(flags)`.
pub fn userfaultfd(flags: libc::c_int) -> Res<OwnedFd> {
    // SAFETY: plain syscall with an integer argument.
    own_fd(unsafe { libc::syscall(libc::SYS_userfaultfd, flags) })
}

/// `UFFDIO_API` handshake asking for `features`; returns what the kernel offers.
pub fn uffdio_api(fd: BorrowedFd<'_>, features: u64) -> Res<UffdApi> {
    let mut arg = UffdioApi { api: UFFD_API, features, ioctls: 0 };
    // SAFETY: `arg` is a live, correctly laid out uffdio_api.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_API as _, &mut arg as *mut UffdioApi) })?;
    if arg.api != UFFD_API {
        return Err(Errno::EPROTO);
    }
    Ok(UffdApi { features: arg.features, ioctls: arg.ioctls })
}

/// Register `map` for write-protect tracking. Only use with
/// `UFFD_FEATURE_WP_ASYNC`, or writes to the range block until resolved.
pub fn uffdio_register_wp(fd: BorrowedFd<'_>, map: &AnonMap) -> Res<u64> {
    let mut arg =
        UffdioRegister { start: map.addr() as u64, len: map.len() as u64, mode: UFFDIO_REGISTER_MODE_WP, ioctls: 0 };
    // SAFETY: `arg` is a live uffdio_register naming our own mapping.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_REGISTER as _, &mut arg as *mut UffdioRegister) })?;
    Ok(arg.ioctls)
}
