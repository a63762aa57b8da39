//! Restoring under a kernel whose vDSO differs from the image's, forced on
//! any machine: a program checking its vDSO calls against the raw system
//! calls (`tests/helpers/vdso_target.rs`, compiled here with rustc) is
//! dumped, a byte of its vDSO's build-id note is changed in pages-N.img,
//! and the restore must proxy: the image's vDSO at its address as ordinary
//! memory whose entries jump into ours, placed elsewhere, and the program
//! keeps getting right answers. A dump of that task restores again (ours
//! is then the image's). An image's vDSO exporting a function ours lacks
//! is refused, by name, before any task exists. Tests run one at a time.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{criu, kill_and_reap, maps, mm_image as mm, serial, text, Restored, Target};
use criu::images::pagemap::Pagemap;
use criu::images::pb::MmEntry;
use criu::images::ImageDir;
use goblin::elf::Elf;

/// Our own [vdso] bytes and start (None: no vDSO on this kernel).
fn our_vdso() -> Option<(u64, Vec<u8>)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let l = maps.lines().find(|l| l.ends_with("[vdso]"))?;
    let (a, b) = l.split_whitespace().next()?.split_once('-')?;
    let (a, b) = (u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?);
    let mut bytes = vec![0u8; (b - a) as usize];
    std::fs::File::open("/proc/self/mem").unwrap().read_exact_at(&mut bytes, a).unwrap();
    Some((a, bytes))
}

/// (ok, bad, last mismatch) from the target's status file.
fn status(dir: &Path) -> (u64, u64, String) {
    let s = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    let mut lines = s.lines();
    let f: Vec<u64> = lines.next().unwrap_or("").split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (f.first().copied().unwrap_or(0), f.get(1).copied().unwrap_or(0), lines.next().unwrap_or("").to_string())
}

/// The target makes good rounds (at least 20 more within 3 s) and no bad one.
fn keeps_checking(dir: &Path) {
    let (ok0, _, _) = status(dir);
    let t0 = Instant::now();
    while status(dir).0 < ok0 + 20 && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ok, bad, last) = status(dir);
    assert!(ok >= ok0 + 20, "the target stopped checking: ok {ok0} then {ok}");
    assert_eq!(bad, 0, "wrong vDSO answers after the restore: {last}");
}

const VDSO: u32 = 1 << 3;
const VVAR: u32 = 1 << 12;

/// The image's (start, end) of the VMA(s) with status `bit`, joined.
fn area(mm: &MmEntry, bit: u32) -> Option<(u64, u64)> {
    let v = || mm.vmas.iter().filter(|v| v.status & bit != 0);
    v().map(|v| v.start).min().zip(v().map(|v| v.end).max())
}

/// Where the image's vDSO bytes are in its pages file: (path, offset).
fn vdso_pages(imgs: &Path, pid: i32) -> (PathBuf, u64, usize) {
    let (start, end) = area(&mm(imgs, pid), VDSO).expect("the image has a vDSO");
    let d = ImageDir::open(imgs).unwrap();
    let pm = Pagemap::read(&d, pid as u64).unwrap();
    let pages = imgs.join(criu::images::pagemap::pages_file_name(pm.head.pages_id));
    let len = std::fs::metadata(&pages).unwrap().len();
    let run = pm
        .runs("pagemap", len)
        .unwrap()
        .into_iter()
        .find(|r| r.vaddr <= start && end <= r.vaddr + r.len() && r.pages_offset.is_some())
        .expect("the vDSO is stored whole in one run");
    (pages, run.pages_offset.unwrap() + (start - run.vaddr), (end - start) as usize)
}

fn read_at(path: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    std::fs::File::open(path).unwrap().read_exact_at(&mut b, off).unwrap();
    b
}

fn write_at(path: &Path, off: u64, b: &[u8]) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(b, off).unwrap();
}

/// A byte that no code reads: the last one of the vDSO's build-id note
/// (outside every executable section).
fn harmless_byte(vdso: &[u8]) -> usize {
    let elf = Elf::parse(vdso).unwrap();
    let note = elf
        .section_headers
        .iter()
        .find(|s| s.sh_type == goblin::elf::section_header::SHT_NOTE && s.sh_size > 0)
        .expect("the vDSO has a note section");
    let at = (note.sh_offset + note.sh_size - 1) as usize;
    let exec = goblin::elf::section_header::SHF_EXECINSTR as u64;
    assert!(elf
        .section_headers
        .iter()
        .filter(|s| s.sh_flags & exec != 0)
        .all(|s| (at as u64) < s.sh_offset || at as u64 >= s.sh_offset + s.sh_size));
    assert!(at < vdso.len());
    at
}

