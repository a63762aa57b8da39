//! inotify00: watches 2 and 3 (watch 1 removed) on directories: after
//! restore, a file created in the re-watched directory is reported by
//! watch 3, with its name.

use std::ffi::CString;

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let base = zdtm::dirname();
    let (d1, d2) = (base.join("d1"), base.join("d2"));
    std::fs::create_dir_all(&d1).unwrap_or_else(|e| zdtm::fail(&format!("mkdir: {e}")));
    std::fs::create_dir_all(&d2).unwrap_or_else(|e| zdtm::fail(&format!("mkdir: {e}")));
    let c1 = CString::new(d1.to_str().unwrap_or("")).unwrap_or_default();
    let c2 = CString::new(d2.to_str().unwrap_or("")).unwrap_or_default();
    // SAFETY: plain syscalls with NUL-terminated paths.
    let (fd, w) = unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK);
        let w1 = libc::inotify_add_watch(fd, c1.as_ptr(), libc::IN_CREATE);
        let w2 = libc::inotify_add_watch(fd, c2.as_ptr(), libc::IN_CREATE);
        libc::inotify_rm_watch(fd, w1);
        let w3 = libc::inotify_add_watch(fd, c1.as_ptr(), libc::IN_CREATE);
        let mut junk = [0u8; 4096];
        libc::read(fd, junk.as_mut_ptr().cast(), junk.len());
        (fd, (w1, w2, w3))
    };
    if w != (1, 2, 3) {
        zdtm::fail(&format!("watch numbers {w:?}"));
    }
    zdtm::test_daemon();
    zdtm::test_waitsig();
    let target = if zdtm::sabotaged() { &d2 } else { &d1 };
    std::fs::write(target.join("new"), b"").unwrap_or_else(|e| zdtm::fail(&format!("create: {e}")));
    let mut buf = [0u8; 4096];
    // SAFETY: reading events into our buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    let mut c = Checks::new();
    c.check(n >= 16, || format!("read {n} bytes of events"));
    if n >= 16 {
        let wd = i32::from_ne_bytes(buf[..4].try_into().unwrap_or([0; 4]));
        let mask = u32::from_ne_bytes(buf[4..8].try_into().unwrap_or([0; 4]));
        let len = u32::from_ne_bytes(buf[12..16].try_into().unwrap_or([0; 4])) as usize;
        let name: Vec<u8> = buf[16..16 + len.min(n as usize - 16)].iter().copied().take_while(|b| *b != 0).collect();
        c.eq("event", (wd, mask, name), (3, libc::IN_CREATE, b"new".to_vec()));
    }
    c.finish()
}
