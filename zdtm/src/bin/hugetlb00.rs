//! hugetlb00: shared hugetlb memory: anonymous (MAP_SHARED|MAP_HUGETLB), a
//! MFD_HUGETLB memfd held by an fd (at a position) and mapped shared, both
//! shared with a child, and a second hugetlb memfd held only by its fd.
//! After restore each holds its data in huge pages (VmFlag `ht`), the fds
//! name their memfds with their sizes and position, and the child's writes
//! show in the parent's mappings (one object behind both tasks').
//! Huge pages: taken from the pool (raising nr_hugepages if need be, put
//! back at the end), or the test skips. Sabotage: a byte of the anonymous
//! area changes.

use zdtm::mem::{bytes, has_vmflag, map};
use zdtm::Checks;

fn memfd(name: &std::ffi::CStr, len: usize) -> i32 {
    // SAFETY: a valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_HUGETLB) };
    if fd < 0 {
        zdtm::skip(&format!("memfd_create(MFD_HUGETLB): {}", zdtm::last_err()));
    }
    // SAFETY: ftruncate takes only integers.
    if unsafe { libc::ftruncate(fd, len as i64) } != 0 {
        zdtm::fail(&format!("ftruncate a hugetlb memfd: {}", zdtm::last_err()));
    }
    fd
}

fn unmap(p: *mut u8, len: usize) {
    // SAFETY: unmapping a mapping of ours no reference outlives.
    unsafe { libc::munmap(p.cast(), len) };
}

fn link(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default()
}

fn main() {
    zdtm::test_init();
    let h = zdtm::hugetlb::page_size();
    let pool = zdtm::hugetlb::reserve(6);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon_p = map("shared anonymous hugetlb", h, rw, libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB, -1, 0);
    let anon = bytes(anon_p, h);
    let mut want_anon = vec![0u8; h];
    zdtm::datagen(&mut want_anon, 0x4e00);
    anon.copy_from_slice(&want_anon);
    let fd = memfd(c"zdtm hugetlb00", 2 * h);
    let mfd_p = map("the hugetlb memfd", 2 * h, rw, libc::MAP_SHARED, fd, 0);
    let mfd = bytes(mfd_p, 2 * h);
    let mut want_mfd = vec![0u8; 2 * h];
    zdtm::datagen(&mut want_mfd, 0x4e01);
    mfd.copy_from_slice(&want_mfd);
    // SAFETY: lseek takes only integers.
    unsafe { libc::lseek(fd, 77, libc::SEEK_SET) };
    let only = memfd(c"zdtm hugetlb00 fd", h);
    let mut want_only = vec![0u8; h];
    zdtm::datagen(&mut want_only, 0x4e02);
    let p = map("the fd-only memfd", h, rw, libc::MAP_SHARED, only, 0);
    bytes(p, h).copy_from_slice(&want_only);
    unmap(p, h);

    let mut ready = [0; 2];
    // SAFETY: pipe fills our array.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 {
        zdtm::fail("pipe");
    }
    // SAFETY: single-threaded; the child runs this program's code and
    // leaves with _exit.
    let kid = unsafe { libc::fork() };
    if kid < 0 {
        zdtm::fail(&format!("fork: {}", zdtm::last_err()));
    }
    if kid == 0 {
        zdtm::say_ready(ready);
        zdtm::test_waitsig();
        let mut c = Checks::new();
        c.check(anon[1..] == want_anon[1..], || "child: the anonymous area differs".into());
        c.check(mfd[..] == want_mfd[..], || "child: the memfd mapping differs".into());
        anon[h - 5..].copy_from_slice(b"child");
        mfd[h + 9..h + 14].copy_from_slice(b"child");
        // SAFETY: _exit leaves at once (the parent reports).
        unsafe { libc::_exit(i32::from(c.failed())) }
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready[1]) };
    zdtm::wait_ready_closed(ready[0]);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        anon[100] ^= 0xff;
    }
    let mut ck = Checks::new();
    ck.check(anon[..] == want_anon[..], || "the anonymous area differs".into());
    ck.check(mfd[..] == want_mfd[..], || "the memfd mapping differs".into());
    ck.check(has_vmflag(anon_p, "ht") && has_vmflag(mfd_p, "ht"), || "a mapping is no hugetlb one (no VmFlag ht)".into());
    ck.eq("memfd fd", link(fd), "/memfd:zdtm hugetlb00 (deleted)".to_string());
    ck.eq("fd-only memfd fd", link(only), "/memfd:zdtm hugetlb00 fd (deleted)".to_string());
    // SAFETY: lseek takes only integers.
    ck.eq("memfd fd position", unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }, 77);
    let p = map("the fd-only memfd again", h, libc::PROT_READ, libc::MAP_SHARED, only, 0);
    ck.check(has_vmflag(p, "ht"), || "the fd-only memfd maps without huge pages".into());
    ck.check(bytes(p, h) == want_only.as_slice(), || "the fd-only memfd's contents differ".into());
    unmap(p, h);
    // SAFETY: kill takes only integers.
    unsafe { libc::kill(kid, libc::SIGTERM) };
    ck.check(zdtm::exited_ok(kid), || format!("the child ({kid}) failed its checks (see the log)"));
    ck.eq("the child's write, in our anonymous area", anon[h - 5..].to_vec(), b"child".to_vec());
    ck.eq("the child's write, in our memfd mapping", mfd[h + 9..h + 14].to_vec(), b"child".to_vec());
    unmap(anon_p, h);
    unmap(mfd_p, 2 * h);
    // SAFETY: closing our fds.
    unsafe {
        libc::close(fd);
        libc::close(only);
    }
    pool.release();
    ck.finish()
}
