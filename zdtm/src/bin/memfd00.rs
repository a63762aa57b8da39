//! memfd00: a memfd held only by fds (never mapped): its name, a size that
//! is no multiple of the page with a hole inside, seals (grow and shrink),
//! its contents, and three fds on two descriptions of it: a read-write one
//! (and its dup, one description) at one position, a read-only
//! non-blocking one (reopened through /proc/self/fd) at another. After
//! restore each fd is that memfd again (one inode), with its flags and
//! position, dup'ed fds still share theirs, and a write through one
//! description reads back through the other.
//! Sabotage: a byte of the contents changes.

use zdtm::Checks;

const NAME: &str = "zdtm memfd00";

fn memfd(name: &str, flags: libc::c_uint) -> i32 {
    let c = std::ffi::CString::new(name).unwrap_or_else(|_| zdtm::fail("a NUL in the name"));
    // SAFETY: a valid C string.
    let fd = unsafe { libc::memfd_create(c.as_ptr(), flags) };
    if fd < 0 {
        zdtm::skip(&format!("memfd_create({name}): {}", zdtm::last_err()));
    }
    fd
}

fn pwrite(fd: i32, buf: &[u8], off: i64) {
    // SAFETY: writing our buffer.
    if unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off) } != buf.len() as isize {
        zdtm::fail(&format!("pwrite at {off}: {}", zdtm::last_err()));
    }
}

fn pos(fd: i32) -> i64 {
    // SAFETY: lseek takes only integers.
    unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }
}

fn seek(fd: i32, at: i64) {
    // SAFETY: lseek takes only integers.
    if unsafe { libc::lseek(fd, at, libc::SEEK_SET) } != at {
        zdtm::fail(&format!("lseek {fd} to {at}: {}", zdtm::last_err()));
    }
}

fn fcntl(fd: i32, cmd: i32) -> i32 {
    // SAFETY: an fcntl query.
    unsafe { libc::fcntl(fd, cmd) }
}

fn main() {
    zdtm::test_init();
    let page = zdtm::page_size();
    let size = 5 * page + 321;
    let rw = memfd(NAME, libc::MFD_ALLOW_SEALING);
    // SAFETY: ftruncate takes only integers.
    if unsafe { libc::ftruncate(rw, size as i64) } != 0 {
        zdtm::fail(&format!("ftruncate: {}", zdtm::last_err()));
    }
    let mut data = vec![0u8; size];
    zdtm::datagen(&mut data, 0x3e3f);
    // Pages 2 and 3 stay a hole (zeroes).
    data[2 * page..4 * page].fill(0);
    pwrite(rw, &data[..2 * page], 0);
    pwrite(rw, &data[4 * page..], 4 * page as i64);
    // SAFETY: an fcntl on our fd.
    if unsafe { libc::fcntl(rw, libc::F_ADD_SEALS, libc::F_SEAL_GROW | libc::F_SEAL_SHRINK) } != 0 {
        zdtm::fail(&format!("F_ADD_SEALS: {}", zdtm::last_err()));
    }
    let path = zdtm::cpath(std::path::Path::new(&format!("/proc/self/fd/{rw}")));
    // SAFETY: a valid C string.
    let ro = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
    if ro < 0 {
        zdtm::fail(&format!("reopening the memfd read-only: {}", zdtm::last_err()));
    }
    // SAFETY: dup of our fd.
    let dup = unsafe { libc::dup(rw) };
    seek(rw, 1234);
    seek(ro, 77);
    let flags = [fcntl(rw, libc::F_GETFL), fcntl(ro, libc::F_GETFL), fcntl(dup, libc::F_GETFL)];

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        pwrite(rw, &[data[10] ^ 0xff], 10);
    }
    let mut ck = Checks::new();
    let ino = zdtm::fstat_or_fail(rw).st_ino;
    for (what, fd) in [("read-write", rw), ("read-only", ro), ("dup", dup)] {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
        ck.eq(&format!("{what} fd: link"), link, format!("/memfd:{NAME} (deleted)"));
        ck.eq(&format!("{what} fd: the read-write fd's inode"), zdtm::fstat_or_fail(fd).st_ino, ino);
    }
    ck.eq("flags", [fcntl(rw, libc::F_GETFL), fcntl(ro, libc::F_GETFL), fcntl(dup, libc::F_GETFL)], flags);
    ck.eq("size", zdtm::fstat_or_fail(rw).st_size, size as i64);
    ck.eq("seals", fcntl(rw, libc::F_GET_SEALS), libc::F_SEAL_GROW | libc::F_SEAL_SHRINK);
    ck.eq("positions", [pos(rw), pos(ro), pos(dup)], [1234, 77, 1234]);
    let got = zdtm::pread(ro, 0, size + 10);
    ck.check(got == data, || format!("contents differ (read {} bytes, first difference at {:?})", got.len(), got.iter().zip(&data).position(|(a, b)| a != b)));
    seek(dup, 4000);
    ck.eq("a dup'ed fd shares its position", pos(rw), 4000);
    pwrite(rw, b"after", 3 * page as i64);
    ck.eq("a write reads back through the other description", zdtm::pread(ro, 3 * page as i64, 5), b"after".to_vec());
    // SAFETY: ftruncate takes only integers.
    let grow = unsafe { libc::ftruncate(rw, 2 * size as i64) };
    ck.check(grow != 0, || "the memfd could grow: F_SEAL_GROW is lost".into());
    ck.finish()
}
