//! shm00 (suid): in an IPC namespace of its own, the test makes SysV
//! shared memory segments, none attached at the dump: one with a key (id
//! chosen through kernel.shm_next_id, mode 0640, owner 18943) of 3 pages
//! and a bit, filled with a pattern but for a hole in its second page, and
//! a private one of one page. After the restore, from inside: both
//! segments with their ids, key, size, mode, owner and every byte.
//!
//! `--sabotage check`: a byte of the first segment changes before the checks.

use zdtm::Checks;

const KEY: libc::key_t = 0x5a0_0002;
const ID: i32 = 65537;
const SIZE: usize = 3 * 4096 + 100;

fn pattern(i: usize) -> u8 {
    if (4096..8192).contains(&i) { 0 } else { (i % 251) as u8 + 1 }
}

/// Run `f` on segment `id` attached.
fn with<T>(id: i32, f: impl FnOnce(*mut u8) -> T) -> T {
    // SAFETY: the kernel picks the address.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if p as isize == -1 {
        zdtm::fail(&format!("shmat {id}: {}", zdtm::last_err()));
    }
    let r = f(p.cast());
    // SAFETY: p is the attach above.
    unsafe { libc::shmdt(p) };
    r
}

fn stat(id: i32) -> Option<libc::shmid_ds> {
    // SAFETY: shmid_ds is plain integers.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT fills ds.
    (unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some(ds)
}

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWIPC, "ipc");
    zdtm::write_sysctl("kernel/shm_next_id", &ID.to_string());
    // SAFETY: plain syscalls.
    let (s, p) = unsafe { (libc::shmget(KEY, SIZE, 0o640 | libc::IPC_CREAT | libc::IPC_EXCL), libc::shmget(libc::IPC_PRIVATE, 4096, 0o600 | libc::IPC_CREAT)) };
    if s < 0 || p < 0 {
        zdtm::fail(&format!("shmget: {}", zdtm::last_err()));
    }
    let mut ds = stat(s).unwrap_or_else(|| zdtm::fail("IPC_STAT"));
    ds.shm_perm.uid = 18943;
    ds.shm_perm.gid = 18943;
    // SAFETY: IPC_SET reads ds.
    if unsafe { libc::shmctl(s, libc::IPC_SET, &mut ds) } != 0 {
        zdtm::fail(&format!("IPC_SET: {}", zdtm::last_err()));
    }
    // SAFETY: SIZE bytes of the attached segment (4096 of the private one).
    with(s, |m| (0..SIZE).filter(|i| pattern(*i) != 0).for_each(|i| unsafe { *m.add(i) = pattern(i) }));
    // SAFETY: as above.
    with(p, |m| unsafe { std::ptr::write_bytes(m, 0x77, 4096) });

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: within the segment.
        with(s, |m| unsafe { *m.add(10) ^= 1 });
    }

    let mut c = Checks::new();
    let now = zdtm::ns_link("ipc");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's ipc namespace {host}"));
    c.eq("the keyed segment's id", s, ID);
    // SAFETY: plain syscall.
    c.eq("shmget of the key", unsafe { libc::shmget(KEY, 0, 0) }, s);
    match stat(s) {
        Some(ds) => {
            c.eq("size", ds.shm_segsz, SIZE);
            c.eq("mode", ds.shm_perm.mode & 0o777, 0o640);
            c.eq("owner", (ds.shm_perm.uid, ds.shm_perm.gid), (18943, 18943));
        }
        None => c.check(false, || format!("IPC_STAT of segment {s}: {}", zdtm::last_err())),
    }
    // SAFETY: SIZE bytes of the attached segment.
    let bad = with(s, |m| (0..SIZE).find(|i| unsafe { *m.add(*i) } != pattern(*i)));
    c.eq("the first byte of the keyed segment that differs", bad, None);
    // SAFETY: 4096 bytes of the attached segment.
    let bad = with(p, |m| (0..4096).find(|i| unsafe { *m.add(*i) } != 0x77));
    c.eq("the first byte of the private segment that differs", bad, None);
    c.eq("the private segment's size", stat(p).map(|d| d.shm_segsz), Some(4096));
    c.finish()
}
