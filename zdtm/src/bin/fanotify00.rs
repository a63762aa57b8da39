//! fanotify00: a fanotify group (non-blocking, unlimited queue) with marks
//! of each kind CRIU records: an inode mark on a file F (FAN_MODIFY |
//! FAN_CLOSE_WRITE) with an ignored mask (FAN_OPEN, surviving modify), an
//! inode mark on its directory D (FAN_OPEN of its children), and a mount
//! mark with only an ignored mask (FAN_ACCESS). After restore the group's marks are the
//! same (fdinfo's fanotify lines), its flags too, and it reports events:
//! creating D/new gives FAN_OPEN for it, writing F gives FAN_MODIFY and
//! FAN_CLOSE_WRITE but no FAN_OPEN (ignored).

use std::ffi::CString;
use zdtm::Checks;

const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_REMOVE: u32 = 0x2;
const FAN_MARK_MOUNT: u32 = 0x10;
const FAN_MARK_IGNORED_MASK: u32 = 0x20;
const FAN_MARK_IGNORED_SURV_MODIFY: u32 = 0x40;
const FAN_ACCESS: u64 = 0x1;
const FAN_MODIFY: u64 = 0x2;
const FAN_CLOSE_WRITE: u64 = 0x8;
const FAN_OPEN: u64 = 0x20;
const FAN_EVENT_ON_CHILD: u64 = 0x0800_0000;

fn mark(fd: i32, flags: u32, mask: u64, path: &std::path::Path) {
    let c = zdtm::cpath(path);
    // SAFETY: a valid C string, integer arguments.
    if unsafe { libc::fanotify_mark(fd, flags, mask, libc::AT_FDCWD, c.as_ptr()) } != 0 {
        zdtm::fail(&format!("fanotify_mark({flags:#x}, {mask:#x}, {}): {}", path.display(), zdtm::last_err()));
    }
}

fn fanotify_lines(fd: i32) -> Vec<String> {
    let t = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    let mut v: Vec<String> = t.lines().filter(|l| l.starts_with("fanotify")).map(str::to_string).collect();
    v.sort();
    v
}

/// Every event queued: (mask, path of the event's file).
fn read_events(fd: i32) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 24 <= n as usize {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            let mask = u64::from_ne_bytes(buf[off + 8..off + 16].try_into().unwrap());
            let efd = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
            let path = std::fs::read_link(format!("/proc/self/fd/{efd}")).map(|p| p.display().to_string()).unwrap_or_default();
            if efd >= 0 {
                // SAFETY: closing the event's fd, ours now.
                unsafe { libc::close(efd) };
            }
            out.push((mask, path));
            if len == 0 {
                break;
            }
            off += len;
        }
    }
    out
}

fn main() {
    zdtm::test_init();
    let dir = zdtm::filename().to_path_buf();
    if let Err(e) = std::fs::create_dir(&dir) {
        zdtm::fail(&format!("mkdir {}: {e}", dir.display()));
    }
    let file = dir.join("f");
    if let Err(e) = std::fs::write(&file, b"before") {
        zdtm::fail(&format!("writing {}: {e}", file.display()));
    }
    // SAFETY: integer arguments.
    let fd = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_NOTIF | libc::FAN_NONBLOCK | libc::FAN_UNLIMITED_QUEUE,
            (libc::O_RDONLY | libc::O_LARGEFILE) as u32,
        )
    };
    if fd < 0 {
        let e = zdtm::last_err();
        match e.raw_os_error() {
            Some(libc::ENOSYS) => zdtm::skip("no fanotify in this kernel"),
            Some(libc::EPERM) => zdtm::skip("fanotify needs CAP_SYS_ADMIN"),
            _ => zdtm::fail(&format!("fanotify_init: {e}")),
        }
    }
    mark(fd, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, &file);
    mark(fd, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_OPEN, &file);
    mark(fd, FAN_MARK_ADD, FAN_OPEN | FAN_EVENT_ON_CHILD, &dir);
    // Ignored only (so no event from elsewhere on the mount), surviving
    // modifications (which would clear it).
    mark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_ACCESS, &dir);
    let lines = fanotify_lines(fd);
    // SAFETY: fcntl query.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        mark(fd, FAN_MARK_REMOVE, FAN_MODIFY, &file);
    }
    let mut ck = Checks::new();
    ck.eq("the group's marks (fdinfo)", fanotify_lines(fd), lines);
    // SAFETY: fcntl query.
    ck.eq("file status flags", unsafe { libc::fcntl(fd, libc::F_GETFL) }, flags);
    let left = read_events(fd);
    ck.check(left.is_empty(), || format!("events queued before any was made: {left:?}"));

    let new = dir.join("new");
    let newc = CString::new(new.to_str().unwrap_or_default()).unwrap_or_default();
    // SAFETY: a valid C string.
    let nfd = unsafe { libc::open(newc.as_ptr(), libc::O_CREAT | libc::O_RDONLY, 0o600) };
    // SAFETY: closing our fd.
    unsafe { libc::close(nfd) };
    if let Err(e) = std::fs::write(&file, b"after") {
        ck.check(false, || format!("writing {}: {e}", file.display()));
    }
    let evs = read_events(fd);
    let of = |p: &std::path::Path| evs.iter().filter(|(_, q)| q == p.to_str().unwrap_or_default()).fold(0, |m, (x, _)| m | x);
    ck.eq("events on D/new", of(&new), FAN_OPEN);
    ck.eq("events on F", of(&file), FAN_MODIFY | FAN_CLOSE_WRITE);
    ck.finish()
}
