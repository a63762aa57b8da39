use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::{pty, TtyInfos};
use crate::sys::tty as t;

#[test]
fn termios_as_criu_packs_it() {
    let mut k = t::KernelTermios { c_iflag: 1280, c_oflag: 5, c_cflag: 191, c_lflag: 35387, ..Default::default() };
    k.c_cc[..12].copy_from_slice(&[3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0]);
    k.c_cc[12..17].copy_from_slice(&[18, 15, 23, 22, 0]);
    let e = pty::termios_entry(&k);
    // The words CRIU 4.2 wrote for the same terminal (/dev/pts/0 of a fresh openpty).
    assert_eq!(&e.c_cc[..8], &[360651779, 65540, 1708817, 370609938, 0, 0, 0, 0]);
    assert_eq!(e.c_cc.len(), 19);
    assert_eq!((e.c_ispeed, e.c_ospeed), (0, 0));
    assert_eq!(pty::kernel_termios(&e).unwrap(), k);
    assert_eq!((pty::info_id(0, false), pty::info_id(3, true)), (0, 7));
}

/// The tests make ptys one at a time: a restore needs its index free.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn openpty() -> Option<(OwnedFd, OwnedFd)> {
    let m: OwnedFd = std::fs::OpenOptions::new().read(true).write(true).open("/dev/ptmx").ok()?.into();
    t::set_pty_locked(m.as_fd(), false).ok()?;
    let n = t::pty_index(m.as_fd()).ok()?;
    let s = super::pty::open_slave(&format!("/dev/pts/{n}"), n, libc::O_RDWR as u32, None, None).ok()?;
    Some((m, s))
}

/// A pair with raw settings, a window size and bytes queued both ways
/// comes back the same pair (same index) with all of it.
#[test]
fn pty_pair_round_trip() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((m, s)) = openpty() else {
        eprintln!("skipped: no /dev/ptmx to open a pty here");
        return;
    };
    let index = t::pty_index(m.as_fd()).unwrap();
    let mut k = t::termios(s.as_fd()).unwrap();
    k.c_lflag &= !(libc::ECHO | libc::ICANON);
    k.c_oflag &= !libc::OPOST;
    t::set_termios(s.as_fd(), &k).unwrap();
    let ws = t::Winsize { row: 33, col: 77, xpixel: 5, ypixel: 6 };
    t::set_winsize(m.as_fd(), &ws).unwrap();
    std::fs::File::from(m.try_clone().unwrap()).write_all(b"to-slave").unwrap();
    std::fs::File::from(s.try_clone().unwrap()).write_all(b"to-master").unwrap();
    let list = [m.as_raw_fd(), s.as_raw_fd()];
    let (before, back, after) = crate::files::round_trip::run_with(&list, move || drop((m, s)));
    let infos = |d: &crate::files::round_trip::Dumped| d.fds.state.get::<TtyInfos>().unwrap().infos.clone();
    let data = |d: &crate::files::round_trip::Dumped| {
        let mut v: Vec<_> = d.fds.state.get::<TtyInfos>().unwrap().data.iter().map(|e| (e.tty_id, e.data.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(data(&before), vec![(pty::info_id(index, false), b"to-slave".to_vec()), (pty::info_id(index, true), b"to-master".to_vec())]);
    assert_eq!(data(&after), data(&before));
    let strip = |mut v: Vec<crate::images::pb::TtyInfoEntry>| {
        for e in &mut v {
            e.dev = None; // devpts vs /dev: the same either side, but not the point
        }
        v
    };
    assert_eq!(strip(infos(&after)), strip(infos(&before)));
    assert_eq!(t::pty_index(back[0].as_fd()).unwrap(), index);
    assert_eq!(t::get_winsize(back[1].as_fd()).unwrap(), ws);
    let mut buf = [0u8; 64];
    let n = std::fs::File::from(back[1].try_clone().unwrap()).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to-slave");
    let n = std::fs::File::from(back[0].try_clone().unwrap()).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to-master");
}

/// A slave whose master was closed comes back hung up, with a bare record.
#[test]
fn hung_slave_round_trip() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((m, s)) = openpty() else {
        eprintln!("skipped: no /dev/ptmx to open a pty here");
        return;
    };
    drop(m);
    let list = [s.as_raw_fd()];
    let (before, back, after) = crate::files::round_trip::run_with(&list, move || drop(s));
    let infos = |d: &crate::files::round_trip::Dumped| d.fds.state.get::<TtyInfos>().unwrap().infos.clone();
    assert!(infos(&before)[0].termios.is_none());
    assert!(infos(&after)[0].termios.is_none());
    assert_eq!(t::termios(back[0].as_fd()).unwrap_err().raw_os_error(), Some(libc::EIO));
}

/// A master whose slave is outside the tree is refused by name.
#[test]
fn lone_master_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((m, s)) = openpty() else {
        eprintln!("skipped: no /dev/ptmx to open a pty here");
        return;
    };
    let ends = [pty::End { pid: 1, index: t::pty_index(m.as_fd()).unwrap(), master: true, who: "fd 3 of task 1".into(), fd: m, hung: false, peer_closed: false }];
    let err = pty::check_pairs(&ends, false, Some(1)).unwrap_err().to_string();
    assert!(err.contains("fd 3 of task 1 is the master of pty"), "{err}");
    drop(s);
}