/// `vdso_target` in `tmp`, dumped into tmp/imgs (killed); (pid, imgs).
fn dumped_target(tmp: &Path) -> (i32, PathBuf) {
    let mut t = Target::spawn(common::helper("vdso_target").to_str().unwrap(), &[tmp.to_str().unwrap()], Some(&tmp.join("ready")));
    let pid = t.pid();
    let imgs = tmp.join("imgs");
    dump(pid, &imgs);
    t.reap();
    (pid, imgs)
}

fn dump(pid: i32, imgs: &Path) {
    std::fs::create_dir_all(imgs).unwrap();
    let o = criu(&["dump", "-t", &pid.to_string(), "-D", imgs.to_str().unwrap(), "-v4", "-o", "dump.log"]);
    let log = std::fs::read_to_string(imgs.join("dump.log")).unwrap_or_default();
    assert!(o.status.success(), "dump: {}\n{log}", text(&o.stderr));
}

fn restore(imgs: &Path) -> String {
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log"]);
    let log = std::fs::read_to_string(imgs.join("restore.log")).unwrap_or_default();
    assert!(o.status.success(), "restore: {}\n{log}", text(&o.stderr));
    log
}

/// The restored task runs a proxy: the image's vDSO range is ordinary
/// r-x memory whose every entry jumps to the same function of our
/// [vdso], which lies elsewhere, clear of the image's VMAs; the image's
/// vvar range is no [vvar]. Returns our [vdso] start in the task.
fn check_proxy(pid: i32, mm: &MmEntry) -> u64 {
    let m = maps(pid);
    let (vs, ve) = area(mm, VDSO).unwrap();
    let ours = m.iter().find(|x| x.3 == "[vdso]").expect("the task has a [vdso]").clone();
    assert_ne!(ours.0, vs, "our vDSO sits at the image's address: no proxy");
    let proxy = m.iter().find(|x| x.0 <= vs && ve <= x.1).expect("the image's vDSO range is mapped");
    assert_eq!((proxy.2.as_str(), proxy.3.as_str()), ("r-xp", ""), "the image's vDSO range: {proxy:?}");
    if let Some((s, e)) = area(mm, VVAR) {
        assert!(m.iter().filter(|x| x.0 < e && s < x.1).all(|x| !x.3.starts_with("[vvar")), "{m:x?}");
    }
    for k in m.iter().filter(|x| matches!(x.3.as_str(), "[vvar]" | "[vvar_vclock]" | "[vdso]")) {
        assert!(mm.vmas.iter().all(|v| k.1 <= v.start || v.end <= k.0), "{k:x?} overlaps a VMA of the image");
    }
    // Every exported function of the image's vDSO jumps into ours, to the
    // function of the same name.
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut proxy_bytes = vec![0u8; (ve - vs) as usize];
    mem.read_exact_at(&mut proxy_bytes, vs).unwrap();
    let mut our_bytes = vec![0u8; (ours.1 - ours.0) as usize];
    mem.read_exact_at(&mut our_bytes, ours.0).unwrap();
    let (_, self_vdso) = our_vdso().unwrap();
    assert_eq!(our_bytes, self_vdso, "the task's [vdso] is not this kernel's");
    let ours_elf = Elf::parse(&our_bytes).unwrap();
    // The jumps went over code only: the ELF tables are the image's.
    let proxy_elf = Elf::parse(&proxy_bytes).unwrap();
    let sym = |elf: &Elf, name: &str| elf.dynsyms.iter().find(|s| elf.dynstrtab.get_at(s.st_name) == Some(name)).map(|s| s.st_value);
    let mut checked = 0;
    for name in ["clock_gettime", "__vdso_clock_gettime", "gettimeofday", "__vdso_gettimeofday", "time", "__vdso_time", "getcpu", "__vdso_getcpu"] {
        let Some(target) = sym(&ours_elf, name) else { continue };
        let at = sym(&proxy_elf, name).unwrap_or_else(|| panic!("the image's vDSO lost {name}"));
        let entry = &proxy_bytes[at as usize..at as usize + 12];
        let mut want = vec![0x48, 0xb8];
        want.extend_from_slice(&(ours.0 + target).to_le_bytes());
        want.extend_from_slice(&[0xff, 0xe0]);
        assert_eq!(entry, want.as_slice(), "{name} at {:#x}", vs + at);
        checked += 1;
    }
    assert!(checked >= 4, "too few vDSO functions found");
    ours.0
}

