//! pipe01: pipe sizes (F_SETPIPE_SZ) survive, whatever the pipe holds:
//! an empty pipe enlarged to 1 MiB, and a pipe shrunk to one page holding
//! 100 bytes (its data too). Both ends of each stay open in this task.

use zdtm::Checks;

const BIG: libc::c_int = 1 << 20;
const SMALL: libc::c_int = 4096;
const DATA: usize = 100;

fn pipe(size: libc::c_int) -> [i32; 2] {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two ints into `p`, a live [i32; 2]; F_SETPIPE_SZ
    // on the new fd takes only integers.
    unsafe {
        if libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) != 0 {
            zdtm::fail("pipe");
        }
        if libc::fcntl(p[1], libc::F_SETPIPE_SZ, size) < 0 {
            zdtm::skip(&format!("F_SETPIPE_SZ({size}): {}", zdtm::last_err()));
        }
    }
    p
}

fn size(fd: i32) -> libc::c_int {
    // SAFETY: fcntl query.
    unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }
}

fn main() {
    zdtm::test_init();
    let big = pipe(BIG);
    let small = pipe(SMALL);
    let mut data = [0u8; DATA];
    zdtm::datagen(&mut data, 7);
    // SAFETY: writing our buffer.
    if unsafe { libc::write(small[1], data.as_ptr().cast(), DATA) } != DATA as isize {
        zdtm::fail("short write");
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: fcntl on our fd.
        unsafe { libc::fcntl(big[0], libc::F_SETPIPE_SZ, 65536) };
    }
    let mut c = Checks::new();
    c.eq("empty pipe: size (read end)", size(big[0]), BIG);
    c.eq("empty pipe: size (write end)", size(big[1]), BIG);
    c.eq("small pipe: size", size(small[0]), SMALL);
    let mut got = [0u8; DATA + 10];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(small[0], got.as_mut_ptr().cast(), got.len()) };
    c.check(n == DATA as isize && got[..DATA] == data, || format!("small pipe: read {n} bytes, want its {DATA}"));
    // One page of room: a second page's worth does not fit.
    let fill = vec![1u8; 2 * SMALL as usize];
    // SAFETY: writing our buffer to our non-blocking pipe.
    let n = unsafe { libc::write(small[1], fill.as_ptr().cast(), fill.len()) };
    c.eq("small pipe: bytes a write fits", n, SMALL as isize);
    c.finish()
}
