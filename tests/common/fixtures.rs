//! CRIU 4.2's fixture images (shared/fixtures/criu-4.2): a copy to
//! restore from when this CPU can hold their registers, and what their
//! crit JSON says; copying an image directory.

use std::path::{Path, PathBuf};

/// The fixtures' directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/criu-4.2")
}

/// The executable fixture `name`'s task `pid` ran, as its images name it
/// (mm's exe_file_id in files.img).
pub fn fixture_exe(name: &str, pid: i32) -> String {
    let json = |f: &str| -> serde_json::Value {
        let p = fixtures().join(format!("{name}.crit/{f}.img.json"));
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
    };
    let id = json(&format!("mm-{pid}"))["entries"][0]["exe_file_id"].clone();
    let files = json("files");
    let f = files["entries"].as_array().unwrap().iter().find(|f| f["id"] == id).expect("the exe file in files.img");
    f["reg"]["name"].as_str().unwrap().to_string()
}

/// A copy of CRIU 4.2's fixture `name` in a temp dir, or None, with the
/// reason printed, when this CPU lacks XSAVE features the fixture's saved
/// registers use: a restore must refuse such an image (the program's libc
/// chose its string functions for those features), so the test cannot run.
pub fn fixture_copy(name: &str) -> Option<tempfile::TempDir> {
    let root = fixtures();
    let xcr0 = xcr0();
    for e in std::fs::read_dir(root.join(format!("{name}.crit"))).unwrap() {
        let p = e.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().starts_with("core-") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let bv = v["entries"][0]["thread_info"]["fpregs"]["xsave"]["xstate_bv"].as_u64().unwrap_or(0);
        if bv & !xcr0 != 0 {
            eprintln!(
                "skipping: fixture {name} ({}) holds XSAVE state {:#x} this CPU lacks (XCR0 {xcr0:#x})",
                p.display(),
                bv & !xcr0
            );
            return None;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root.join(name), tmp.path());
    Some(tmp)
}

/// Copy every file of directory `from` into directory `to` (made if need be).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The XSAVE features the OS enabled on this CPU (x87 and SSE without XSAVE).
fn xcr0() -> u64 {
    #[target_feature(enable = "xsave")]
    fn xgetbv0() -> u64 {
        // SAFETY: XGETBV with ECX=0 is defined once the OS enabled XSAVE,
        // which the caller checked.
        unsafe { std::arch::x86_64::_xgetbv(0) }
    }
    if std::arch::is_x86_feature_detected!("xsave") {
        // SAFETY: the xsave feature was detected just above.
        unsafe { xgetbv0() }
    } else {
        3
    }
}

