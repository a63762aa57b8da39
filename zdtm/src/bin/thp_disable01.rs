//! thp_disable01 (crfail): transparent huge pages disabled except where
//! advised (PR_SET_THP_DISABLE with PR_THP_DISABLE_EXCEPT_ADVISED, Linux
//! 6.18) has no place in the image (mm_entry.thp_disabled is a bool), so
//! the dump must refuse; the mode stays (PR_GET_THP_DISABLE says 3).
//! Skipped on kernels without the mode.

use zdtm::Checks;

const EXCEPT_ADVISED: libc::c_ulong = 1 << 1;
const WANT: i32 = 1 | EXCEPT_ADVISED as i32;

fn get() -> i32 {
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }
}

fn set(flags: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: this prctl takes only integer arguments and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, flags, 0, 0) } != 0 {
        return Err(zdtm::last_err());
    }
    Ok(())
}

fn main() {
    zdtm::test_init();
    match set(EXCEPT_ADVISED) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            zdtm::skip("no PR_THP_DISABLE_EXCEPT_ADVISED on this kernel")
        }
        Err(e) => zdtm::fail(&format!("PR_SET_THP_DISABLE EXCEPT_ADVISED: {e}")),
        Ok(()) => {}
    }
    if get() != WANT {
        zdtm::fail(&format!("PR_GET_THP_DISABLE is {} right after setting {WANT}", get()));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged()
        && let Err(e) = set(0)
    {
        zdtm::fail(&format!("sabotage: PR_SET_THP_DISABLE: {e}"));
    }
    let mut c = Checks::new();
    c.eq("PR_GET_THP_DISABLE", get(), WANT);
    c.finish()
}
