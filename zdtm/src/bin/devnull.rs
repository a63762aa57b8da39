//! devnull: fds on /dev/null and /dev/zero (at chosen numbers, with
//! flags) survive and still behave as those devices.

use zdtm::Checks;

const NULL_FD: libc::c_int = 42;
const ZERO_FD: libc::c_int = 43;

fn open_at(path: &str, flags: libc::c_int, at: libc::c_int) {
    let p = std::ffi::CString::new(path).unwrap();
    // SAFETY: plain syscalls with a valid C string.
    unsafe {
        let fd = libc::open(p.as_ptr(), flags);
        if fd < 0 || libc::dup2(fd, at) != at {
            zdtm::fail(&format!("open {path} at {at}: {}", zdtm::last_err()));
        }
        libc::close(fd);
    }
}

fn rdev(fd: libc::c_int) -> u64 {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live stat the call writes; the fd is ours.
    unsafe { libc::fstat(fd, &mut st) };
    st.st_rdev
}

fn main() {
    zdtm::test_init();
    open_at("/dev/null", libc::O_RDWR | libc::O_APPEND, NULL_FD);
    open_at("/dev/zero", libc::O_RDONLY | libc::O_CLOEXEC, ZERO_FD);
    // SAFETY: fcntl F_GETFL/F_GETFD on our fds take only integers and
    // touch no memory of ours.
    let fl0 = unsafe {
        [
            libc::fcntl(NULL_FD, libc::F_GETFL),
            libc::fcntl(ZERO_FD, libc::F_GETFL),
            libc::fcntl(ZERO_FD, libc::F_GETFD),
        ]
    };

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        open_at("/dev/zero", libc::O_RDWR, NULL_FD);
    }
    let mut c = Checks::new();
    c.eq(
        "fd 42 link",
        std::fs::read_link(format!("/proc/self/fd/{NULL_FD}")).ok(),
        Some("/dev/null".into()),
    );
    c.eq(
        "fd 43 link",
        std::fs::read_link(format!("/proc/self/fd/{ZERO_FD}")).ok(),
        Some("/dev/zero".into()),
    );
    c.eq("rdev of /dev/null", rdev(NULL_FD), libc::makedev(1, 3));
    c.eq("rdev of /dev/zero", rdev(ZERO_FD), libc::makedev(1, 5));
    // SAFETY: plain syscalls on our fds and buffers.
    unsafe {
        c.eq(
            "flags",
            [
                libc::fcntl(NULL_FD, libc::F_GETFL),
                libc::fcntl(ZERO_FD, libc::F_GETFL),
                libc::fcntl(ZERO_FD, libc::F_GETFD),
            ],
            fl0,
        );
        c.eq(
            "write to /dev/null",
            libc::write(NULL_FD, b"abc".as_ptr().cast(), 3),
            3,
        );
        let mut b = [1u8; 8];
        c.eq(
            "read from /dev/null",
            libc::read(NULL_FD, b.as_mut_ptr().cast(), 8),
            0,
        );
        c.eq(
            "read from /dev/zero",
            libc::read(ZERO_FD, b.as_mut_ptr().cast(), 8),
            8,
        );
        c.eq("/dev/zero bytes", b, [0u8; 8]);
    }
    c.finish()
}
