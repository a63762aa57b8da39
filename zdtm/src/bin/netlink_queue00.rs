//! netlink_queue00: a route socket with the answer to an RTM_GETLINK
//! request queued, unread. The kernel's messages can't be queued again
//! by a restore (their sender is the kernel), so the dump must refuse the
//! socket by name (CRIU 4.2 refuses it too); the task runs on and reads
//! the whole answer.

use zdtm::netlink as nl;

fn main() {
    zdtm::test_init();
    let s = nl::socket(libc::NETLINK_ROUTE);
    nl::ask_links(s);

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let _ = nl::read_links(s, libc::MSG_DONTWAIT);
    }
    match nl::read_links(s, libc::MSG_DONTWAIT) {
        Ok(n) if n >= 1 => zdtm::pass(),
        Ok(_) => zdtm::fail("the queued answer named no link"),
        Err(e) => zdtm::fail(&format!("the queued answer: {e}")),
    }
}
