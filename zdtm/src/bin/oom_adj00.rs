//! oom_adj00: the OOM-killer adjustment survives: oom_score_adj 400 (an
//! unprivileged task may raise it), read back from /proc/self after.

use zdtm::Checks;

const WANT: i32 = 400;

fn set(v: i32) {
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", v.to_string()) {
        zdtm::fail(&format!("writing {v} to /proc/self/oom_score_adj: {e}"));
    }
}

fn get() -> String {
    std::fs::read_to_string("/proc/self/oom_score_adj").map(|s| s.trim().to_string()).unwrap_or_else(|e| e.to_string())
}

fn main() {
    zdtm::test_init();
    set(WANT);
    if get() != WANT.to_string() {
        zdtm::fail(&format!("oom_score_adj is {} right after setting {WANT}", get()));
    }

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        set(WANT + 1);
    }
    let mut c = Checks::new();
    c.eq("oom_score_adj", get(), WANT.to_string());
    c.finish()
}
