//! mntns00 (suid, crfail): the test makes a mount namespace of its own.
//! Mount namespaces are not carried yet: the dump must be refused, naming
//! the task and the kind, and leave it running. After it, from inside:
//! still in a mount namespace other than the host's.
//!
//! `--sabotage check`: the test expects the host's namespace.

use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWNS, "mnt");

    zdtm::test_daemon();
    zdtm::test_waitsig();

    let mut c = Checks::new();
    let now = zdtm::ns_link("mnt");
    let own = !now.is_empty() && now != host;
    c.check(own != zdtm::sabotaged(), || format!("the task's mount namespace: {now}, the host's {host}"));
    c.finish()
}
