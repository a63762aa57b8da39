//! umask00: a custom umask survives (and still applies to new files).

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use zdtm::Checks;

const MASK: libc::mode_t = 0o345;

fn main() {
    zdtm::test_init();
    // SAFETY: umask takes only integer arguments and touches no memory of ours.
    unsafe { libc::umask(MASK) };

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: umask takes only integer arguments and touches no memory of ours.
        unsafe { libc::umask(0o022) };
    }
    let mut c = Checks::new();
    // SAFETY: plain syscalls: read the mask by setting it, then put it back.
    let got = unsafe {
        let m = libc::umask(0o777);
        libc::umask(m);
        m
    };
    c.eq("umask", format!("{got:o}"), format!("{MASK:o}"));
    let f = zdtm::filename();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o777)
        .open(f)
    {
        Ok(_) => {
            let mode = std::fs::metadata(f)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            c.eq(
                "mode of a new file",
                format!("{mode:o}"),
                format!("{:o}", 0o777 & !MASK),
            );
            let _ = std::fs::remove_file(f);
        }
        Err(e) => c.check(false, || format!("create {}: {e}", f.display())),
    }
    c.finish()
}
