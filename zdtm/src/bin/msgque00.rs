//! msgque00 (suid): in an IPC namespace of its own, the test makes a
//! message queue with a key (id chosen through kernel.msg_next_id, mode
//! 0640, owner 18943, a byte limit of 100000) and a private one, and
//! queues messages of several types, a zero-length one and a long one.
//! After the restore, from inside: both queues with their ids, key, mode,
//! owner and limit; every message back in order with its type and bytes.
//!
//! `--sabotage check`: one message is taken from the first queue.

use zdtm::Checks;

const KEY: libc::key_t = 0x5a0e_0001;
const ID: i32 = 1234;

fn msgs() -> Vec<(i64, Vec<u8>)> {
    vec![
        (1, b"first".to_vec()),
        (3, b"third type".to_vec()),
        (7, Vec::new()),
        (2, (0..200u8).collect()),
        (1, b"last".to_vec()),
    ]
}

fn send(id: i32, mtype: i64, data: &[u8]) {
    let mut buf = mtype.to_ne_bytes().to_vec();
    buf.extend_from_slice(data);
    // SAFETY: buf is a long mtype then data.len() bytes.
    if unsafe { libc::msgsnd(id, buf.as_ptr().cast(), data.len(), libc::IPC_NOWAIT) } != 0 {
        zdtm::fail(&format!("msgsnd to {id}: {}", zdtm::last_err()));
    }
}

fn recv(id: i32) -> Option<(i64, Vec<u8>)> {
    let mut buf = vec![0u8; 8 + 8192];
    // SAFETY: buf holds a long and 8192 bytes.
    let r = unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), 8192, 0, libc::IPC_NOWAIT) };
    if r < 0 {
        return None;
    }
    Some((i64::from_ne_bytes(buf[..8].try_into().unwrap()), buf[8..8 + r as usize].to_vec()))
}

fn stat(id: i32) -> Option<libc::msqid_ds> {
    // SAFETY: msqid_ds is plain integers.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT fills ds.
    (unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some(ds)
}

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWIPC, "ipc");
    zdtm::write_sysctl("kernel/msg_next_id", &ID.to_string());
    // (A byte limit above msgmnb needs CAP_SYS_RESOURCE.)
    zdtm::write_sysctl("kernel/msgmnb", "200000");
    // SAFETY: plain syscalls.
    let q = unsafe { libc::msgget(KEY, 0o640 | libc::IPC_CREAT | libc::IPC_EXCL) };
    // SAFETY: plain syscall.
    let p = unsafe { libc::msgget(libc::IPC_PRIVATE, 0o600 | libc::IPC_CREAT) };
    if q < 0 || p < 0 {
        zdtm::fail(&format!("msgget: {}", zdtm::last_err()));
    }
    let mut ds = stat(q).unwrap_or_else(|| zdtm::fail("IPC_STAT"));
    ds.msg_perm.uid = 18943;
    ds.msg_perm.gid = 18943;
    ds.msg_qbytes = 100000;
    // SAFETY: IPC_SET reads ds.
    if unsafe { libc::msgctl(q, libc::IPC_SET, &mut ds) } != 0 {
        zdtm::fail(&format!("IPC_SET: {}", zdtm::last_err()));
    }
    for (t, d) in msgs() {
        send(q, t, &d);
    }
    send(p, 9, b"private");

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        recv(q);
    }

    let mut c = Checks::new();
    let now = zdtm::ns_link("ipc");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's ipc namespace {host}"));
    c.eq("the keyed queue's id", q, ID);
    // SAFETY: plain syscall.
    c.eq("msgget of the key", unsafe { libc::msgget(KEY, 0) }, q);
    match stat(q) {
        Some(ds) => {
            c.eq("mode", ds.msg_perm.mode & 0o777, 0o640);
            c.eq("owner", (ds.msg_perm.uid, ds.msg_perm.gid), (18943, 18943));
            c.eq("qbytes", ds.msg_qbytes, 100000);
            c.eq("qnum", ds.msg_qnum, msgs().len() as u64);
        }
        None => c.check(false, || format!("IPC_STAT of queue {q}: {}", zdtm::last_err())),
    }
    let got: Vec<_> = std::iter::from_fn(|| recv(q)).collect();
    c.eq("the messages", got, msgs());
    c.eq("the private queue's message", recv(p), Some((9, b"private".to_vec())));
    c.finish()
}
