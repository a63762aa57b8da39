//! Extended attributes of a path (file capabilities: security.capability).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use super::ret::Res;

/// getxattr(path, name) (following symlinks): the value, None when the
/// file has no such attribute (ENODATA) or the filesystem none (ENOTSUP).
pub fn get(path: &std::path::Path, name: &std::ffi::CStr) -> Res<Option<Vec<u8>>> {
    let p = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut buf = vec![0u8; 256];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`; both
    // names are NUL-terminated.
    let n = unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return match Errno::last() {
            Errno::ENODATA | Errno::ENOTSUP => Ok(None),
            e => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}
