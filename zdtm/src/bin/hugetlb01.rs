//! hugetlb01: private hugetlb memory: anonymous (MAP_PRIVATE|MAP_HUGETLB,
//! two pages written) and a private view of a MFD_HUGETLB memfd (its fd
//! kept) with one page copied on write. After restore each holds its data
//! in huge pages (VmFlag `ht`), the memfd is unchanged by the private
//! write, and a write to the memfd shows in the view's untouched page.
//! Huge pages: taken from the pool (raising nr_hugepages if need be, put
//! back at the end), or the test skips. Sabotage: a byte of the anonymous
//! area changes.

use zdtm::mem::{bytes, has_vmflag, map};
use zdtm::Checks;

fn unmap(p: *mut u8, len: usize) {
    // SAFETY: unmapping a mapping of ours no reference outlives.
    unsafe { libc::munmap(p.cast(), len) };
}

fn main() {
    zdtm::test_init();
    let h = zdtm::hugetlb::page_size();
    let pool = zdtm::hugetlb::reserve(8);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon_p = map("private anonymous hugetlb", 2 * h, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB, -1, 0);
    let anon = bytes(anon_p, 2 * h);
    let mut want_anon = vec![0u8; 2 * h];
    zdtm::datagen(&mut want_anon, 0x4e10);
    anon.copy_from_slice(&want_anon);
    // SAFETY: a valid C string.
    let fd = unsafe { libc::memfd_create(c"zdtm hugetlb01".as_ptr(), libc::MFD_HUGETLB) };
    if fd < 0 {
        zdtm::skip(&format!("memfd_create(MFD_HUGETLB): {}", zdtm::last_err()));
    }
    // SAFETY: ftruncate takes only integers.
    if unsafe { libc::ftruncate(fd, 2 * h as i64) } != 0 {
        zdtm::fail(&format!("ftruncate a hugetlb memfd: {}", zdtm::last_err()));
    }
    let mut file = vec![0u8; 2 * h];
    zdtm::datagen(&mut file, 0x4e11);
    let w = map("the memfd, to fill it", 2 * h, rw, libc::MAP_SHARED, fd, 0);
    bytes(w, 2 * h).copy_from_slice(&file);
    unmap(w, 2 * h);
    let view_p = map("private view", 2 * h, rw, libc::MAP_PRIVATE, fd, 0);
    let view = bytes(view_p, 2 * h);
    view[5..10].copy_from_slice(b"COWed");
    let mut want_view = file.clone();
    want_view[5..10].copy_from_slice(b"COWed");

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        anon[h + 3] ^= 0xff;
    }
    let mut ck = Checks::new();
    ck.check(anon[..] == want_anon[..], || "the anonymous area differs".into());
    ck.check(view[..] == want_view[..], || "the private view differs".into());
    ck.check(has_vmflag(anon_p, "ht") && has_vmflag(view_p, "ht"), || "a mapping is no hugetlb one (no VmFlag ht)".into());
    let w = map("the memfd again", 2 * h, rw, libc::MAP_SHARED, fd, 0);
    let shared = bytes(w, 2 * h);
    ck.check(shared[..] == file[..], || "the memfd differs (the private write reached it?)".into());
    shared[h + 1..h + 5].copy_from_slice(b"file");
    ck.eq("a write to the memfd shows in the view's untouched page", view[h + 1..h + 5].to_vec(), b"file".to_vec());
    unmap(w, 2 * h);
    unmap(view_p, 2 * h);
    unmap(anon_p, 2 * h);
    // SAFETY: closing our fd.
    unsafe { libc::close(fd) };
    pool.release();
    ck.finish()
}
