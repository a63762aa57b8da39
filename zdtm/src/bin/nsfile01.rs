//! nsfile01 (suid): the test makes uts and ipc namespaces of its own and
//! keeps an fd open on /proc/self/ns/uts and one on /proc/self/ns/ipc.
//! After the restore, from inside: each fd is a file of the namespace the
//! task is in (the new one the restore made), and the host name set
//! before is still there.
//!
//! `--sabotage check`: the uts fd is replaced by a copy of the ipc one.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWUTS | libc::CLONE_NEWIPC, "uts");
    zdtm::write_sysctl("kernel/hostname", "zdtm-nsfile01");
    let uts = zdtm::open_or_fail(std::path::Path::new("/proc/self/ns/uts"), libc::O_RDONLY);
    let ipc = zdtm::open_or_fail(std::path::Path::new("/proc/self/ns/ipc"), libc::O_RDONLY);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        // SAFETY: plain syscall on our own fds.
        unsafe { libc::dup2(ipc, uts) };
    }

    let mut c = Checks::new();
    let link = |p: &str| std::fs::read_link(p).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
    let now = zdtm::ns_link("uts");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's uts namespace {host}"));
    c.eq("the fd on /proc/self/ns/uts", link(&format!("/proc/self/fd/{uts}")), now);
    c.eq("the fd on /proc/self/ns/ipc", link(&format!("/proc/self/fd/{ipc}")), zdtm::ns_link("ipc"));
    c.eq("hostname", zdtm::read_sysctl("kernel/hostname"), "zdtm-nsfile01".to_string());
    c.finish()
}