/// A master whose slave was closed comes back so: its slave opened and
/// closed again, poll says hang-up and reads give EIO.
#[test]
fn closed_slave_master_round_trip() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((m, s)) = openpty() else {
        eprintln!("skipped: no /dev/ptmx to open a pty here");
        return;
    };
    drop(s);
    assert!(t::hung_up_peer(m.as_fd()).unwrap());
    let index = t::pty_index(m.as_fd()).unwrap();
    let list = [m.as_raw_fd()];
    let (before, back, after) = crate::files::round_trip::run_with(&list, move || drop(m));
    let infos = |d: &crate::files::round_trip::Dumped| d.fds.state.get::<TtyInfos>().unwrap().infos.clone();
    assert_eq!(infos(&after), infos(&before));
    assert_eq!(t::pty_index(back[0].as_fd()).unwrap(), index);
    assert!(t::hung_up_peer(back[0].as_fd()).unwrap(), "the restored master is not hung up");
    let err = std::fs::File::from(back[0].try_clone().unwrap()).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
}

/// A lone master whose closed slave left bytes to read is refused by name.
#[test]
fn closed_slave_master_with_bytes_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((m, s)) = openpty() else {
        eprintln!("skipped: no /dev/ptmx to open a pty here");
        return;
    };
    std::fs::File::from(s).write_all(b"left").unwrap();
    let index = t::pty_index(m.as_fd()).unwrap();
    let ends = [pty::End { pid: 1, index, master: true, who: "fd 3 of task 1".into(), fd: m, hung: false, peer_closed: true }];
    let err = pty::check_pairs(&ends, false, Some(1)).unwrap_err().to_string();
    assert!(err.contains("fd 3 of task 1") && err.contains("still to read"), "{err}");
}

/// Open `path` (a terminal of the machine), or say why the test skips.
fn open_terminal(path: &str, flags: i32) -> Option<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let acc = flags & libc::O_ACCMODE;
    match std::fs::OpenOptions::new()
        .read(acc != libc::O_WRONLY)
        .write(acc != libc::O_RDONLY)
        .custom_flags((flags & !libc::O_ACCMODE) | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => Some(f.into()),
        Err(e) => {
            eprintln!("skipped: can't open {path} here: {e}");
            None
        }
    }
}

