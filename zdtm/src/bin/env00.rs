//! env00: the environment and argv survive.
//!
//! The runner starts every test with a clean environment holding
//! `ZDTM_ENV_PROBE` (spaces, `=`, non-ASCII). We also change the
//! environment at run time (libc's environ array on the heap) and check
//! both views after: libc's getenv, and /proc/self/{environ,cmdline}
//! (the kernel's view of the initial stack, which a restore must put back).

use zdtm::Checks;

const PROBE: &str = "ZDTM_ENV_PROBE";
const PROBE_VALUE: &str = "zdtm env: spaces = equals, \u{fc}nicode";

fn proc_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("/proc/self/{name}"))
        .unwrap_or_else(|e| zdtm::fail(&format!("read /proc/self/{name}: {e}")))
}

fn main() {
    let opts = zdtm::test_init();
    if std::env::var(PROBE).as_deref() != Ok(PROBE_VALUE) {
        zdtm::fail(&format!(
            "{PROBE} not passed by the runner: {:?}",
            std::env::var(PROBE)
        ));
    }
    // SAFETY: single-threaded at this point.
    unsafe {
        std::env::set_var("ZDTM_ENV00_RUNTIME", "set after exec");
        std::env::remove_var("PATH");
    }
    let environ0 = proc_file("environ");
    let cmdline0 = proc_file("cmdline");
    let args0: Vec<String> = std::env::args().collect();
    let vars0: Vec<(String, String)> = std::env::vars().collect();

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        // SAFETY: single-threaded.
        unsafe { std::env::set_var(PROBE, "sabotaged") };
    }

    let mut c = Checks::new();
    c.eq(
        "getenv(ZDTM_ENV_PROBE)",
        std::env::var(PROBE).ok(),
        Some(PROBE_VALUE.to_string()),
    );
    c.eq(
        "getenv(ZDTM_ENV00_RUNTIME)",
        std::env::var("ZDTM_ENV00_RUNTIME").ok(),
        Some("set after exec".into()),
    );
    c.eq("getenv(PATH) after unset", std::env::var("PATH").ok(), None);
    let vars: Vec<(String, String)> = std::env::vars().collect();
    c.eq("environment", &vars, &vars0);
    c.eq("argv", &std::env::args().collect::<Vec<_>>(), &args0);
    c.eq(
        "argv (test_init copy)",
        &std::env::args().collect::<Vec<_>>(),
        &opts.argv,
    );
    c.check(proc_file("environ") == environ0, || {
        "/proc/self/environ changed".into()
    });
    c.check(proc_file("cmdline") == cmdline0, || {
        "/proc/self/cmdline changed".into()
    });
    let probe = format!("{PROBE}={PROBE_VALUE}\0");
    c.check(
        environ0.windows(probe.len()).any(|w| w == probe.as_bytes()),
        || "/proc/self/environ lacks the probe".into(),
    );
    c.finish()
}
