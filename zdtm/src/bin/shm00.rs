//! shm00 (suid, crfail): in an IPC namespace of its own, the test makes a
//! SysV shared memory segment (detached) with contents. SysV shared
//! memory is not carried yet: the dump must refuse it, naming the
//! segment, and the test runs on; from inside, the segment and its
//! contents are still there.
//!
//! `--sabotage check`: the contents are changed before the checks.

use zdtm::Checks;

const KEY: libc::key_t = 0x5a0_0002;

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWIPC, "ipc");
    // SAFETY: plain syscall.
    let id = unsafe { libc::shmget(KEY, 8192, 0o600 | libc::IPC_CREAT | libc::IPC_EXCL) };
    if id < 0 {
        zdtm::fail(&format!("shmget: {}", zdtm::last_err()));
    }
    let write = |b: u8| {
        // SAFETY: attach, fill 8192 bytes of the segment, detach.
        unsafe {
            let p = libc::shmat(id, std::ptr::null(), 0);
            if p as isize == -1 {
                zdtm::fail(&format!("shmat: {}", zdtm::last_err()));
            }
            std::ptr::write_bytes(p.cast::<u8>(), b, 8192);
            libc::shmdt(p);
        }
    };
    write(0x5a);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        write(0);
    }

    let mut c = Checks::new();
    let now = zdtm::ns_link("ipc");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's ipc namespace {host}"));
    // SAFETY: plain syscall.
    c.eq("shmget of the key", unsafe { libc::shmget(KEY, 0, 0) }, id);
    // SAFETY: attach read-only, read 8192 bytes, detach.
    let all = unsafe {
        let p = libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY);
        let ok = p as isize != -1 && std::slice::from_raw_parts(p.cast::<u8>(), 8192).iter().all(|b| *b == 0x5a);
        if p as isize != -1 {
            libc::shmdt(p);
        }
        ok
    };
    c.check(all, || "the segment's contents changed".into());
    c.finish()
}
