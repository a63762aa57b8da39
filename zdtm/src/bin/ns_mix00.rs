//! ns_mix00 (suid): the test makes network, ipc and uts namespaces of its
//! own at once (CRIU numbers them net 9, ipc 10, uts 11): lo up, a host
//! name, a semaphore set with a value, a message queue with a message, an
//! fd on /proc/self/ns/ipc. After the restore, from inside: in namespaces
//! other than the host's, each thing as it was set.
//!
//! `--sabotage check`: the semaphore's value changes before the checks.

use zdtm::{run_tool, Checks};

fn main() {
    zdtm::test_init();
    let host_net = zdtm::netns_link();
    let host = zdtm::unshare_ns(libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS, "uts");
    run_tool("ip", &["link", "set", "lo", "up"]);
    zdtm::write_sysctl("kernel/hostname", "zdtm-ns-mix00");
    // SAFETY: plain syscalls.
    let (s, q) = unsafe { (libc::semget(libc::IPC_PRIVATE, 1, 0o600 | libc::IPC_CREAT), libc::msgget(libc::IPC_PRIVATE, 0o600 | libc::IPC_CREAT)) };
    // SAFETY: SETVAL takes an int.
    if s < 0 || q < 0 || unsafe { libc::semctl(s, 0, libc::SETVAL, 17) } != 0 {
        zdtm::fail(&format!("semget/msgget/SETVAL: {}", zdtm::last_err()));
    }
    let msg = [7i64.to_ne_bytes().as_slice(), b"mixed"].concat();
    // SAFETY: a long mtype and 5 bytes.
    if unsafe { libc::msgsnd(q, msg.as_ptr().cast(), 5, libc::IPC_NOWAIT) } != 0 {
        zdtm::fail(&format!("msgsnd: {}", zdtm::last_err()));
    }
    let ipcf = zdtm::open_or_fail(std::path::Path::new("/proc/self/ns/ipc"), libc::O_RDONLY);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: SETVAL takes an int.
        unsafe { libc::semctl(s, 0, libc::SETVAL, 18) };
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host_net), || "the task is in the host's network namespace".into());
    let now = zdtm::ns_link("uts");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's uts namespace {host}"));
    let link = run_tool("ip", &["-o", "link", "show", "lo"]);
    c.check(link.contains("UP"), || format!("lo is not up: {}", link.trim()));
    c.eq("hostname", zdtm::read_sysctl("kernel/hostname"), "zdtm-ns-mix00".to_string());
    // SAFETY: GETVAL.
    c.eq("semaphore value", unsafe { libc::semctl(s, 0, libc::GETVAL) }, 17);
    let mut buf = [0u8; 8 + 64];
    // SAFETY: buf holds a long and 64 bytes.
    let n = unsafe { libc::msgrcv(q, buf.as_mut_ptr().cast(), 64, 0, libc::IPC_NOWAIT) };
    c.eq("the message", (n, buf[8..8 + n.max(0) as usize].to_vec()), (5, b"mixed".to_vec()));
    let fd = std::fs::read_link(format!("/proc/self/fd/{ipcf}")).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    c.eq("the fd on /proc/self/ns/ipc", fd, zdtm::ns_link("ipc"));
    c.finish()
}
