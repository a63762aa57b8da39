//! Dump and restore speed: wall time (and frozen time for dump) for a
//! trivial process and for one with 1 GiB of touched anonymous memory,
//! beside this run's reference figures: memcpy of 1 GiB, writing 1 GiB to
//! tmpfs, reading 1 GiB from tmpfs into fresh memory.
//! `cargo bench --bench dump` (release build).

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
    // In a session of its own (setsid execs in place: we are no group leader).
    let c = Command::new("setsid")
        .args(["python3", "-c", &format!("{script}\nopen('{ready}','w').close()\nimport time\ntime.sleep(100000)")])
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

/// Dump (kill mode) then restore -d, `runs` times: best restore wall time.
fn restore(script: &str, runs: usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let mut c = spawn(script);
        let pid = c.id();
        let tmp = tempfile::tempdir_in("/dev/shm").unwrap();
        let st = Command::new(criu()).args(["dump", "-t", &pid.to_string(), "-D"]).arg(tmp.path()).status().unwrap();
        assert!(st.success());
        let _ = c.wait();
        let t = Instant::now();
        let st = Command::new(criu()).args(["restore", "-d", "-D"]).arg(tmp.path()).status().unwrap();
        let el = t.elapsed();
        assert!(st.success());
        best = best.min(el);
        let p = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
        // Reparented to us (subreaper): reap it.
        let _ = nix::sys::wait::waitpid(p, None);
    }
    best
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

    // Reference for restore: reading 1 GiB from tmpfs into fresh memory.
    let mut f = std::fs::File::create("/dev/shm/criu-bench-ref").unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..1024 {
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    let t = Instant::now();
    let mut fresh = vec![0u8; GIB];
    let f = std::fs::File::open("/dev/shm/criu-bench-ref").unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut fresh, 0).unwrap();
    let tmpfs_read = t.elapsed();
    std::hint::black_box(&fresh);
    drop(fresh);
    let _ = std::fs::remove_file("/dev/shm/criu-bench-ref");

    let r_trivial = restore("pass", 5);
    let r_big = restore("import mmap\nm = mmap.mmap(-1, 1 << 30)\nfor i in range(0, 1 << 30, 1 << 20): m[i:i + (1 << 20)] = b'x' * (1 << 20)", 2);

    println!("reference: memcpy 1 GiB          {:>8.1} ms", memcpy.as_secs_f64() * 1e3);
    println!("reference: read 1 GiB from tmpfs into fresh memory {:>8.1} ms", tmpfs_read.as_secs_f64() * 1e3);
    println!("reference: write 1 GiB to tmpfs  {:>8.1} ms", tmpfs.as_secs_f64() * 1e3);
    println!("dump trivial process: wall       {:>8.1} ms, frozen {:>8.1} ms", t_wall.as_secs_f64() * 1e3, t_frozen as f64 / 1e3);
    println!("dump 1 GiB anon process: wall    {:>8.1} ms, frozen {:>8.1} ms", b_wall.as_secs_f64() * 1e3, b_frozen as f64 / 1e3);
    println!("restore trivial process: wall    {:>8.1} ms", r_trivial.as_secs_f64() * 1e3);
    println!("restore 1 GiB anon process: wall {:>8.1} ms", r_big.as_secs_f64() * 1e3);
}
