//! POSIX timers of our own process (a restore creates the task's timers
//! before the task runs): creation with a chosen id, arming, and signals
//! blocked meanwhile so an early expiry waits for the task's handlers.

/// prctl(PR_TIMER_CREATE_RESTORE_IDS, ON/OFF): timer_create takes the id
/// it finds in its out-parameter instead of choosing one (Linux 6.13+).
pub fn restore_ids(on: bool) -> std::io::Result<()> {
    const PR_TIMER_CREATE_RESTORE_IDS: libc::c_int = 77;
    // SAFETY: integer-only arguments.
    let r = unsafe { libc::prctl(PR_TIMER_CREATE_RESTORE_IDS, u64::from(on) as libc::c_ulong, 0u64, 0u64, 0u64) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// The kernel's struct sigevent (64 bytes).
#[repr(C)]
struct SigEvent {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    _pad: [i32; 11],
}

/// timer_create(clock, {notify, signo, value, tid}) asking for id `id`
/// (with restore ids on); returns the id the kernel gave.
pub fn create(clock: i32, notify: i32, signo: i32, value: u64, tid: i32, id: i32) -> std::io::Result<i32> {
    let mut ev = SigEvent { value, signo, notify, tid, _pad: [0; 11] };
    let mut out: i32 = id;
    // SAFETY: the kernel reads one sigevent and writes one timer id, both
    // live locals of the layouts it expects.
    let r = unsafe { libc::syscall(libc::SYS_timer_create, clock, &mut ev as *mut SigEvent, &mut out as *mut i32) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(out) }
}

/// timer_settime(id, 0, {interval, value}) with relative time.
pub fn arm(id: i32, value: (u64, u64), interval: (u64, u64)) -> std::io::Result<()> {
    let ts = |(s, n): (u64, u64)| libc::timespec { tv_sec: s as libc::time_t, tv_nsec: n as libc::c_long };
    let its = libc::itimerspec { it_interval: ts(interval), it_value: ts(value) };
    // SAFETY: reads one itimerspec; no old value asked for.
    let r = unsafe { libc::syscall(libc::SYS_timer_settime, id, 0, &its as *const libc::itimerspec, std::ptr::null_mut::<u8>()) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Block every signal in this (single-threaded, restoring) process.
pub fn block_all_signals() -> std::io::Result<()> {
    let all = nix::sys::signal::SigSet::all();
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&all), None).map_err(std::io::Error::from)
}
