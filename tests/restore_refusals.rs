//! A restore refuses, quickly and by name, what it could only get wrong or
//! hang on (issue 17): a regular file that became a FIFO since the dump
//! (opening it would wait for a writer), a VMA of mm-PID.img that cannot
//! be (end below start, unaligned, overlapping), an rlimit of core-PID.img
//! that cannot be set (soft above hard). Each fails within a second,
//! naming the file or image, and leaves no task behind. Needs root.

#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{criu_cmd, helper, serial, tmpdir, Target};
use criu::images::kind::kinds;
use criu::images::{ImageDir, ImageReader, ImageWriter};

fn root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("skipping: needs root (ptrace)");
        return false;
    }
    true
}

/// A dumped tests/helpers/kill_target (a counter file, a pipe, a
/// socketpair): (its scratch dir, the images, its pid).
fn dumped() -> (tempfile::TempDir, PathBuf, i32) {
    let dir = tmpdir();
    let exe = helper("kill_target");
    let mut t = Target::spawn(exe.to_str().unwrap(), &[dir.path().to_str().unwrap()], Some(&dir.path().join("ready")));
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let pid = t.pid();
    let o = criu_cmd().args(["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "dump: {}", String::from_utf8_lossy(&o.stderr));
    t.reap();
    std::mem::forget(t); // reaped; its pid must not be killed later
    (dir, imgs, pid)
}

/// Restore from `imgs`, which must fail within a second with `names` in
/// its error; no task `pid` may be left.
fn refused(imgs: &Path, pid: i32, names: &str) {
    let t0 = Instant::now();
    let mut child = criu_cmd()
        .args(["restore", "-d", "-D", imgs.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            common::kill_until_gone(pid);
            panic!("restore still running after 10 s (it waits on something)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = t0.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    if st.success() {
        common::kill_until_gone(pid);
        panic!("restore succeeded: {err}");
    }
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains(names), "the error names {names}: {err}");
    println!("refused in {:?}: {}", t0.elapsed(), err.trim());
    assert!(took < Duration::from_secs(1), "refused after {took:?}: {err}");
    assert!(common::wait_gone(&[pid], Duration::from_secs(2)).is_empty(), "task {pid} left behind");
}

fn edit<M: prost::Message + Default>(imgs: &Path, name: &str, kind: criu::images::kind::Kind<M>, f: impl FnOnce(&mut M)) {
    let d = ImageDir::open(imgs).unwrap();
    let mut m: M = ImageReader::open_kind(&d, name, kind).unwrap().expect().unwrap();
    f(&mut m);
    let mut w = ImageWriter::create(&d, name, kind).unwrap();
    w.write(&m).unwrap();
    w.finish().unwrap();
}

#[test]
fn a_file_that_became_a_fifo_is_refused_by_name() {
    if !root() {
        return;
    }
    let _g = serial();
    let (dir, imgs, pid) = dumped();
    let counter = dir.path().join("counter");
    std::fs::remove_file(&counter).unwrap();
    nix::unistd::mkfifo(&counter, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    refused(&imgs, pid, counter.to_str().unwrap());
}

#[test]
fn an_impossible_vma_is_refused_by_image() {
    if !root() {
        return;
    }
    let _g = serial();
    let (_dir, imgs, pid) = dumped();
    let name = kinds::mm().file_name(pid as u64);
    // End below start.
    edit(&imgs, &name, kinds::mm(), |mm| {
        let v = &mut mm.vmas[1];
        v.end = v.start - 4096;
    });
    refused(&imgs, pid, &name);
    // Overlapping the one before.
    let (_dir, imgs, pid) = dumped();
    let name = kinds::mm().file_name(pid as u64);
    edit(&imgs, &name, kinds::mm(), |mm| mm.vmas[2].start = mm.vmas[1].start);
    refused(&imgs, pid, &name);
}

#[test]
fn an_impossible_rlimit_is_refused_by_image() {
    if !root() {
        return;
    }
    let _g = serial();
    let (_dir, imgs, pid) = dumped();
    let name = kinds::core().file_name(pid as u64);
    edit(&imgs, &name, kinds::core(), |core| {
        let rl = core.tc.as_mut().unwrap().rlimits.as_mut().unwrap();
        rl.rlimits[libc::RLIMIT_NOFILE as usize] = criu::images::pb::RlimitEntry { cur: 2048, max: 1024 };
    });
    refused(&imgs, pid, &name);
}
