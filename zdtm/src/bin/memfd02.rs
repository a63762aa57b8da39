//! memfd02: a memfd mapped MAP_PRIVATE (its fd kept), one page of the view
//! copied on write. After restore the view holds its copied page and the
//! file's other pages, the file itself is unchanged by the private write,
//! and a write to the file through the fd still shows in the view's
//! untouched pages (the view maps the restored memfd).
//! Sabotage: a byte of the view's copied page changes.

use zdtm::Checks;
use zdtm::mem::{bytes, map};

const NP: usize = 3;

fn main() {
    zdtm::test_init();
    let page = zdtm::page_size();
    let len = NP * page;
    // SAFETY: a valid C string.
    let fd = unsafe { libc::memfd_create(c"zdtm memfd02".as_ptr(), 0) };
    if fd < 0 {
        zdtm::skip(&format!("memfd_create: {}", zdtm::last_err()));
    }
    let mut file = vec![0u8; len];
    zdtm::datagen(&mut file, 0x3e3f02);
    // SAFETY: writing our buffer.
    if unsafe { libc::pwrite(fd, file.as_ptr().cast(), len, 0) } != len as isize {
        zdtm::fail(&format!("pwrite: {}", zdtm::last_err()));
    }
    let view = bytes(map("private view", len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE, fd, 0), len);
    let mut want = file.clone();
    view[5..10].copy_from_slice(b"COWed");
    want[5..10].copy_from_slice(b"COWed");

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        view[7] ^= 0xff;
    }
    let mut ck = Checks::new();
    ck.check(view[..] == want[..], || "the private view's contents differ".into());
    ck.check(zdtm::pread(fd, 0, len) == file, || "the file's contents differ (the private write reached it?)".into());
    // SAFETY: writing a literal.
    let n = unsafe { libc::pwrite(fd, b"file".as_ptr().cast(), 4, 2 * page as i64) };
    ck.eq("a write to the file", n, 4);
    ck.eq("shows in the view's untouched page", view[2 * page..2 * page + 4].to_vec(), b"file".to_vec());
    ck.eq("not in its copied page", zdtm::pread(fd, 0, 10)[5..10].to_vec(), file[5..10].to_vec());
    ck.finish()
}
