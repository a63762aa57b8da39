//! fifo_ghost00: a FIFO unlinked while held read-write and read-only, with
//! 500 bytes queued. After restore both fds are one FIFO again, still
//! unlinked (no link count, the path free), holding those bytes, and its
//! ends still talk.

use zdtm::Checks;

const DATA: usize = 500;

fn main() {
    zdtm::test_init();
    let path = zdtm::filename().to_path_buf();
    zdtm::mkfifo_or_fail(&path, 0o640);
    let c = zdtm::cpath(&path);
    let rw = zdtm::open_or_fail(&path, libc::O_RDWR);
    let ro = zdtm::open_or_fail(&path, libc::O_RDONLY | libc::O_NONBLOCK);
    let mut data = [0u8; DATA];
    zdtm::datagen(&mut data, 5);
    // SAFETY: writing our buffer; unlinking our path.
    unsafe {
        if libc::write(rw, data.as_ptr().cast(), DATA) != DATA as isize {
            zdtm::fail("short write into the fifo");
        }
        if libc::unlink(c.as_ptr()) != 0 {
            zdtm::fail(&format!("unlink: {}", zdtm::last_err()));
        }
    }
    let before = zdtm::fstat_or_fail(rw);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::read_some(ro, 1);
    }

    let mut ck = Checks::new();
    let (a, b) = (zdtm::fstat_or_fail(rw), zdtm::fstat_or_fail(ro));
    ck.eq("type and mode", a.st_mode, before.st_mode);
    ck.eq("one fifo", (a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
    ck.eq("link count", a.st_nlink, 0);
    ck.check(!path.exists(), || format!("{} exists again", path.display()));
    let got = zdtm::read_some(ro, 2 * DATA);
    ck.check(got[..] == data[..], || format!("read {} queued byte(s), want the {DATA} written", got.len()));
    // SAFETY: writing a literal.
    ck.eq("write after restore", unsafe { libc::write(rw, b"more".as_ptr().cast(), 4) }, 4);
    ck.eq("read it back", zdtm::read_some(ro, 16), b"more".to_vec());
    ck.finish()
}
