//! tun/tap file ioctls: the device a tun file is attached to (TUNGETIFF /
//! TUNSETIFF), its queue, the settings a dump reads (vnet header size,
//! send buffer, filter length) and a restore sets (index, owner, group,
//! persistence).

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::ret::{check_int, Res};

/// struct ifreq with the name and the flags (the rest unused here).
#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn ifreq(name: &str, flags: i32) -> Res<IfReqFlags> {
    let mut r = IfReqFlags { name: [0; libc::IFNAMSIZ], flags: flags as libc::c_short, _pad: [0; 22] };
    if name.len() >= libc::IFNAMSIZ {
        return Err(Errno::ENAMETOOLONG);
    }
    for (d, s) in r.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

/// TUNGETIFF: the attached device's name and flags (with IFF_NOFILTER and
/// IFF_DETACH_QUEUE of this file); EBADFD when the file is attached to none.
pub fn get_iff(fd: BorrowedFd<'_>) -> Res<(String, u32)> {
    let mut r = ifreq("", 0)?;
    // SAFETY: the kernel writes one struct ifreq (40 bytes: ours is as long) into `r`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETIFF as _, &mut r as *mut IfReqFlags) })?;
    let name: Vec<u8> = r.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Ok((String::from_utf8_lossy(&name).into_owned(), r.flags as u16 as u32))
}

/// TUNSETIFF: attach the file to device `name` (made when missing) with `flags`.
pub fn set_iff(fd: BorrowedFd<'_>, name: &str, flags: u32) -> Res<()> {
    let r = ifreq(name, flags as i32)?;
    // SAFETY: the kernel reads (and may write back) one struct ifreq of `r`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &r as *const IfReqFlags) }).map(drop)
}

/// TUNSETQUEUE with IFF_DETACH_QUEUE: this file's queue disabled.
pub fn detach_queue(fd: BorrowedFd<'_>) -> Res<()> {
    let r = ifreq("", libc::IFF_DETACH_QUEUE)?;
    // SAFETY: the kernel reads one struct ifreq from `r`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETQUEUE as _, &r as *const IfReqFlags) }).map(drop)
}

fn get_int(fd: BorrowedFd<'_>, req: libc::Ioctl) -> Res<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: the kernel writes one int into `v`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut v as *mut libc::c_int) })?;
    Ok(v)
}

fn set_int_ptr(fd: BorrowedFd<'_>, req: libc::Ioctl, v: i32) -> Res<()> {
    let v: libc::c_int = v;
    // SAFETY: the kernel reads one int from `v`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &v as *const libc::c_int) }).map(drop)
}

fn set_int_val(fd: BorrowedFd<'_>, req: libc::Ioctl, v: libc::c_ulong) -> Res<()> {
    // SAFETY: the argument is a value, no memory is passed.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, v) }).map(drop)
}

/// TUNGETVNETHDRSZ.
pub fn vnet_hdr_sz(fd: BorrowedFd<'_>) -> Res<i32> {
    get_int(fd, libc::TUNGETVNETHDRSZ)
}

/// TUNGETSNDBUF.
pub fn sndbuf(fd: BorrowedFd<'_>) -> Res<i32> {
    get_int(fd, libc::TUNGETSNDBUF)
}

/// TUNSETVNETHDRSZ.
pub fn set_vnet_hdr_sz(fd: BorrowedFd<'_>, v: i32) -> Res<()> {
    set_int_ptr(fd, libc::TUNSETVNETHDRSZ, v)
}

/// TUNSETSNDBUF.
pub fn set_sndbuf(fd: BorrowedFd<'_>, v: i32) -> Res<()> {
    set_int_ptr(fd, libc::TUNSETSNDBUF, v)
}

/// TUNSETIFINDEX: the index the next device made through this file gets.
pub fn set_ifindex(fd: BorrowedFd<'_>, idx: u32) -> Res<()> {
    set_int_ptr(fd, libc::TUNSETIFINDEX, idx as i32)
}

/// TUNSETOWNER (a uid).
pub fn set_owner(fd: BorrowedFd<'_>, uid: u32) -> Res<()> {
    set_int_val(fd, libc::TUNSETOWNER, uid as libc::c_ulong)
}

/// TUNSETGROUP (a gid).
pub fn set_group(fd: BorrowedFd<'_>, gid: u32) -> Res<()> {
    set_int_val(fd, libc::TUNSETGROUP, gid as libc::c_ulong)
}

/// TUNSETPERSIST.
pub fn set_persist(fd: BorrowedFd<'_>, on: bool) -> Res<()> {
    set_int_val(fd, libc::TUNSETPERSIST, on as libc::c_ulong)
}

/// TUNGETFILTER: the length of the tap's socket filter (0: none).
pub fn filter_len(fd: BorrowedFd<'_>) -> Res<u16> {
    // SAFETY: sock_fprog is plain data; all zeroes is a valid value.
    let mut f: libc::sock_fprog = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one struct sock_fprog into `f` (its filter pointer is not followed).
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETFILTER as _, &mut f as *mut libc::sock_fprog) })?;
    Ok(f.len)
}
