//! What the lock tests (file_locks00-02, lease00-01) share: opening their
//! files, asking who holds what (flock from another description,
//! F_GETLK/F_OFD_GETLK), leases, and the "lock:" lines of fdinfo.

use std::path::{Path, PathBuf};

/// A file of the test's own (under --dirname), 100 bytes, opened with `flags`.
pub fn create(name: &str, flags: libc::c_int) -> (PathBuf, libc::c_int) {
    let dir = crate::dirname();
    if let Err(e) = std::fs::create_dir_all(dir) {
        crate::fail(&format!("mkdir {}: {e}", dir.display()));
    }
    let p = dir.join(name);
    if let Err(e) = std::fs::write(&p, [b'x'; 100]) {
        crate::fail(&format!("write {}: {e}", p.display()));
    }
    let fd = open(&p, flags);
    (p, fd)
}

/// open(2) or fail naming the path.
pub fn open(p: &Path, flags: libc::c_int) -> libc::c_int {
    let c = crate::cpath(p);
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        crate::fail(&format!("open {} ({flags:#o}): {}", p.display(), crate::last_err()));
    }
    fd
}

/// open(2): the fd or the errno.
pub fn try_open(p: &Path, flags: libc::c_int) -> Result<libc::c_int, i32> {
    let c = crate::cpath(p);
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 { Err(crate::last_err().raw_os_error().unwrap_or(0)) } else { Ok(fd) }
}

pub fn close(fd: libc::c_int) {
    // SAFETY: closing an fd of ours.
    unsafe { libc::close(fd) };
}

/// flock(fd, op): 0 or the errno.
pub fn flock(fd: libc::c_int, op: libc::c_int) -> i32 {
    // SAFETY: flock takes integers.
    if unsafe { libc::flock(fd, op) } == 0 { 0 } else { crate::last_err().raw_os_error().unwrap_or(-1) }
}

/// Whether a new description of `p` gets `op` (LOCK_SH/LOCK_EX) without
/// waiting: a flock held through another description says no.
pub fn flock_free(p: &Path, op: libc::c_int) -> bool {
    let fd = open(p, libc::O_RDONLY);
    let r = flock(fd, op | libc::LOCK_NB);
    close(fd);
    match r {
        0 => true,
        libc::EWOULDBLOCK => false,
        e => crate::fail(&format!("flock {}: errno {e}", p.display())),
    }
}

/// Set a record lock (`cmd` F_SETLK or F_OFD_SETLK) or fail.
pub fn setlk(fd: libc::c_int, cmd: libc::c_int, ty: libc::c_int, start: i64, len: i64) {
    let mut lk = libc::flock { l_type: ty as i16, l_whence: libc::SEEK_SET as i16, l_start: start, l_len: len, l_pid: 0 };
    // SAFETY: a record-lock command reading our struct flock.
    if unsafe { libc::fcntl(fd, cmd, &mut lk) } != 0 {
        crate::fail(&format!("fcntl({cmd}) type {ty} {start}+{len} on fd {fd}: {}", crate::last_err()));
    }
}

/// F_GETLK/F_OFD_GETLK for a lock of `ty` on start+len: the first lock in
/// the way as (type, start, len, pid), or F_UNLCK alone.
pub fn getlk(fd: libc::c_int, cmd: libc::c_int, ty: libc::c_int, start: i64, len: i64) -> (i32, i64, i64, i32) {
    let mut lk = libc::flock { l_type: ty as i16, l_whence: libc::SEEK_SET as i16, l_start: start, l_len: len, l_pid: 0 };
    // SAFETY: a record-lock query writing our struct flock.
    if unsafe { libc::fcntl(fd, cmd, &mut lk) } != 0 {
        crate::fail(&format!("fcntl({cmd}) query on fd {fd}: {}", crate::last_err()));
    }
    if lk.l_type as i32 == libc::F_UNLCK { (libc::F_UNLCK, 0, 0, 0) } else { (lk.l_type as i32, lk.l_start, lk.l_len, lk.l_pid) }
}

/// F_SETLEASE or fail.
pub fn set_lease(fd: libc::c_int, ty: libc::c_int) {
    // SAFETY: F_SETLEASE takes an integer.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, ty) } != 0 {
        crate::fail(&format!("F_SETLEASE {ty} on fd {fd}: {}", crate::last_err()));
    }
}

/// F_GETLEASE (the target type of a breaking lease).
pub fn lease(fd: libc::c_int) -> i32 {
    // SAFETY: F_GETLEASE takes no argument.
    unsafe { libc::fcntl(fd, libc::F_GETLEASE) }
}

/// The "lock:" lines of our fd's fdinfo, without their numbers.
pub fn fdinfo_locks(fd: libc::c_int) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("lock:"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Run `f` in a child process (a helper that is no part of the test's
/// tree at dump time): the text it returns, "" for none.
pub fn in_helper(f: impl FnOnce() -> String) -> String {
    let mut p = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        crate::fail("pipe");
    }
    // SAFETY: the child runs `f` and exits without returning.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let out = f();
        // SAFETY: writing our text to the pipe, then leaving at once.
        unsafe {
            libc::write(p[1], out.as_ptr().cast(), out.len());
            libc::_exit(0);
        }
    }
    close(p[1]);
    let mut out = Vec::new();
    let mut b = [0u8; 512];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(p[0], b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&b[..n as usize]);
    }
    close(p[0]);
    if !crate::exited_ok(pid) {
        crate::fail("the helper process died");
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A child that holds what `setup` gives it until killed: it says ready
/// over a pipe once `setup` is done; this waits for that.
pub fn child(setup: impl FnOnce()) -> libc::pid_t {
    let mut ready = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        crate::fail("pipe");
    }
    // SAFETY: the child sets up, says ready and sleeps until killed.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        setup();
        crate::say_ready(ready);
        loop {
            // SAFETY: pause takes no arguments.
            unsafe { libc::pause() };
        }
    }
    close(ready[1]);
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into our buffer.
    if unsafe { libc::read(ready[0], b.as_mut_ptr().cast(), 1) } != 1 {
        crate::fail("the child died before it was ready");
    }
    crate::wait_ready_closed(ready[0]);
    pid
}

/// Kill and reap a child of ours.
pub fn reap(pid: libc::pid_t) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}
