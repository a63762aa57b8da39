//! sem00 (suid): in an IPC namespace of its own, the test makes a
//! semaphore set of 3 with a key (id chosen through kernel.sem_next_id,
//! mode 0640, owner 18943) and a private one, and sets their values.
//! After the restore, from inside: both sets with ids, key, mode, owner,
//! size and every value.
//!
//! `--sabotage check`: one value is changed before the checks.

use zdtm::Checks;

const KEY: libc::key_t = 0x5e0_0001;
const ID: i32 = 777;
const VALS: [u16; 3] = [1, 42, 32767];

fn getall(id: i32, n: usize) -> Vec<u16> {
    let mut v = vec![0u16; n];
    // SAFETY: GETALL writes n unsigned shorts.
    if unsafe { libc::semctl(id, 0, libc::GETALL, v.as_mut_ptr()) } != 0 {
        return Vec::new();
    }
    v
}

fn stat(id: i32) -> Option<libc::semid_ds> {
    // SAFETY: semid_ds is plain integers.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT fills ds.
    (unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) } == 0).then_some(ds)
}

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWIPC, "ipc");
    zdtm::write_sysctl("kernel/sem_next_id", &ID.to_string());
    // SAFETY: plain syscall.
    let s = unsafe { libc::semget(KEY, 3, 0o640 | libc::IPC_CREAT | libc::IPC_EXCL) };
    // SAFETY: plain syscall.
    let p = unsafe { libc::semget(libc::IPC_PRIVATE, 1, 0o400 | libc::IPC_CREAT) };
    if s < 0 || p < 0 {
        zdtm::fail(&format!("semget: {}", zdtm::last_err()));
    }
    let mut ds = stat(s).unwrap_or_else(|| zdtm::fail("IPC_STAT"));
    ds.sem_perm.uid = 18943;
    ds.sem_perm.gid = 18943;
    // SAFETY: IPC_SET reads ds; SETALL reads 3 / 1 unsigned shorts.
    let ok = unsafe {
        libc::semctl(s, 0, libc::IPC_SET, &mut ds as *mut libc::semid_ds) == 0
            && libc::semctl(s, 0, libc::SETALL, VALS.as_ptr()) == 0
            && libc::semctl(p, 0, libc::SETALL, [5u16].as_ptr()) == 0
    };
    if !ok {
        zdtm::fail(&format!("semctl: {}", zdtm::last_err()));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: SETVAL takes an int.
        unsafe { libc::semctl(s, 1, libc::SETVAL, 41) };
    }

    let mut c = Checks::new();
    let now = zdtm::ns_link("ipc");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's ipc namespace {host}"));
    c.eq("the keyed set's id", s, ID);
    // SAFETY: plain syscall.
    c.eq("semget of the key", unsafe { libc::semget(KEY, 0, 0) }, s);
    match stat(s) {
        Some(ds) => {
            c.eq("mode", ds.sem_perm.mode & 0o777, 0o640);
            c.eq("owner", (ds.sem_perm.uid, ds.sem_perm.gid), (18943, 18943));
            c.eq("nsems", ds.sem_nsems, 3);
        }
        None => c.check(false, || format!("IPC_STAT of set {s}: {}", zdtm::last_err())),
    }
    c.eq("values", getall(s, 3), VALS.to_vec());
    c.eq("the private set's value", getall(p, 1), vec![5]);
    c.eq("the private set's mode", stat(p).map(|d| d.sem_perm.mode & 0o777), Some(0o400));
    c.finish()
}