/// The console comes back as /dev/console with its flags and one CONSOLE
/// record (CRIU's id 2004) holding its settings.
#[test]
fn console_round_trip() {
    let Some(c) = open_terminal("/dev/console", libc::O_RDWR | libc::O_NONBLOCK) else { return };
    let (before, back, after) = crate::files::round_trip::run(&[c.as_raw_fd()]);
    let infos = |d: &crate::files::round_trip::Dumped| d.fds.state.get::<TtyInfos>().unwrap().infos.clone();
    assert_eq!(infos(&before).len(), 1);
    assert_eq!((infos(&before)[0].id, infos(&before)[0].r#type), (2004, crate::images::pb::TtyType::Console as i32));
    assert_eq!(infos(&after), infos(&before));
    let md = std::fs::File::from(back[0].try_clone().unwrap()).metadata().unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(md.rdev(), libc::makedev(5, 1));
    assert_eq!(t::real_device(back[0].as_fd()).unwrap(), t::real_device(c.as_fd()).unwrap());
    let fl = crate::sys::fd::get_fl(back[0].as_raw_fd()).unwrap();
    assert_eq!(fl & (libc::O_ACCMODE | libc::O_NONBLOCK), libc::O_RDWR | libc::O_NONBLOCK);
    assert_eq!(before.entries[0].tty.as_ref().unwrap().tty_info_id, 2004);
}

/// Two vts with the same settings share CRIU's one VT record (id 2008) and
/// each comes back as itself; vts whose settings differ are refused.
#[test]
fn vt_round_trip() {
    let Some(a) = open_terminal("/dev/tty11", libc::O_RDWR) else { return };
    let Some(b) = open_terminal("/dev/tty12", libc::O_RDONLY | libc::O_NONBLOCK) else { return };
    // Both with the same odd interrupt character; the restore sets it back
    // after it changed on tty11 in between (a vt outlives its fds). Their
    // settings are put back as they were at the end.
    let orig = [t::termios(a.as_fd()).unwrap(), t::termios(b.as_fd()).unwrap()];
    for f in [&a, &b] {
        let mut k = t::termios(f.as_fd()).unwrap();
        k.c_cc[libc::VINTR] = 0x07;
        t::set_termios(f.as_fd(), &k).unwrap();
    }
    let a2 = a.try_clone().unwrap();
    let (before, back, after) = crate::files::round_trip::run_with(&[a.as_raw_fd(), b.as_raw_fd()], move || {
        let mut k = t::termios(a2.as_fd()).unwrap();
        k.c_cc[libc::VINTR] = 0x03;
        t::set_termios(a2.as_fd(), &k).unwrap();
    });
    assert_eq!(t::termios(back[0].as_fd()).unwrap().c_cc[libc::VINTR], 0x07, "the vt's settings were not set back");
    let infos = |d: &crate::files::round_trip::Dumped| d.fds.state.get::<TtyInfos>().unwrap().infos.clone();
    assert_eq!(infos(&before).len(), 1);
    assert_eq!((infos(&before)[0].id, infos(&before)[0].r#type), (2008, crate::images::pb::TtyType::Vt as i32));
    assert_eq!(infos(&after), infos(&before));
    use std::os::unix::fs::MetadataExt;
    for (f, n) in back.iter().zip([11, 12]) {
        assert_eq!(std::fs::File::from(f.try_clone().unwrap()).metadata().unwrap().rdev(), libc::makedev(4, n));
    }
    let fl = crate::sys::fd::get_fl(back[1].as_raw_fd()).unwrap();
    assert_eq!(fl & (libc::O_ACCMODE | libc::O_NONBLOCK), libc::O_RDONLY | libc::O_NONBLOCK);
    // tty12 with another interrupt character: the one record can't hold both.
    let mut k = t::termios(b.as_fd()).unwrap();
    k.c_cc[libc::VINTR] ^= 0x10;
    t::set_termios(b.as_fd(), &k).unwrap();
    let me = std::process::id() as i32;
    let stat = crate::proc::stat::read(me).unwrap();
    let (mut out, mut files) = (crate::files::fds::Fds::default(), crate::files::FileTable::new());
    let err = crate::files::fds::dump_fds(me, &[a.as_raw_fd(), b.as_raw_fd()], &mut out, &mut files, &stat, false).unwrap_err();
    for (f, k) in [&a, &b].into_iter().zip(&orig) {
        t::set_termios(f.as_fd(), k).unwrap();
    }
    let msg = format!("{err:#}");
    assert!(msg.contains(&format!("fd {} of task {me}", b.as_raw_fd())) && msg.contains("settings differ"), "{msg}");
}

/// Set when the test runs again as the leader of a session of its own.
const CTTY_INNER: &str = "CRIU_TEST_TTY_CTTY_INNER";

/// /dev/tty in a session leader whose controlling terminal is a pty it
/// holds both ends of: one CTTY record (CRIU's id 2012) with the session,
/// and the restored fd is /dev/tty standing for the remade pty, which is
/// the session's terminal again. Without the pair in the dump, /dev/tty
/// is refused by fd. Runs in a new session: this test binary again under
/// setsid(1).
#[test]
fn ctty_round_trip() {
    if std::env::var_os(CTTY_INNER).is_some() {
        return ctty_inner();
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().unwrap();
    let out = match std::process::Command::new("setsid")
        .arg("-w")
        .arg(exe)
        .args(["--exact", "files::tty::tests::ctty_round_trip", "--nocapture", "--test-threads=1"])
        .env(CTTY_INNER, "1")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: can't run setsid(1) here: {e}");
            return;
        }
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the run in a session of its own failed:\n{text}");
    assert!(text.contains("1 passed"), "the inner run did not run the test:\n{text}");
    if let Some(l) = text.lines().find(|l| l.starts_with("skipped:")) {
        eprintln!("{l}");
    }
}

fn ctty_inner() {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id() as i32;
    assert_eq!(nix::unistd::getsid(None).unwrap().as_raw(), me, "not a session leader");
    // Closing the originals hangs the session up (as a dump's kill does).
    t::ignore_hangups();
    let Some((m, s)) = openpty() else {
        eprintln!("skipped: no /dev/ptmx to open a pty here");
        return;
    };
    t::set_ctty(s.as_fd()).expect("TIOCSCTTY");
    let tty: OwnedFd = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").expect("/dev/tty").into();
    let mut k = t::termios(tty.as_fd()).unwrap();
    k.c_cc[libc::VINTR] = 0x07;
    t::set_termios(tty.as_fd(), &k).unwrap();
    let slave_dev = std::fs::File::from(s.try_clone().unwrap()).metadata().unwrap().rdev();

    // /dev/tty without its pty: refused, naming the fd.
    let stat = crate::proc::stat::read(me).unwrap();
    let (mut out, mut files) = (crate::files::fds::Fds::default(), crate::files::FileTable::new());
    crate::files::fds::dump_fds(me, &[tty.as_raw_fd()], &mut out, &mut files, &stat, false).unwrap();
    let err = crate::files::fds::dumped_all(&mut out, &mut files, &format!("the test, task {me}")).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&format!("fd {} of task {me} is /dev/tty", tty.as_raw_fd())), "{msg}");

    let list = [m.as_raw_fd(), s.as_raw_fd(), tty.as_raw_fd()];
    let (before, back, after) = crate::files::round_trip::run_with(&list, move || drop((m, s, tty)));
    let infos = |d: &crate::files::round_trip::Dumped| d.fds.state.get::<TtyInfos>().unwrap().infos.clone();
    let ctty = infos(&before).into_iter().find(|i| i.id == 2012).expect("a CTTY record");
    assert_eq!((ctty.r#type, ctty.sid, ctty.rdev), (crate::images::pb::TtyType::Ctty as i32, me as u32, libc::makedev(5, 0) as u32));
    assert_eq!(infos(&after), infos(&before));
    let md = std::fs::File::from(back[2].try_clone().unwrap()).metadata().unwrap();
    assert_eq!(md.rdev(), libc::makedev(5, 0));
    assert_eq!(t::real_device(back[2].as_fd()).unwrap(), slave_dev);
    assert_eq!(t::session(back[2].as_fd()).unwrap(), me);
    assert_eq!(t::termios(back[2].as_fd()).unwrap().c_cc[libc::VINTR], 0x07);
}
