//! Running criu: our binary (its output, or a Command to finish), the
//! dump and restore steps tests share, an image as crit JSON, and the
//! reference CRIU 4.2 binary when this machine has it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{Target, state};

/// Run the criu binary.
pub fn criu(args: &[&str]) -> Output {
    criu_cmd().args(args).output().unwrap()
}

/// Our criu binary as a Command, stdin on /dev/null and no fault
/// injection from the environment.
pub fn criu_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_criu"));
    c.env_remove("CRIU_FAULT").env_remove("CRIU_RESTORER_FAULT").stdin(Stdio::null());
    c
}

/// The real CRIU 4.2 binary (shared/tools beside the checkout), if there.
pub fn criu42() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/criu-4.2/criu");
    p.exists().then_some(p)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What a log file in `dir` says (empty if there is none).
pub fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// Task `pid`'s mm image in `dir`, typed.
pub fn mm_image(dir: &Path, pid: i32) -> criu::images::pb::MmEntry {
    use criu::images::kind::kinds;
    let d = criu::images::ImageDir::open(dir).unwrap();
    criu::images::ImageReader::open_kind(&d, &kinds::mm().file_name(pid as u64), kinds::mm()).unwrap().expect().unwrap()
}

/// An image as crit JSON.
pub fn crit(path: &Path) -> serde_json::Value {
    let dir = criu::images::ImageDir::open(path.parent().unwrap()).unwrap();
    let r = criu::images::ImageReader::open(&dir, path.file_name().unwrap().to_str().unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    criu::crit::decode_image(r, true).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `criu dump` the target (it is killed and reaped) into a new `imgs`
/// directory under `tmp`; returns the directory.
pub fn dump_killed(t: &mut Target, tmp: &Path) -> PathBuf {
    let imgs = tmp.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let o = criu(&["dump", "-t", &t.pid().to_string(), "-D", imgs.to_str().unwrap()]);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    t.reap();
    imgs
}

/// `criu dump` of `pid` into a new `dir` with `extra` options, which
/// must be refused (exit 1) with the task left running; returns stderr.
pub fn dump_refused(pid: i32, dir: &Path, extra: &[&str]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let mut args = vec!["dump", "-t"];
    let p = pid.to_string();
    args.extend([p.as_str(), "-D", dir.to_str().unwrap()]);
    args.extend(extra);
    let o = criu(&args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "dump {extra:?}: {err}");
    assert_eq!(state(pid), Some('S'), "the task runs on after a refused dump: {err}");
    err
}

/// `criu restore -d` from `imgs`, which must succeed.
pub fn restore_detached(imgs: &Path) {
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap()]);
    assert!(o.status.success(), "restore: {}", text(&o.stderr));
}

