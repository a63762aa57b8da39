//! loginuid00: the audit login uid survives: set to 3 in the test (as
//! root, so any previous value may be replaced), read back from
//! /proc/self/loginuid after. Skipped without /proc/self/loginuid
//! (a kernel without audit syscall support).

use zdtm::Checks;

const WANT: u32 = 3;
const PATH: &str = "/proc/self/loginuid";

fn set(v: u32) -> std::io::Result<()> {
    std::fs::write(PATH, v.to_string())
}

fn get() -> String {
    std::fs::read_to_string(PATH).map(|s| s.trim().to_string()).unwrap_or_else(|e| e.to_string())
}

fn main() {
    zdtm::test_init();
    if !std::path::Path::new(PATH).exists() {
        zdtm::skip("no /proc/self/loginuid (audit syscall support off)");
    }
    if let Err(e) = set(WANT) {
        zdtm::fail(&format!("writing {WANT} to {PATH}: {e}"));
    }
    if get() != WANT.to_string() {
        zdtm::fail(&format!("loginuid is {} right after setting {WANT}", get()));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged()
        && let Err(e) = set(WANT + 1)
    {
        zdtm::fail(&format!("sabotage: writing {} to {PATH}: {e}", WANT + 1));
    }
    let mut c = Checks::new();
    c.eq("loginuid", get(), WANT.to_string());
    c.finish()
}
