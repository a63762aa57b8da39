//! shm_private00: shared anonymous memory also mapped privately (MAP_PRIVATE
//! through /proc/self/map_files; needs root). After the restore the shared
//! area and the private view keep their data (the view's copied-on-write
//! page its own), a private write stays private, and a write to the shared
//! area still shows in the view's untouched pages (one object behind both).

use std::os::fd::AsRawFd;

use zdtm::Checks;
use zdtm::mem::{bytes, map};

fn main() {
    zdtm::test_init();
    let len = 4 * zdtm::page_size();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let shared = map("shared anon", len, rw, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0);
    let mut want = vec![0u8; len];
    zdtm::datagen(&mut want, std::process::id() as u64);
    bytes(shared, len).copy_from_slice(&want);
    let link = format!("/proc/self/map_files/{:x}-{:x}", shared as usize, shared as usize + len);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&link).unwrap_or_else(|e| zdtm::fail(&format!("open {link}: {e}")));
    let private = map("private view", len, rw, libc::MAP_PRIVATE, f.as_raw_fd(), 0);
    drop(f);
    bytes(private, len)[0] ^= 0xff; // one page copied on write

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        bytes(shared, len)[1] ^= 0xff;
    }
    let mut ck = Checks::new();
    ck.check(bytes(shared, len) == want.as_slice(), || "shared area: contents differ".into());
    let mut view = want.clone();
    view[0] ^= 0xff;
    ck.check(bytes(private, len) == view.as_slice(), || "private view: contents differ".into());
    bytes(private, len)[2 * 4096] ^= 0x11;
    ck.eq("a private write stays private", bytes(shared, len)[2 * 4096], want[2 * 4096]);
    bytes(shared, len)[3 * 4096 + 5] ^= 0x22;
    ck.eq("a shared write shows in the view's untouched page", bytes(private, len)[3 * 4096 + 5], want[3 * 4096 + 5] ^ 0x22);
    ck.finish()
}
