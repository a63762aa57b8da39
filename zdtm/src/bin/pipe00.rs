//! pipe00: a pipe with unread data, both ends open in this task: the data,
//! the pipe size and the fd flags survive, and the two ends still form one
//! pipe after.

use zdtm::Checks;

const DATA: usize = 5000;
const PIPE_SZ: libc::c_int = 128 * 1024;

fn main() {
    zdtm::test_init();
    let mut fds = [0; 2];
    // SAFETY: pipe writes two ints into `fds`, a live [i32; 2]; the fcntl
    // calls on the new fd take only integers.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            zdtm::fail("pipe");
        }
        if libc::fcntl(fds[0], libc::F_SETPIPE_SZ, PIPE_SZ) < 0 {
            zdtm::fail(&format!("F_SETPIPE_SZ: {}", zdtm::last_err()));
        }
        libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK);
    }
    let (r, w) = (fds[0], fds[1]);
    let mut data = vec![0u8; DATA];
    zdtm::datagen(&mut data, std::process::id() as u64);
    // SAFETY: writing our buffer.
    if unsafe { libc::write(w, data.as_ptr().cast(), DATA) } != DATA as isize {
        zdtm::fail("short write to the pipe");
    }
    // SAFETY: fcntl queries.
    let fl = unsafe { (libc::fcntl(r, libc::F_GETFL), libc::fcntl(w, libc::F_GETFL)) };

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let mut b = [0u8; 1];
        // SAFETY: reading into our buffer.
        unsafe { libc::read(r, b.as_mut_ptr().cast(), 1) };
    }
    let mut c = Checks::new();
    // SAFETY: fcntl/ioctl queries on our fds.
    unsafe {
        c.eq("F_GETPIPE_SZ", libc::fcntl(r, libc::F_GETPIPE_SZ), PIPE_SZ);
        c.eq(
            "flags",
            (libc::fcntl(r, libc::F_GETFL), libc::fcntl(w, libc::F_GETFL)),
            fl,
        );
        let mut n: libc::c_int = 0;
        libc::ioctl(r, libc::FIONREAD, &mut n);
        c.eq("FIONREAD", n, DATA as libc::c_int);
    }
    let mut got = vec![0u8; DATA + 100];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(r, got.as_mut_ptr().cast(), got.len()) };
    c.eq("bytes read", n, DATA as isize);
    c.check(
        n >= 0 && got[..n as usize] == data[..(n as usize).min(DATA)],
        || "pipe data differs".into(),
    );
    // Still one pipe: what goes in one end comes out of the other.
    let msg = b"after restore";
    // SAFETY: plain syscalls on our fds and buffers.
    unsafe {
        c.eq(
            "write after",
            libc::write(w, msg.as_ptr().cast(), msg.len()),
            msg.len() as isize,
        );
        let mut b = [0u8; 64];
        let n = libc::read(r, b.as_mut_ptr().cast(), b.len());
        c.check(n == msg.len() as isize && &b[..msg.len()] == msg, || {
            format!("round trip read {n} bytes")
        });
        // Empty now: non-blocking read says EAGAIN.
        let n = libc::read(r, b.as_mut_ptr().cast(), b.len());
        c.check(
            n == -1 && zdtm::last_err().raw_os_error() == Some(libc::EAGAIN),
            || format!("empty pipe read gave {n}"),
        );
    }
    c.finish()
}
