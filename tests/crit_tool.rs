//! The `crit` binary prints exactly what CRIU 4.2's crit printed for every
//! fixture image, byte for byte.

use std::path::Path;
use std::process::Command;

#[test]
fn crit_show_is_byte_identical_to_criu_crit() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/criu-4.2");
    let mut n = 0;
    for set in ["sleep", "python-timer", "bash-loop", "python-threads"] {
        let mut names: Vec<String> = std::fs::read_dir(fx.join(set))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with("pages-"))
            .collect();
        names.sort();
        for name in names {
            let out = Command::new(env!("CARGO_BIN_EXE_crit")).arg("show").arg(fx.join(set).join(&name)).output().unwrap();
            assert!(out.status.success(), "{set}/{name}: {}", String::from_utf8_lossy(&out.stderr));
            let want = std::fs::read(fx.join(format!("{set}.crit/{name}.json"))).unwrap();
            assert!(out.stdout == want, "{set}/{name}: output differs from crit's");
            n += 1;
        }
    }
    assert_eq!(n, 56);
}

#[test]
fn crit_refuses_a_corrupt_image_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("core-1.img");
    std::fs::write(&p, [0x19, 0x43, 0x56, 0x54, 0x47, 0x38, 0x05, 0x55, 0xff, 0, 0, 0]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crit")).arg("show").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("core-1.img") && err.contains("offset 8"), "{err}");
}

#[test]
fn crit_encode_gives_back_the_same_bytes() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/criu-4.2");
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for set in ["sleep", "python-timer", "bash-loop", "python-threads"] {
        for e in std::fs::read_dir(fx.join(set.to_string() + ".crit")).unwrap() {
            let json = e.unwrap().path();
            let name = json.file_name().unwrap().to_str().unwrap().trim_end_matches(".json").to_string();
            let out = tmp.path().join(&name);
            let o = Command::new(env!("CARGO_BIN_EXE_crit")).args(["encode", "-i"]).arg(&json).arg("-o").arg(&out).output().unwrap();
            assert!(o.status.success(), "{set}/{name}: {}", String::from_utf8_lossy(&o.stderr));
            assert!(std::fs::read(&out).unwrap() == std::fs::read(fx.join(set).join(&name)).unwrap(), "{set}/{name}: encoded bytes differ from CRIU's image");
            n += 1;
        }
    }
    assert_eq!(n, 56);
}
