//! shm01 (suid, crfail): in an IPC namespace of its own, the test keeps a
//! SysV shared memory segment attached in its memory. Attaches are not
//! carried yet: the dump must refuse the mapping by name, and the test
//! runs on; from inside, the attach still shows the contents written.
//!
//! `--sabotage check`: the contents are changed before the checks.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWIPC, "ipc");
    // SAFETY: plain syscall.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 8192, 0o600 | libc::IPC_CREAT) };
    if id < 0 {
        zdtm::fail(&format!("shmget: {}", zdtm::last_err()));
    }
    // SAFETY: the kernel picks the address.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if p as isize == -1 {
        zdtm::fail(&format!("shmat: {}", zdtm::last_err()));
    }
    // SAFETY: 8192 bytes of the attach.
    let mem = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), 8192) };
    mem.fill(0x5a);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        mem[100] = 0;
    }

    let mut c = Checks::new();
    let now = zdtm::ns_link("ipc");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's ipc namespace {host}"));
    c.check(mem.iter().all(|b| *b == 0x5a), || "the attached segment's contents changed".into());
    c.finish()
}
