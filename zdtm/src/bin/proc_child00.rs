//! proc_child00: fds open under /proc/CHILD of a child in the tree (its
//! status file at an offset, its /proc directory) and under our own
//! /proc/PID (stat). After the restore the child exists again with its
//! pid, and each fd reads that process: status names the child's pid,
//! the directory fd resolves the child's comm, our stat names us.

use zdtm::Checks;

fn open(p: &str, flags: i32) -> i32 {
    let c = zdtm::cpath(std::path::Path::new(p));
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        zdtm::fail(&format!("open {p}: {}", zdtm::last_err()));
    }
    fd
}

fn pread(fd: i32, off: i64) -> String {
    let mut b = vec![0u8; 4096];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::pread(fd, b.as_mut_ptr().cast(), b.len(), off) };
    b.truncate(n.max(0) as usize);
    String::from_utf8_lossy(&b).into_owned()
}

fn main() {
    zdtm::test_init();
    let mut p = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    // SAFETY: the child only blocks on the pipe and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: plain syscalls in the child.
        unsafe {
            libc::close(p[1]);
            libc::prctl(libc::PR_SET_NAME, c"pc00-child".as_ptr());
            let mut b = [0u8; 1];
            while libc::read(p[0], b.as_mut_ptr().cast(), 1) < 0 {}
            libc::_exit(7);
        }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(p[0]) };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let me = std::process::id() as i32;
    let status = open(&format!("/proc/{child}/status"), libc::O_RDONLY);
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    unsafe { libc::lseek(status, 3, libc::SEEK_SET) };
    let dir = open(&format!("/proc/{child}"), libc::O_RDONLY);
    let stat = open(&format!("/proc/{me}/stat"), libc::O_RDONLY);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: the status fd now reads our own status.
        unsafe { libc::dup2(open("/proc/self/status", libc::O_RDONLY), status) };
    }

    let mut c = Checks::new();
    let st = pread(status, 0);
    c.check(st.lines().any(|l| l == format!("Pid:\t{child}")), || format!("/proc/{child}/status fd reads another process: {:?}", st.lines().take(6).collect::<Vec<_>>()));
    c.check(st.lines().any(|l| l == "Name:\tpc00-child"), || format!("status fd: no child name in {:?}", st.lines().next()));
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    c.eq("status offset", unsafe { libc::lseek(status, 0, libc::SEEK_CUR) }, 3);
    // SAFETY: openat relative to our directory fd.
    let comm = unsafe { libc::openat(dir, c"comm".as_ptr(), libc::O_RDONLY) };
    c.eq("child's comm through the dir fd", if comm >= 0 { pread(comm, 0) } else { String::new() }, "pc00-child\n".to_string());
    c.check(pread(stat, 0).starts_with(&format!("{me} (")), || "our stat fd reads another process".into());
    // SAFETY: let the child go and reap it.
    let code = unsafe {
        libc::close(p[1]);
        let mut ws = 0;
        libc::waitpid(child, &mut ws, 0);
        libc::WEXITSTATUS(ws)
    };
    c.eq("child's exit", code, 7);
    c.finish()
}
