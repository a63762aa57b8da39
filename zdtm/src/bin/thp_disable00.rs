//! thp_disable00: transparent huge pages disabled for the process with
//! prctl(PR_SET_THP_DISABLE, 1) stay disabled: PR_GET_THP_DISABLE says 1
//! after (and /proc/self/status says so, which the runner compares).

use zdtm::Checks;

fn get() -> i32 {
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }
}

fn set(on: bool) {
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, on as libc::c_ulong, 0, 0, 0) } != 0 {
        zdtm::fail(&format!("PR_SET_THP_DISABLE {on}: {}", zdtm::last_err()));
    }
}

fn main() {
    zdtm::test_init();
    if get() < 0 {
        zdtm::skip("no PR_GET_THP_DISABLE on this kernel");
    }
    set(true);
    if get() != 1 {
        zdtm::fail(&format!("PR_GET_THP_DISABLE is {} right after disabling", get()));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        set(false);
    }
    let mut c = Checks::new();
    c.eq("PR_GET_THP_DISABLE", get(), 1);
    c.finish()
}
