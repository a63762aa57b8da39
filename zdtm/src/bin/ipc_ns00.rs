//! ipc_ns00 (suid): the test makes an IPC namespace of its own and sets
//! its sysctls (SysV msg, sem, shm limits, POSIX mqueue limits, the next
//! message queue id). After the restore, from inside: still in a namespace
//! other than the host's, every sysctl as it was set.
//!
//! `--sabotage check`: kernel.msgmax is changed before the checks.

use zdtm::Checks;

const SET: &[(&str, &str)] = &[
    ("kernel/msgmax", "12345"),
    ("kernel/msgmnb", "23456"),
    ("kernel/msgmni", "321"),
    ("kernel/sem", "251\t32001\t33\t129"),
    ("kernel/shmmax", "123456789"),
    ("kernel/shmall", "987654"),
    ("kernel/shmmni", "1234"),
    ("kernel/shm_rmid_forced", "1"),
    ("fs/mqueue/queues_max", "77"),
    ("fs/mqueue/msg_max", "33"),
    ("fs/mqueue/msgsize_max", "9000"),
    ("fs/mqueue/msg_default", "11"),
    ("fs/mqueue/msgsize_default", "4000"),
    ("kernel/msg_next_id", "4321"),
];

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWIPC, "ipc");
    for (k, v) in SET {
        zdtm::write_sysctl(k, v);
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::write_sysctl("kernel/msgmax", "999");
    }

    let mut c = Checks::new();
    let now = zdtm::ns_link("ipc");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's ipc namespace {host}"));
    for (k, v) in SET {
        c.eq(k, zdtm::read_sysctl(k), v.to_string());
    }
    c.finish()
}
