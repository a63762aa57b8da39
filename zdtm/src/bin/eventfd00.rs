//! eventfd00: an eventfd with a count below 2^32 and O_NONBLOCK: both
//! survive. (A count past 32 bits is eventfd01's.)

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    // SAFETY: plain syscalls on our own fd.
    let fd = unsafe { libc::eventfd(5, libc::EFD_NONBLOCK) };
    if fd < 0 {
        zdtm::fail("eventfd");
    }
    let add: u64 = 0x7fff_0010;
    // SAFETY: writing one u64.
    unsafe { libc::write(fd, (&add as *const u64).cast(), 8) };
    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        let one: u64 = 1;
        // SAFETY: writing one u64.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
    let mut c = Checks::new();
    let mut v: u64 = 0;
    // SAFETY: reading one u64; fcntl query.
    unsafe {
        c.eq("read", libc::read(fd, (&mut v as *mut u64).cast(), 8), 8);
        c.eq("flags", libc::fcntl(fd, libc::F_GETFL) & libc::O_NONBLOCK, libc::O_NONBLOCK);
    }
    c.eq("count", v, 5 + add);
    c.finish()
}
