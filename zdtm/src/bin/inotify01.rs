//! inotify01: a watch on a file that was renamed, and on a directory that
//! was renamed, after the watches were added: the recorded paths name
//! nothing any more, so the restore finds the inodes again by their file
//! handles (CRIU's irmap problem, `--force-irmap`). After restore, writing
//! the renamed file and creating a file in the renamed directory are
//! reported by the same watches.

use std::ffi::CString;

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let base = zdtm::dirname();
    let (f, d) = (base.join("file"), base.join("dir"));
    std::fs::create_dir_all(&d).unwrap_or_else(|e| zdtm::fail(&format!("mkdir: {e}")));
    std::fs::write(&f, b"x").unwrap_or_else(|e| zdtm::fail(&format!("write: {e}")));
    let cf = CString::new(f.to_str().unwrap_or("")).unwrap_or_default();
    let cd = CString::new(d.to_str().unwrap_or("")).unwrap_or_default();
    // SAFETY: plain syscalls with NUL-terminated paths.
    let (fd, wf, wd) = unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK);
        (fd, libc::inotify_add_watch(fd, cf.as_ptr(), libc::IN_MODIFY), libc::inotify_add_watch(fd, cd.as_ptr(), libc::IN_CREATE))
    };
    if fd < 0 || wf < 0 || wd < 0 {
        zdtm::fail(&format!("inotify: {}", zdtm::last_err()));
    }
    let (f2, d2) = (base.join("file.moved"), base.join("dir.moved"));
    std::fs::rename(&f, &f2).unwrap_or_else(|e| zdtm::fail(&format!("rename: {e}")));
    std::fs::rename(&d, &d2).unwrap_or_else(|e| zdtm::fail(&format!("rename: {e}")));
    let mut junk = [0u8; 4096];
    // SAFETY: draining events into our buffer.
    unsafe { libc::read(fd, junk.as_mut_ptr().cast(), junk.len()) };

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if !zdtm::sabotaged() {
        std::fs::write(&f2, b"y").unwrap_or_else(|e| zdtm::fail(&format!("write: {e}")));
    }
    std::fs::write(d2.join("new"), b"").unwrap_or_else(|e| zdtm::fail(&format!("create: {e}")));
    let mut buf = [0u8; 4096];
    // SAFETY: reading events into our buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    let mut events = Vec::new();
    let mut at = 0usize;
    while n > 0 && at + 16 <= n as usize {
        let w = i32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or([0; 4]));
        let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap_or([0; 4]));
        let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap_or([0; 4])) as usize;
        let name: Vec<u8> = buf[at + 16..(at + 16 + len).min(n as usize)].iter().copied().take_while(|b| *b != 0).collect();
        events.push((w, mask, String::from_utf8_lossy(&name).into_owned()));
        at += 16 + len;
    }
    let mut c = Checks::new();
    c.check(events.contains(&(wf, libc::IN_MODIFY, String::new())), || format!("no IN_MODIFY from watch {wf} of the renamed file: {events:?}"));
    c.check(events.contains(&(wd, libc::IN_CREATE, "new".into())), || format!("no IN_CREATE from watch {wd} of the renamed dir: {events:?}"));
    c.finish()
}