/// The image's vDSO of a dump made here is this kernel's; changing a
/// note byte makes the restore proxy, and the target keeps checking.
/// Returns (the restored task, our [vdso] start in it, the images dir).
fn restore_with_changed_vdso(tmp: &Path) -> Option<(Restored, u64, PathBuf)> {
    let Some((_, self_vdso)) = our_vdso() else {
        println!("skipped: this kernel gives processes no vDSO");
        return None;
    };
    let (pid, imgs) = dumped_target(tmp);
    let (pages, off, len) = vdso_pages(&imgs, pid);
    let mut img = read_at(&pages, off, len);
    assert_eq!(img, self_vdso, "the dump holds the vDSO whole, as this kernel's");
    let at = harmless_byte(&img);
    img[at] ^= 0x5a;
    write_at(&pages, off + at as u64, &img[at..at + 1]);

    let log = restore(&imgs);
    let task = Restored(pid);
    assert!(log.contains(&format!("task {pid}: its vDSO differs from this kernel's: restored as a proxy")), "{log}");
    let our_at = check_proxy(pid, &mm(&imgs, pid));
    keeps_checking(tmp);
    Some((task, our_at, imgs))
}

#[test]
fn changed_vdso_restores_as_a_proxy() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let Some((task, _, _)) = restore_with_changed_vdso(tmp.path()) else { return };
    drop(task);
}

#[test]
fn proxied_task_dumps_and_restores_again() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let Some((task, our_at, imgs)) = restore_with_changed_vdso(tmp.path()) else { return };
    let pid = task.0;
    let imgs2 = tmp.path().join("imgs2");
    dump(pid, &imgs2);
    kill_and_reap(pid);
    let mm2 = mm(&imgs2, pid);
    // This dump's vDSO is ours, where the proxy restore put it.
    assert_eq!(area(&mm2, VDSO).map(|a| a.0), Some(our_at));
    let log = restore(&imgs2);
    assert!(log.contains(&format!("task {pid}: its vDSO is this kernel's")), "{log}");
    let m = maps(pid);
    assert_eq!(m.iter().find(|x| x.3 == "[vdso]").map(|x| x.0), Some(our_at), "{m:x?}");
    // The old proxy range came back as the ordinary memory it had become.
    let (vs, ve) = area(&mm(&imgs, pid), VDSO).unwrap();
    assert!(m.iter().any(|x| x.0 <= vs && ve <= x.1 && x.2 == "r-xp" && x.3.is_empty()), "{m:x?}");
    keeps_checking(tmp.path());
}

#[test]
fn vdso_function_we_lack_is_refused_by_name() {
    let _g = serial();
    if our_vdso().is_none() {
        println!("skipped: this kernel gives processes no vDSO");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (pid, imgs) = dumped_target(tmp.path());
    let (pages, off, len) = vdso_pages(&imgs, pid);
    let mut img = read_at(&pages, off, len);
    // Rename __vdso_getcpu in the dynamic string table.
    let name = b"\0__vdso_getcpu\0";
    let Some(at) = img.windows(name.len()).position(|w| w == name) else {
        println!("skipped: this kernel's vDSO does not export __vdso_getcpu");
        return;
    };
    img[at + 1] = b'X';
    write_at(&pages, off, &img);
    let o = criu(&["restore", "-d", "-D", imgs.to_str().unwrap(), "-v4", "-o", "restore.log"]);
    let _k = Restored(pid);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("X_vdso_getcpu") && err.contains(&format!("task {pid}")), "{err}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "a task was created: {err}");
    let log = std::fs::read_to_string(imgs.join("restore.log")).unwrap_or_default();
    assert!(!log.contains("forked with their pids"), "{log}");
}
