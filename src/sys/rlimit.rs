//! setrlimit by resource number (the images store limits in RLIMIT order).

/// setrlimit(resource, lim).
pub fn set(resource: u32, lim: &libc::rlimit) -> std::io::Result<()> {
    // SAFETY: setrlimit reads one struct rlimit from a live reference.
    let r = unsafe { libc::setrlimit(resource as _, lim) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}
