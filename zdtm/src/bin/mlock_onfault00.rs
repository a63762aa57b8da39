//! mlock_onfault00: crfail — memory locked on fault (mlock2 MLOCK_ONFAULT,
//! VmFlags `lo lf`). The image has only MAP_LOCKED, which would bring it
//! back locked with every page populated, so the dump must refuse, naming
//! the VMA; the task runs on with its area still locked on fault, two of
//! its eight pages touched.

use zdtm::Checks;
use zdtm::mem::{bytes, map, vmflags};

const MLOCK_ONFAULT: libc::c_uint = 1;

fn main() {
    zdtm::test_init();
    let ps = zdtm::page_size();
    let len = 8 * ps;
    let p = map("lock on fault", len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
    // SAFETY: locking our own mapping.
    if unsafe { libc::syscall(libc::SYS_mlock2, p, len, MLOCK_ONFAULT) } != 0 {
        zdtm::skip(&format!("mlock2(MLOCK_ONFAULT): {}", zdtm::last_err()));
    }
    bytes(p, len)[0] = 1;
    bytes(p, len)[5 * ps] = 2;

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: unlocking our own mapping.
        unsafe { libc::munlock(p.cast(), len) };
    }
    let mut ck = Checks::new();
    let f = vmflags(p as usize);
    ck.check(f.iter().any(|x| x == "lo") && f.iter().any(|x| x == "lf"), || format!("not locked on fault: {f:?}"));
    ck.eq("touched bytes", (bytes(p, len)[0], bytes(p, len)[5 * ps]), (1, 2));
    ck.finish()
}
