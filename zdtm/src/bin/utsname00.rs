//! utsname00 (suid): the test makes a UTS namespace of its own and sets
//! its host and domain names. After the restore, from inside: still in a
//! namespace other than the host's, uname() gives both names back.
//!
//! `--sabotage check`: the host name is changed before the checks.

use zdtm::Checks;

const HOST: &str = "zdtm-utsname00.host";
const DOMAIN: &str = "zdtm-utsname00.domain";

fn uname() -> (String, String) {
    // SAFETY: utsname is plain bytes; uname() fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        zdtm::fail(&format!("uname: {}", zdtm::last_err()));
    }
    let s = |f: &[libc::c_char]| f.iter().take_while(|c| **c != 0).map(|c| *c as u8 as char).collect::<String>();
    (s(&u.nodename), s(&u.domainname))
}

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_ns(libc::CLONE_NEWUTS, "uts");
    zdtm::write_sysctl("kernel/hostname", HOST);
    zdtm::write_sysctl("kernel/domainname", DOMAIN);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        zdtm::write_sysctl("kernel/hostname", "sabotaged");
    }

    let mut c = Checks::new();
    let now = zdtm::ns_link("uts");
    c.check(!now.is_empty() && now != host, || format!("the task is in the host's uts namespace {host}"));
    c.eq("uname (nodename, domainname)", uname(), (HOST.to_string(), DOMAIN.to_string()));
    c.finish()
}
