//! Dump (and, once restore lands, restore) speed: wall time and frozen time
//! for a trivial process and for one with 1 GiB of touched anonymous
//! memory, beside this run's reference figures for memcpy of 1 GiB and for
//! writing 1 GiB to tmpfs. `cargo bench --bench dump` (release build).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GIB: usize = 1 << 30;

fn criu() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("criu");
    assert!(p.exists(), "build the criu binary first (cargo build --release)");
    p
}

fn spawn(script: &str) -> std::process::Child {
    let _ = nix::sys::prctl::set_child_subreaper(true);
    criu::sys::fd::cloexec_from(3).unwrap();
    let ready = "/tmp/criu-bench-ready";
    let _ = std::fs::remove_file(ready);
    let c = Command::new("python3")
        .args(["-c", &format!("{script}\nopen('{ready}','w').close()\nimport time\ntime.sleep(100000)")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while !Path::new(ready).exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    c
}

fn frozen_us(dir: &Path) -> u64 {
    let d = criu::images::ImageDir::open(dir).unwrap();
    let r = criu::images::ImageReader::open(&d, "stats-dump").unwrap();
    let j = criu::crit::decode_image(r, false).unwrap();
    j["entries"][0]["dump"]["frozen_time"].as_u64().unwrap()
}

fn dump(pid: u32, runs: usize) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut frozen = u64::MAX;
    for _ in 0..runs {
        let tmp = tempfile::tempdir_in("/dev/shm").unwrap();
        let t = Instant::now();
        let st = Command::new(criu())
            .args(["dump", "-R", "-t", &pid.to_string(), "-D"])
            .arg(tmp.path())
            .status()
            .unwrap();
        let el = t.elapsed();
        assert!(st.success());
        best = best.min(el);
        frozen = frozen.min(frozen_us(tmp.path()));
    }
    (best, frozen)
}

fn main() {
    // References.
    let src = vec![1u8; GIB];
    let mut dst = vec![0u8; GIB];
    dst.copy_from_slice(&src);
    let t = Instant::now();
    dst.copy_from_slice(&src);
    let memcpy = t.elapsed();
    std::hint::black_box(&dst);
    drop(dst);
    let t = Instant::now();
    let mut f = std::fs::File::create("/dev/shm/criu-bench-ref").unwrap();
    for c in src.chunks(1 << 20) {
        f.write_all(c).unwrap();
    }
    drop(f);
    let tmpfs = t.elapsed();
    let _ = std::fs::remove_file("/dev/shm/criu-bench-ref");
    drop(src);

    let mut trivial = spawn("pass");
    let (t_wall, t_frozen) = dump(trivial.id(), 10);
    let _ = trivial.kill();
    let _ = trivial.wait();

    let mut big = spawn("import mmap\nm = mmap.mmap(-1, 1 << 30)\nfor i in range(0, 1 << 30, 1 << 20): m[i:i + (1 << 20)] = b'x' * (1 << 20)");
    let (b_wall, b_frozen) = dump(big.id(), 3);
    let _ = big.kill();
    let _ = big.wait();

    println!("reference: memcpy 1 GiB          {:>8.1} ms", memcpy.as_secs_f64() * 1e3);
    println!("reference: write 1 GiB to tmpfs  {:>8.1} ms", tmpfs.as_secs_f64() * 1e3);
    println!("dump trivial process: wall       {:>8.1} ms, frozen {:>8.1} ms", t_wall.as_secs_f64() * 1e3, t_frozen as f64 / 1e3);
    println!("dump 1 GiB anon process: wall    {:>8.1} ms, frozen {:>8.1} ms", b_wall.as_secs_f64() * 1e3, b_frozen as f64 / 1e3);
}
