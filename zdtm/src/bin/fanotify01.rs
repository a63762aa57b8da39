//! fanotify01: a fanotify group with an event queued in it (a write to its
//! marked file F). Queued events can't be carried (CRIU 4.2 drops them):
//! the dump must refuse the group by name and leave us running, the event
//! still there to read.

use zdtm::Checks;

const FAN_MARK_ADD: u32 = 0x1;
const FAN_MODIFY: u64 = 0x2;

/// The masks of every queued event.
fn read_masks(fd: i32) -> Vec<u64> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    let mut off = 0usize;
    while n > 0 && off + 24 <= n as usize {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        out.push(u64::from_ne_bytes(buf[off + 8..off + 16].try_into().unwrap()));
        let efd = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
        // SAFETY: closing the event's fd, ours now.
        unsafe { libc::close(efd) };
        if len == 0 {
            break;
        }
        off += len;
    }
    out
}

fn main() {
    zdtm::test_init();
    let file = zdtm::filename().to_path_buf();
    if let Err(e) = std::fs::write(&file, b"before") {
        zdtm::fail(&format!("writing {}: {e}", file.display()));
    }
    // SAFETY: integer arguments.
    let fd = unsafe { libc::fanotify_init(libc::FAN_CLASS_NOTIF | libc::FAN_NONBLOCK, libc::O_RDONLY as u32) };
    if fd < 0 {
        let e = zdtm::last_err();
        match e.raw_os_error() {
            Some(libc::ENOSYS) => zdtm::skip("no fanotify in this kernel"),
            Some(libc::EPERM) => zdtm::skip("fanotify needs CAP_SYS_ADMIN"),
            _ => zdtm::fail(&format!("fanotify_init: {e}")),
        }
    }
    let c = zdtm::cpath(&file);
    // SAFETY: a valid C string, integer arguments.
    if unsafe { libc::fanotify_mark(fd, FAN_MARK_ADD, FAN_MODIFY, libc::AT_FDCWD, c.as_ptr()) } != 0 {
        zdtm::fail(&format!("fanotify_mark: {}", zdtm::last_err()));
    }
    if let Err(e) = std::fs::write(&file, b"queued") {
        zdtm::fail(&format!("writing {}: {e}", file.display()));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        read_masks(fd);
    }
    let mut ck = Checks::new();
    ck.eq("the queued event", read_masks(fd), vec![FAN_MODIFY]);
    ck.finish()
}
