//! unlink_fstat00: a file opened, filled and unlinked keeps its contents,
//! offset, mode, size and zero link count; its path stays free.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use zdtm::Checks;

const LEN: usize = 20 * 1024;

fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    let mut data = vec![0u8; LEN];
    zdtm::datagen(&mut data, std::process::id() as u64 + 7);
    std::fs::write(&path, &data).unwrap_or_else(|e| zdtm::fail(&format!("write {}: {e}", path.display())));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let p = zdtm::cpath(&path);
    // SAFETY: a valid C string; plain syscalls on our fd.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDWR) };
    if fd < 0 {
        zdtm::fail(&format!("open {}: {}", path.display(), zdtm::last_err()));
    }
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    unsafe { libc::lseek(fd, 1000, libc::SEEK_SET) };
    std::fs::remove_file(&path).unwrap();

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // One byte changed (whatever it held).
        let b = [!data[5]];
        // SAFETY: plain syscall on our fd.
        unsafe { libc::pwrite(fd, b.as_ptr().cast(), 1, 5) };
    }

    let mut c = Checks::new();
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
    c.eq("link", link.to_string_lossy().into_owned(), format!("{} (deleted)", path.display()));
    let md = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap();
    c.eq("nlink", md.nlink(), 0);
    c.eq("size", md.size(), LEN as u64);
    c.eq("mode", md.mode() & 0o7777, 0o640);
    // SAFETY: lseek on our fd takes only integer arguments and touches no memory of ours.
    c.eq("offset", unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }, 1000);
    let mut got = vec![0u8; LEN];
    // SAFETY: reading into our buffer of LEN bytes.
    let n = unsafe { libc::pread(fd, got.as_mut_ptr().cast(), LEN, 0) };
    c.eq("read", n, LEN as isize);
    c.check(got == data, || "contents differ".into());
    c.check(!path.exists(), || format!("{} exists again", path.display()));
    c.finish()
}
