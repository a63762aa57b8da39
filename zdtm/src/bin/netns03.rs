//! netns03 (suid, `--empty-ns=net`, as runc uses it): the test makes a
//! network namespace of its own with lo up and a TCP listener on
//! 127.0.0.1. The dump records no links; the restore makes an empty
//! namespace, and the action script the test writes
//! (/tmp/zdtm-netns03.sh, run at setup-namespaces) sets lo up in it, before the
//! listener is made again. After the restore, from inside: a namespace
//! other than the host's, lo up, and the listener accepts a connection.
//!
//! `--sabotage check`: lo is set down before the checks.

use std::os::unix::fs::PermissionsExt;

use zdtm::inet::{self, listener_works, name};
use zdtm::{run_tool, Checks};

/// Where tests.desc's `--action-script` finds the script.
const SCRIPT_PATH: &str = "/tmp/zdtm-netns03.sh";

const SCRIPT: &str = "#!/bin/sh\n\
[ \"$CRTOOLS_SCRIPT_ACTION\" = setup-namespaces ] || exit 0\n\
exec nsenter -t \"$CRTOOLS_INIT_PID\" -n ip link set lo up\n";

fn main() {
    zdtm::test_init();
    let host = zdtm::unshare_net();
    // An absolute path: CRIU 4.2 runs scripts from the images dir, ours
    // from where it was started. Runs of other modes write the same bytes.
    let tmp = format!("{SCRIPT_PATH}.{}", std::process::id());
    let made = std::fs::write(&tmp, SCRIPT)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)))
        .and_then(|()| std::fs::rename(&tmp, SCRIPT_PATH));
    if let Err(e) = made {
        zdtm::fail(&format!("can't write the action script {SCRIPT_PATH}: {e}"));
    }
    run_tool("ip", &["link", "set", "lo", "up"]);
    let l = inet::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    inet::bind(l, "127.0.0.1:0");
    inet::listen(l, 4);
    let addr = name(l, false);

    zdtm::test_daemon();
    zdtm::test_waitsig();
    if zdtm::sabotaged() {
        run_tool("ip", &["link", "set", "lo", "down"]);
    }

    let mut c = Checks::new();
    c.check(zdtm::own_netns(&host), || "the task is in the host's network namespace".into());
    let link = run_tool("ip", &["-o", "link", "show", "lo"]);
    let up = link.contains(",UP");
    c.check(up, || format!("lo is not up: {}", link.trim()));
    c.eq("listener address", name(l, false), addr);
    match addr {
        // (A connection over a lo that is down would hang.)
        Some(a) if up => {
            if let Err(e) = listener_works(l, &a) {
                c.check(false, || format!("the listener on {a}: {e}"));
            }
        }
        Some(_) => {}
        None => c.check(false, || "the listener had no address".into()),
    }
    c.finish()
}
