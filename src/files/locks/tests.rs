//! The lock lines, and a round trip of this process's own locks: dumped
//! through the fd table into filelocks.img, the files closed (their locks
//! go), opened again at the same numbers, the locks taken back from the
//! image, and dumped again to the same records.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::*;
use crate::files::fds::{self, Fds};
use crate::files::FileTable;

#[test]
fn parses_fdinfo_lock_lines() {
    let l = parse("1: POSIX  ADVISORY  WRITE 7934 fe:00:10011345 10 29").unwrap();
    assert_eq!(l, Line { kind: FL_POSIX, ltype: 1, pid: 7934, dev: "fe:00".into(), ino: 10011345, start: 10, len: 20 });
    let l = parse("2: OFDLCK ADVISORY  READ -1 fe:00:10011361 30 32").unwrap();
    assert_eq!((l.kind, l.ltype, l.pid, l.start, l.len), (FL_OFD, 0, -1, 30, 3));
    let l = parse("1: FLOCK  ADVISORY  WRITE 7934 fe:00:10011313 0 EOF").unwrap();
    assert_eq!((l.kind, l.ltype, l.len), (FL_FLOCK, 1, 0));
    let l = parse("1: LEASE  BREAKING  UNLCK 7934 fe:00:10011643 0 EOF").unwrap();
    assert_eq!((l.kind, l.ltype), (FL_LEASE, LEASE_BREAKING | 2));
    let l = parse("1: LEASE  BREAKING  READ 7934 fe:00:10011644 0 EOF").unwrap();
    assert_eq!((l.kind, l.ltype), (FL_LEASE, LEASE_BREAKING));
    let l = parse("1: LEASE  ACTIVE    READ 7934 fe:00:10011377 0 EOF").unwrap();
    assert_eq!((l.kind, l.ltype), (FL_LEASE, 0));
    assert!(parse("1: DELEG  ACTIVE    READ 7934 fe:00:1 0 EOF").unwrap_err().to_string().contains("DELEG"));
    assert!(parse("1: POSIX  ADVISORY  WRITE x fe:00:1 0 EOF").is_err());
}

/// The file opened at a number from 950 up (so that, closed and opened
/// again, it gets its number back without racing the other tests' fds).
fn open(path: &std::path::Path, write: bool) -> OwnedFd {
    let f = std::fs::OpenOptions::new().read(true).write(write).open(path).expect("open a test file");
    crate::sys::fd::dup_cloexec_from(&f, 950).expect("a high fd")
}

fn dump(list: &[i32]) -> (Vec<FdinfoEntry>, Fds, FileTable) {
    let me = std::process::id() as i32;
    let stat = crate::proc::stat::read(me).expect("our stat");
    let (mut out, mut files) = (Fds::default(), FileTable::new());
    out.file_locks = true;
    let infos = fds::dump_fds(me, list, &mut out, &mut files, &stat, false).expect("dumping our fds");
    (infos, out, files)
}

/// Without --file-locks, a lock is refused by name.
#[test]
fn refused_without_file_locks() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f");
    std::fs::write(&p, b"data").unwrap();
    let f = std::fs::File::open(&p).unwrap();
    sys::flock(f.as_fd(), libc::LOCK_SH).unwrap();
    let me = std::process::id() as i32;
    let stat = crate::proc::stat::read(me).unwrap();
    let err = fds::dump_fds(me, &[f.as_raw_fd()], &mut Fds::default(), &mut FileTable::new(), &stat, false).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&format!("fd {} ({}) of task {me} holds a file lock", f.as_raw_fd(), p.display())) && msg.contains("--file-locks"), "{msg}");
}

