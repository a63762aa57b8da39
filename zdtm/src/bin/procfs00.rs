//! procfs00: fds open on /proc files of tasks in the tree: our own status
//! (at an offset), a child's comm, the child's /proc directory, and a
//! sysctl file. Restored pids are the dumped ones, so each fd is again the
//! file of the same task: its link text, offset and flags come back, and
//! reading through it gives the live task's data (the child's name, our
//! pid), not a stale copy.

use std::path::Path;

use zdtm::Checks;

const KID_NAME: &str = "zdtm-proc-kid";

fn link(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

fn pos(fd: i32) -> i64 {
    // SAFETY: lseek query on our fd.
    unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }
}

fn pread_text(fd: i32) -> String {
    String::from_utf8_lossy(&zdtm::pread(fd, 0, 4096)).into_owned()
}

fn main() {
    zdtm::test_init();
    let (kid, req, rep) = zdtm::fork_server(|req, rep| {
        let name = std::ffi::CString::new(KID_NAME).unwrap();
        // SAFETY: PR_SET_NAME with a valid C string.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        loop {
            let b = zdtm::read_some(req, 1);
            if b.is_empty() {
                return;
            }
            // SAFETY: writing our reply line.
            unsafe { libc::write(rep, b"up\n".as_ptr().cast(), 3) };
        }
    });
    if zdtm::ask_line(req, rep) != "up" {
        zdtm::fail("the child did not answer");
    }
    // SAFETY: plain query.
    let me = unsafe { libc::getpid() };
    let status = zdtm::open_or_fail(Path::new("/proc/self/status"), libc::O_RDONLY);
    // SAFETY: lseek on our fd.
    unsafe { libc::lseek(status, 7, libc::SEEK_SET) };
    let comm = zdtm::open_or_fail(Path::new(&format!("/proc/{kid}/comm")), libc::O_RDONLY);
    let dir = zdtm::open_or_fail(Path::new(&format!("/proc/{kid}")), libc::O_RDONLY | libc::O_DIRECTORY);
    let ostype = zdtm::open_or_fail(Path::new("/proc/sys/kernel/ostype"), libc::O_RDONLY);
    let fds = [status, comm, dir, ostype];
    let links: Vec<String> = fds.iter().map(|&fd| link(fd)).collect();
    // SAFETY: fcntl queries on our fds.
    let flags: Vec<i32> = fds.iter().map(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFL) }).collect();

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        let other = zdtm::open_or_fail(Path::new("/proc/self/stat"), libc::O_RDONLY);
        // SAFETY: dup2 between our own fds.
        unsafe { libc::dup2(other, status) };
    }

    let mut ck = Checks::new();
    for (i, &fd) in fds.iter().enumerate() {
        ck.eq(&format!("fd {fd}: the file"), link(fd), links[i].clone());
        // SAFETY: fcntl query.
        ck.eq(&format!("fd {fd}: flags"), unsafe { libc::fcntl(fd, libc::F_GETFL) }, flags[i]);
    }
    ck.eq("offset in our status", pos(status), 7);
    let text = pread_text(status);
    ck.check(text.lines().any(|l| l == format!("Pid:\t{me}")), || format!("our status does not name us: {text}"));
    ck.eq("the child's comm", pread_text(comm).trim().to_string(), KID_NAME.to_string());
    let c = zdtm::cpath(Path::new("comm"));
    // SAFETY: openat relative to our directory fd with a valid C string.
    let via_dir = unsafe { libc::openat(dir, c.as_ptr(), libc::O_RDONLY) };
    ck.eq("the child's comm through its /proc dir", if via_dir < 0 { String::new() } else { pread_text(via_dir).trim().to_string() }, KID_NAME.to_string());
    ck.eq("ostype", pread_text(ostype).trim().to_string(), "Linux".to_string());
    ck.eq("the child answers", zdtm::ask_line(req, rep), "up".to_string());
    // SAFETY: ending our child, then reaping it.
    unsafe {
        libc::close(req);
        libc::kill(kid, libc::SIGKILL);
        libc::waitpid(kid, std::ptr::null_mut(), 0);
    }
    ck.finish()
}
