//! POSIX timers of our own process: whether timer_create can take a chosen
//! id (the restorer creates the task's timers with their ids).

/// prctl(PR_TIMER_CREATE_RESTORE_IDS, ON/OFF): timer_create takes the id
/// it finds in its out-parameter instead of choosing one (Linux 6.13+).
pub fn restore_ids(on: bool) -> std::io::Result<()> {
    const PR_TIMER_CREATE_RESTORE_IDS: libc::c_int = 77;
    // SAFETY: integer-only arguments.
    let r = unsafe { libc::prctl(PR_TIMER_CREATE_RESTORE_IDS, u64::from(on) as libc::c_ulong, 0u64, 0u64, 0u64) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}
