//! Memory helpers for the VMA tests (madvise00, mlock00, guard00,
//! filemap_mode00): fresh mappings, a mapping's VmFlags from
//! /proc/self/smaps, and checks run in a child forked for the purpose.

use std::io::Read;
use std::os::fd::FromRawFd;

use crate::{fail, last_err};

/// mmap or fail the test, naming `what`.
pub fn map(what: &str, len: usize, prot: libc::c_int, flags: libc::c_int, fd: libc::c_int, off: usize) -> *mut u8 {
    // SAFETY: a fresh mapping placed by the kernel.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off as libc::off_t) };
    if p == libc::MAP_FAILED {
        fail(&format!("mmap {what}: {}", last_err()));
    }
    p.cast()
}

/// The bytes of one of our readable mappings. The test programs pass only
/// addresses their own `map` returned (their whole process is the test), so
/// the pointer is not the caller's to vouch for at each use.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn bytes<'a>(p: *mut u8, len: usize) -> &'a mut [u8] {
    // SAFETY: callers pass a readable (and, to write, writable) mapping of ours.
    unsafe { std::slice::from_raw_parts_mut(p, len) }
}

/// madvise, returning the error.
pub fn madvise(p: *mut u8, len: usize, advice: libc::c_int) -> std::io::Result<()> {
    // SAFETY: advice on our own mapping.
    if unsafe { libc::madvise(p.cast(), len, advice) } != 0 {
        return Err(last_err());
    }
    Ok(())
}

/// The VmFlags of the mapping holding `addr` (empty when unmapped).
pub fn vmflags(addr: usize) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_else(|e| fail(&format!("read smaps: {e}")));
    let mut inside = false;
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            inside = (a..b).contains(&addr);
            continue;
        }
        if inside && let Some(f) = l.strip_prefix("VmFlags:") {
            return f.split_whitespace().map(str::to_string).collect();
        }
    }
    Vec::new()
}

/// Whether the mapping holding `addr` shows VmFlag `flag`.
pub fn has_vmflag(addr: *mut u8, flag: &str) -> bool {
    vmflags(addr as usize).iter().any(|f| f == flag)
}

/// Run `check` in a forked child; its error (if any) comes back as text.
/// The child writes its verdict to a pipe and leaves with _exit.
pub fn in_child(check: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail(&format!("pipe2: {}", last_err()));
    }
    // SAFETY: fork; the child only runs `check`, writes and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(&format!("fork: {}", last_err()));
    }
    if pid == 0 {
        let msg = match check() {
            Ok(()) => "ok".to_string(),
            Err(e) => e,
        };
        // SAFETY: writing our message to the pipe, then leaving.
        unsafe {
            libc::write(fds[1], msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    // SAFETY: the read end is ours alone from here on.
    let mut r = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut msg = String::new();
    let _ = r.read_to_string(&mut msg);
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    if !libc::WIFEXITED(st) || libc::WEXITSTATUS(st) != 0 {
        return Err(format!("the forked child died (status {st:#x})"));
    }
    if msg == "ok" { Ok(()) } else { Err(msg) }
}
