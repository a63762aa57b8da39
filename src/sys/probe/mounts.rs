//! Probe experiments: mounts (binfmt_misc in a user namespace, move_mount).

#[allow(unused_imports)]
use super::*;

/// `mount(2)`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Res<()> {
    let p = |s: Option<&CStr>| s.map(|s| s.as_ptr()).unwrap_or(ptr::null());
    // SAFETY: every pointer is NULL or a NUL-terminated string.
    check_int(unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast()) })?;
    Ok(())
}

/// `umount2(2)`.
pub fn umount2(target: &CStr, flags: libc::c_int) -> Res<()> {
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::umount2(target.as_ptr(), flags) })?;
    Ok(())
}

pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
pub const MOVE_MOUNT_SET_GROUP: libc::c_uint = 0x100;

/// `move_mount(AT_FDCWD, from, AT_FDCWD, to, flags)`.
pub fn move_mount(from: &CStr, to: &CStr, flags: libc::c_uint) -> Res<()> {
    // SAFETY: NUL-terminated paths relative to the cwd.
    check(unsafe {
        libc::syscall(libc::SYS_move_mount, libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), flags)
    })?;
    Ok(())
}

/// A detached mount of a fresh `fstype` superblock (fsopen, fsconfig
/// CREATE, fsmount).
pub fn mount_detached(fstype: &CStr) -> Res<OwnedFd> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    // SAFETY: NUL-terminated name, integer flags.
    let fs = own_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 0 as libc::c_uint) })?;
    // SAFETY: CREATE takes no key/value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            ptr::null::<libc::c_char>(),
            ptr::null::<libc::c_void>(),
            0 as libc::c_int,
        )
    })?;
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), 0 as libc::c_uint, 0 as libc::c_uint) })
}

/// In a forked child: unshare(CLONE_NEWNS | CLONE_NEWUSER), mount a fresh
/// binfmt_misc detached and compare its device with `host_dev`. Exit 0:
/// a different (sandboxed) instance; 2: same instance or no mount; 1: error.
pub fn binfmt_misc_userns_child(host_dev: u64) -> Res<WaitStatus> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    fork_run(move || {
        // SAFETY: (the whole child) raw syscalls on locals.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUSER) != 0 {
                return 1;
            }
            let fs = libc::syscall(libc::SYS_fsopen, c"binfmt_misc".as_ptr(), 0 as libc::c_uint);
            if fs < 0 {
                return 2;
            }
            if libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_CMD_CREATE,
                ptr::null::<libc::c_char>(),
                ptr::null::<libc::c_void>(),
                0 as libc::c_int,
            ) < 0
            {
                return 2;
            }
            let m = libc::syscall(libc::SYS_fsmount, fs, 0 as libc::c_uint, 0 as libc::c_uint);
            if m < 0 {
                return 2;
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(m as libc::c_int, &mut st) != 0 {
                return 1;
            }
            if st.st_dev != host_dev { 0 } else { 2 }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_the_kernel() {
        assert_eq!(size_of::<UffdioApi>(), 24);
        assert_eq!(size_of::<UffdioRegister>(), 32);
        assert_eq!(size_of::<CloneArgs>(), 88);
    }

    #[test]
    fn anon_map_touch_and_guard() {
        let mut m = AnonMap::rw(2).unwrap();
        m.touch(10, 7).unwrap();
        assert_eq!(m.read(10).unwrap(), 7);
        assert_eq!(m.touch(m.len(), 1), Err(Errno::EFAULT));
        if m.guard_page(1).is_ok() {
            assert_eq!(m.touch(page_size(), 1), Err(Errno::EFAULT));
        }
        let ro = AnonMap::new(1, libc::PROT_READ).unwrap();
        assert_eq!(ro.touch(0, 1), Err(Errno::EFAULT));
    }
}
