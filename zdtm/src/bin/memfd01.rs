//! memfd01: a memfd held by an fd and mapped MAP_SHARED, both inherited by
//! a child (one description in both tasks, one object behind both
//! mappings), sealed against shrinking. After restore both tasks map the
//! contents, and the child's write through its mapping and its lseek on
//! the shared description show in the parent: through its mapping, its
//! fd's reads and its fd's position.
//! Sabotage: the parent changes a byte of its mapping.

use zdtm::Checks;
use zdtm::mem::{bytes, map};

const NAME: &str = "zdtm memfd01";
const NP: usize = 4;

fn pos(fd: i32) -> i64 {
    // SAFETY: lseek takes only integers.
    unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }
}

fn main() {
    zdtm::test_init();
    let page = zdtm::page_size();
    let len = NP * page;
    let c = std::ffi::CString::new(NAME).unwrap_or_else(|_| zdtm::fail("a NUL in the name"));
    // SAFETY: a valid C string.
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        zdtm::skip(&format!("memfd_create: {}", zdtm::last_err()));
    }
    // SAFETY: ftruncate and fcntl take only integers.
    if unsafe { libc::ftruncate(fd, len as i64) } != 0 || unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) } != 0 {
        zdtm::fail(&format!("ftruncate or F_ADD_SEALS: {}", zdtm::last_err()));
    }
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let mem = bytes(map("the memfd", len, rw, libc::MAP_SHARED, fd, 0), len);
    let mut want = vec![0u8; len];
    zdtm::datagen(&mut want, 0x3e3f01);
    mem.copy_from_slice(&want);
    // SAFETY: lseek takes only integers.
    unsafe { libc::lseek(fd, 555, libc::SEEK_SET) };
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
        c.check(mem[..] == want[..], || "child: the mapping's contents differ".into());
        c.eq("child: the fd's position", pos(fd), 555);
        mem[page..page + 5].copy_from_slice(b"child");
        // SAFETY: lseek takes only integers.
        unsafe { libc::lseek(fd, 999, libc::SEEK_SET) };
        // SAFETY: _exit leaves at once (the parent reports).
        unsafe { libc::_exit(i32::from(c.failed())) }
    }
    // SAFETY: closing our write end.
    unsafe { libc::close(ready[1]) };
    zdtm::wait_ready_closed(ready[0]);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        mem[3 * page] ^= 0xff;
    }
    let mut ck = Checks::new();
    ck.check(mem[..] == want[..], || "parent: the mapping's contents differ".into());
    ck.eq("parent: the fd's position", pos(fd), 555);
    // SAFETY: kill takes only integers.
    unsafe { libc::kill(kid, libc::SIGTERM) };
    ck.check(zdtm::exited_ok(kid), || format!("the child ({kid}) failed its checks (see the log)"));
    ck.eq("the child's write, in our mapping", mem[page..page + 5].to_vec(), b"child".to_vec());
    ck.eq("the child's write, read through our fd", zdtm::pread(fd, page as i64, 5), b"child".to_vec());
    ck.eq("the child's lseek, on our fd (one description)", pos(fd), 999);
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    ck.eq("link", link, format!("/memfd:{NAME} (deleted)"));
    // SAFETY: an fcntl query.
    ck.eq("seals", unsafe { libc::fcntl(fd, libc::F_GET_SEALS) }, libc::F_SEAL_SHRINK);
    ck.finish()
}