#[test]
fn round_trip() {
    if std::fs::read_to_string("/proc/sys/fs/leases-enable").is_ok_and(|v| v.trim() == "0") {
        eprintln!("skipped: leases are disabled (fs.leases-enable = 0)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = |n: &str| {
        let p = tmp.path().join(n);
        std::fs::write(&p, vec![b'x'; 100]).unwrap();
        p
    };
    let (pf, pp, po, pl) = (path("flock"), path("posix"), path("ofd"), path("lease"));
    let (ff, fp, fo, fl) = (open(&pf, true), open(&pp, true), open(&po, true), open(&pl, false));
    sys::flock(ff.as_fd(), libc::LOCK_EX | libc::LOCK_NB).unwrap();
    for (ty, start, len) in [(libc::F_WRLCK, 10, 20), (libc::F_RDLCK, 50, 0)] {
        sys::fcntl_lock(fp.as_fd(), libc::F_SETLK, &mut sys::record(ty, start, len)).unwrap();
    }
    for (ty, start, len) in [(libc::F_WRLCK, 5, 7), (libc::F_RDLCK, 30, 3)] {
        sys::fcntl_lock(fo.as_fd(), libc::F_OFD_SETLK, &mut sys::record(ty, start, len)).unwrap();
    }
    sys::set_lease(fl.as_fd(), libc::F_RDLCK).unwrap();
    let raw: Vec<i32> = [&ff, &fp, &fo, &fl].iter().map(|f| f.as_raw_fd()).collect();

    let (infos, out, files) = dump(&raw);
    let before: Vec<FileLockEntry> = out.state.get::<Dumped>().expect("locks recorded").entries().cloned().collect();
    let me = std::process::id() as i32;
    let want = |flag, ty, fd, start, len| FileLockEntry { flag, r#type: ty, pid: me, fd, start, len };
    assert_eq!(
        before,
        vec![
            want(FL_FLOCK, 1, raw[0], 0, 0),
            want(FL_POSIX, 1, raw[1], 10, 20),
            want(FL_POSIX, 0, raw[1], 50, 0),
            want(FL_OFD, 1, raw[2], 5, 7),
            want(FL_OFD, 0, raw[2], 30, 3),
            want(FL_LEASE, 0, raw[3], 0, 0),
        ]
    );
    let imgdir = tempfile::tempdir().unwrap();
    let dir = ImageDir::open(imgdir.path()).unwrap();
    files.write(&dir).unwrap();
    fds::write_images(&out, &dir).unwrap();
    assert!(dir.exists("filelocks.img"));
    drop((ff, fp, fo, fl));
    // The locks went with the files, once no child forked meanwhile by a
    // test running in parallel holds a copy of their descriptions.
    wait_unlocked(&[&pf, &pp, &po, &pl]);
    let probe = open(&pp, true);
    sys::fcntl_lock(probe.as_fd(), libc::F_OFD_SETLK, &mut sys::record(libc::F_WRLCK, 0, 0)).expect("nothing locked any more");
    drop(probe);

    let imgs = crate::files::Images::load(&dir).unwrap();
    assert_eq!(imgs.state.get::<Loaded>().map(|l| l.0.clone()), Some(before.clone()));
    let mut opened = crate::files::restore::open(&infos, &imgs, &[], false, &[me]).unwrap();
    for fi in &infos {
        let f = opened.take(fi.id).expect("an fd per record");
        crate::sys::fd::dup_to(f.as_fd(), fi.fd as i32, true).expect("the fd at its number again");
    }
    restore(me, &infos, &imgs).expect("taking the locks again");
    let (_, again, _) = dump(&raw);
    let after: Vec<FileLockEntry> = again.state.get::<Dumped>().expect("locks again").entries().cloned().collect();
    for fd in &raw {
        let _ = nix::unistd::close(*fd);
    }
    assert_eq!(after, before);
}

/// Wait (up to 10 s) until /proc/locks lists no lock on any of `paths`.
fn wait_unlocked(paths: &[&std::path::Path]) {
    use std::os::unix::fs::MetadataExt;
    let inos: Vec<String> = paths.iter().map(|p| format!(":{} ", std::fs::metadata(p).expect("a test file").ino())).collect();
    let t0 = std::time::Instant::now();
    loop {
        let locks = std::fs::read_to_string("/proc/locks").expect("/proc/locks");
        if !locks.lines().any(|l| inos.iter().any(|i| l.contains(i.as_str()))) {
            return;
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "locks still held after the files were closed:\n{locks}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// An image naming an fd the task lacks is an error naming both.
#[test]
fn restore_names_a_missing_fd() {
    let me = std::process::id() as i32;
    let mut imgs = Images::default();
    imgs.state.get_mut::<Loaded>().0 = vec![FileLockEntry { flag: FL_FLOCK, r#type: 1, pid: me, fd: 999, start: 0, len: 0 }];
    let err = format!("{:#}", restore(me, &[], &imgs).unwrap_err());
    assert!(err.contains("filelocks.img") && err.contains(&format!("task {me} on fd 999")), "{err}");
    restore(me + 1, &[], &imgs).expect("another task's locks are not ours");
    check(&imgs, &[me, me + 1]).expect("a task of the tree");
    let err = format!("{:#}", check(&imgs, &[me + 1]).unwrap_err());
    assert!(err.contains(&format!("of task {me} on fd 999: no such task")), "{err}");
}
