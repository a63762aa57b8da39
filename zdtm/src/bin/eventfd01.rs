//! eventfd01: an eventfd whose count needs more than 32 bits (eventfd(2)'s
//! initial value is 32-bit, so a restore can't just pass the count there):
//! the whole count and O_NONBLOCK survive.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    // SAFETY: plain syscalls on our own fd.
    let fd = unsafe { libc::eventfd(5, libc::EFD_NONBLOCK) };
    if fd < 0 {
        zdtm::fail("eventfd");
    }
    let add: u64 = 0x1_0000_0010;
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
