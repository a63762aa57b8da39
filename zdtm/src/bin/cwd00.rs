//! cwd00: the current directory (a scratch dir) survives.

use std::os::unix::fs::MetadataExt;
use zdtm::Checks;

fn main() {
    zdtm::test_init();
    let dir = zdtm::dirname();
    if let Err(e) = std::fs::create_dir(dir) {
        zdtm::fail(&format!("mkdir {}: {e}", dir.display()));
    }
    let dir =
        std::fs::canonicalize(dir).unwrap_or_else(|e| zdtm::fail(&format!("canonicalize: {e}")));
    if let Err(e) = std::env::set_current_dir(&dir) {
        zdtm::fail(&format!("chdir {}: {e}", dir.display()));
    }
    let ino = std::fs::metadata(".")
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or_else(|e| zdtm::fail(&format!("stat .: {e}")));

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        let _ = std::env::set_current_dir("/");
    }
    let mut c = Checks::new();
    c.eq("getcwd", std::env::current_dir().ok(), Some(dir.clone()));
    c.eq(
        "stat(.)",
        std::fs::metadata(".").map(|m| (m.dev(), m.ino())).ok(),
        Some(ino),
    );
    c.eq(
        "/proc/self/cwd",
        std::fs::read_link("/proc/self/cwd").ok(),
        Some(dir.clone()),
    );
    // A relative path still resolves inside the directory.
    c.check(
        std::fs::write("relative-file", b"x").is_ok() && dir.join("relative-file").exists(),
        || "a relative create did not land in the cwd".into(),
    );
    let _ = std::fs::remove_file(dir.join("relative-file"));
    let _ = std::env::set_current_dir("/");
    let _ = std::fs::remove_dir(&dir);
    c.finish()
}
