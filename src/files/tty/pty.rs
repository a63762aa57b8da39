//! Unix98 pty pairs held by the tree (master /dev/ptmx, slave /dev/pts/N):
//! at dump, each end's tty-info record (termios, locked termios, window
//! size, packet mode, lock and exclusive state; a hung-up slave gets a bare
//! record) and the bytes queued towards each end (tty-data.img, only when
//! both ends are in the tree, as CRIU 4.2 does); at restore, a new master
//! with the same index (opened until /dev/ptmx hands it out), its settings,
//! its slaves, the queued bytes written back through the other end, and
//! the lock. A master whose slave was closed comes back with its slave
//! opened and closed again (reads on it give EIO).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use anyhow::{bail, Context, Result};

use crate::images::pb::{TermiosEntry, TtyDataEntry, TtyInfoEntry, TtyPtyEntry, TtyType, WinsizeEntry};
use crate::sys::tty as t;

/// CRIU's tty_info id of a pty end: its index, doubled, plus one for a master.
pub fn info_id(index: u32, master: bool) -> u32 {
    (index << 1) + u32::from(master)
}

/// The most bytes CRIU 4.2 reads from one end (its buffer).
const DATA_MAX: usize = 16384;

/// One pty end found at dump: a copy of the fd, for the queued data.
#[derive(Debug)]
pub struct End {
    /// The task holding it.
    pub pid: i32,
    pub index: u32,
    pub master: bool,
    pub who: String,
    pub fd: OwnedFd,
    pub hung: bool,
    /// A master whose slave was opened and every opening of it closed
    /// (POLLHUP): a lone master the restore makes again.
    pub peer_closed: bool,
}

/// A termios record as CRIU 4.2 writes one: the kernel's settings (no
/// speeds: TCGETS has none), and the control characters packed four to a
/// word, little-endian, in the first 8 of the 19 words (CRIU copies glibc's
/// 32-byte `c_cc` array over the words; it leaves the other 11 words
/// unset, we write 0).
pub fn termios_entry(k: &t::KernelTermios) -> TermiosEntry {
    let mut bytes = [0u8; 32];
    bytes[..k.c_cc.len()].copy_from_slice(&k.c_cc);
    let mut c_cc: Vec<u32> = bytes.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
    c_cc.resize(19, 0);
    TermiosEntry {
        c_iflag: k.c_iflag,
        c_oflag: k.c_oflag,
        c_cflag: k.c_cflag,
        c_lflag: k.c_lflag,
        c_line: u32::from(k.c_line),
        c_ispeed: 0,
        c_ospeed: 0,
        c_cc,
    }
}

/// The kernel termios of a record (the first 19 control characters).
pub fn kernel_termios(e: &TermiosEntry) -> Result<t::KernelTermios> {
    if e.c_cc.len() < 5 {
        bail!("termios record with {} control-character words (CRIU writes 19)", e.c_cc.len());
    }
    let bytes: Vec<u8> = e.c_cc.iter().take(5).flat_map(|w| w.to_le_bytes()).collect();
    let mut k = t::KernelTermios {
        c_iflag: e.c_iflag,
        c_oflag: e.c_oflag,
        c_cflag: e.c_cflag,
        c_lflag: e.c_lflag,
        c_line: e.c_line as u8,
        ..Default::default()
    };
    k.c_cc.copy_from_slice(&bytes[..19]);
    Ok(k)
}

/// The tty-info record of pty end `fd` (index `index`). A hung-up end
/// (its master closed) answers nothing: CRIU records only who it is.
pub fn info(fd: BorrowedFd<'_>, index: u32, master: bool, rdev: u64, dev: u64, uid: u32, gid: u32) -> Result<(TtyInfoEntry, bool)> {
    let mut e = TtyInfoEntry {
        id: info_id(index, master),
        r#type: TtyType::Pty as i32,
        rdev: rdev as u32,
        pty: Some(TtyPtyEntry { index }),
        dev: Some(dev as u32),
        uid: Some(uid),
        gid: Some(gid),
        ..Default::default()
    };
    let termios = match t::termios(fd) {
        Ok(k) => k,
        Err(err) if err.raw_os_error() == Some(libc::EIO) => return Ok((e, true)),
        Err(err) => return Err(err).with_context(|| format!("TCGETS on pty {index}")),
    };
    e.termios = Some(termios_entry(&termios));
    e.termios_locked = Some(termios_entry(&t::locked_termios(fd).with_context(|| format!("TIOCGLCKTRMIOS on pty {index}"))?));
    let w = t::get_winsize(fd).with_context(|| format!("TIOCGWINSZ on pty {index}"))?;
    e.winsize = Some(WinsizeEntry {
        ws_row: u32::from(w.row),
        ws_col: u32::from(w.col),
        ws_xpixel: u32::from(w.xpixel),
        ws_ypixel: u32::from(w.ypixel),
    });
    e.exclusive = t::exclusive(fd).with_context(|| format!("TIOCGEXCL on pty {index}"))?;
    if master {
        e.locked = t::pty_locked(fd).with_context(|| format!("TIOCGPTLCK on pty {index}"))?;
        e.packet_mode = t::packet_mode(fd).with_context(|| format!("TIOCGPKT on pty {index}"))?;
    }
    Ok((e, false))
}

/// A pair that is a session's controlling terminal: (index, session,
/// foreground group), as its master tells.
pub type Ctty = (u32, i32, i32);

/// Checks once every fd is seen: each live end has its peer in the tree
/// (a lone slave only with --shell-job); a pair that is a session's
/// controlling terminal belongs to the tree's root (`root`) as session
/// leader, holding an end of it: the restore makes it the controlling
/// terminal before any other task is forked (they inherit it). Gives
/// those pairs.
pub fn check_pairs(ends: &[End], shell_job: bool, root: Option<i32>) -> Result<Vec<Ctty>> {
    let mut ctty = Vec::new();
    for e in ends.iter().filter(|e| !e.hung) {
        let peer = ends.iter().any(|o| o.index == e.index && o.master != e.master && !o.hung);
        if e.master {
            if !peer && !e.peer_closed {
                bail!("{} is the master of pty {} whose slave is open outside the tree (or was never opened): not supported yet", e.who, e.index);
            }
            if !peer {
                // Its slave closed: what was queued for the master would
                // have to be written back through a slave that is gone.
                // A poll first: it lets the kernel finish moving what the
                // slave wrote into the master's buffer (FIONREAD does not).
                t::hung_up_peer(e.fd.as_fd()).with_context(|| format!("poll on {}", e.who))?;
                let n = t::readable(e.fd.as_fd()).with_context(|| format!("FIONREAD on {}", e.who))?;
                if n > 0 {
                    bail!("{} is the master of pty {} whose slave is closed, with {n} byte(s) still to read: not supported yet", e.who, e.index);
                }
            }
            if let Ok(sid) = t::session(e.fd.as_fd()) {
                if Some(sid) != root || !ends.iter().any(|o| o.index == e.index && o.pid == sid) {
                    bail!(
                        "{}: pty {} is the controlling terminal of session {sid}, whose leader is not the dumped tree's root holding an fd of it: not supported yet",
                        e.who,
                        e.index
                    );
                }
                let pgrp = t::foreground(e.fd.as_fd()).with_context(|| format!("TIOCGPGRP on {}", e.who))?;
                ctty.push((e.index, sid, pgrp));
            }
        } else if !peer && !shell_job {
            bail!("{} is the slave of pty {} whose master is not held by the tree: dump it with --shell-job", e.who, e.index);
        }
    }
    Ok(ctty)
}

/// Bytes waiting to be read on `fd` (non-blocking for the while: the
/// description is the task's). Packet mode is off for the while, so no
/// status byte comes with them.
fn drain(e: &End) -> Result<Vec<u8>> {
    let fd = e.fd.as_fd();
    let fl = crate::sys::fd::get_fl(std::os::fd::AsRawFd::as_raw_fd(&fd)).with_context(|| format!("F_GETFL on {}", e.who))?;
    let pkt = e.master && t::packet_mode(fd).unwrap_or(false);
    if pkt {
        t::set_packet_mode(fd, false).with_context(|| format!("packet mode off on {}", e.who))?;
    }
    crate::sys::fd::set_fl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::O_RDWR | libc::O_NONBLOCK).with_context(|| format!("F_SETFL on {}", e.who))?;
    let mut f = File::from(e.fd.try_clone()?);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let res = loop {
        match f.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() >= DATA_MAX {
                    break Err(anyhow::anyhow!("{}: more than {DATA_MAX} bytes queued on pty {} (CRIU 4.2's limit)", e.who, e.index));
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock || err.raw_os_error() == Some(libc::EIO) => break Ok(()),
            Err(err) => break Err(anyhow::Error::new(err).context(format!("reading the queued bytes of {}", e.who))),
        }
    };
    crate::sys::fd::set_fl(std::os::fd::AsRawFd::as_raw_fd(&fd), fl).with_context(|| format!("F_SETFL back on {}", e.who))?;
    if pkt {
        t::set_packet_mode(fd, true).with_context(|| format!("packet mode back on {}", e.who))?;
    }
    res.map(|()| out)
}

/// Write `data` into `fd` without blocking (what does not fit is an error,
/// naming `what`).
fn put(fd: BorrowedFd<'_>, data: &[u8], what: &str) -> Result<()> {
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let fl = crate::sys::fd::get_fl(raw).with_context(|| format!("F_GETFL on {what}"))?;
    crate::sys::fd::set_fl(raw, fl | libc::O_NONBLOCK).with_context(|| format!("F_SETFL on {what}"))?;
    let mut f = File::from(fd.try_clone_to_owned()?);
    let r = f.write_all(data).with_context(|| format!("{} queued byte(s) don't fit back into {what}", data.len()));
    crate::sys::fd::set_fl(raw, fl).with_context(|| format!("F_SETFL back on {what}"))?;
    r
}

/// The queued bytes of every pair (both ends in the tree): read from each
/// end, then written back through its peer so the tree keeps them.
pub fn queued_data(ends: &[End]) -> Result<Vec<TtyDataEntry>> {
    let mut out = Vec::new();
    for m in ends.iter().filter(|e| e.master && !e.hung) {
        let Some(s) = ends.iter().find(|o| !o.master && !o.hung && o.index == m.index) else { continue };
        let to_master = drain(m)?;
        let to_slave = drain(s)?;
        if !to_master.is_empty() {
            put(s.fd.as_fd(), &to_master, &s.who)?;
            out.push(TtyDataEntry { tty_id: info_id(m.index, true), data: to_master });
        }
        if !to_slave.is_empty() {
            put(m.fd.as_fd(), &to_slave, &m.who)?;
            out.push(TtyDataEntry { tty_id: info_id(m.index, false), data: to_slave });
        }
    }
    Ok(out)
}

/// What a restore keeps per pty index: the master it made and one slave.
#[derive(Debug, Default)]
pub struct Made {
    pub masters: HashMap<u32, OwnedFd>,
    pub slaves: HashMap<u32, OwnedFd>,
}

/// Open /dev/ptmx until it hands out index `index` (the ones before it
/// are free only while we hold them). A taken index is waited for a
/// little (a pty closing as the restore starts), then fails by name.
pub fn open_master(path: &str, index: u32, flags: u32) -> Result<OwnedFd> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match open_master_once(path, index, flags)? {
            Ok(m) => return Ok(m),
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(got) => bail!("pty {index} can't be made again: {path} hands out {got} (the index is taken)"),
        }
    }
}

/// One try: the master, or (Err) the index /dev/ptmx handed out instead.
fn open_master_once(path: &str, index: u32, flags: u32) -> Result<std::result::Result<OwnedFd, u32>> {
    let mut held = Vec::new();
    for _ in 0..32 {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(((flags as i32) & !libc::O_ACCMODE & !libc::O_NONBLOCK) | libc::O_NOCTTY)
            .open(path)
            .with_context(|| format!("can't open {path} for pty {index}"))?;
        let got = t::pty_index(f.as_fd()).with_context(|| format!("TIOCGPTN on a new {path}"))?;
        if got == index {
            return Ok(Ok(f.into()));
        }
        if got > index || index - got >= 32 {
            return Ok(Err(got));
        }
        held.push(f);
    }
    bail!("pty {index} can't be made again: {path} did not hand it out in 32 tries")
}

/// Set a restored pty's settings from its record (through either end).
pub fn set_params(fd: BorrowedFd<'_>, e: &TtyInfoEntry) -> Result<()> {
    let id = e.id;
    if let Some(l) = &e.termios_locked {
        t::set_locked_termios(fd, &kernel_termios(l)?).with_context(|| format!("TIOCSLCKTRMIOS on tty {id:#x}"))?;
    }
    if let Some(k) = &e.termios {
        t::set_termios(fd, &kernel_termios(k)?).with_context(|| format!("TCSETS on tty {id:#x}"))?;
    }
    if let Some(w) = &e.winsize {
        let ws = t::Winsize { row: w.ws_row as u16, col: w.ws_col as u16, xpixel: w.ws_xpixel as u16, ypixel: w.ws_ypixel as u16 };
        t::set_winsize(fd, &ws).with_context(|| format!("TIOCSWINSZ on tty {id:#x}"))?;
    }
    Ok(())
}

/// Open a slave of pty `index` at `path` (never as a controlling
/// terminal), with the mode its path record had and the owner its tty-info
/// record had (devpts gives a new pty to whoever opened /dev/ptmx).
pub fn open_slave(path: &str, index: u32, flags: u32, mode: Option<u32>, owner: Option<(u32, u32)>) -> Result<OwnedFd> {
    let acc = (flags as i32) & libc::O_ACCMODE;
    let f = std::fs::OpenOptions::new()
        .read(acc != libc::O_WRONLY)
        .write(acc != libc::O_RDONLY)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("can't open {path}, the slave of pty {index}"))?;
    if let Some(m) = mode {
        f.set_permissions(std::fs::Permissions::from_mode(m & 0o7777)).with_context(|| format!("chmod {path}"))?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).with_context(|| format!("chown {path} to {uid}:{gid}"))?;
    }
    Ok(f.into())
}

/// In the session's leader, at restore: make pty `index` (a new opening
/// of its slave at `path`) the controlling terminal again.
pub fn take_ctty(path: &str, index: u32) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("can't open {path} to make pty {index} the controlling terminal"))?;
    t::set_ctty(f.as_fd()).with_context(|| format!("TIOCSCTTY on pty {index} in task {}", std::process::id()))
}

/// Write the bytes queued towards one end through the other, non-blocking.
pub fn refill(fd: BorrowedFd<'_>, data: &[u8], what: &str) -> Result<()> {
    put(fd, data, what)
}

/// A lone master whose slave is closed comes back with a slave node devpts
/// makes anew (the restore opens /dev/ptmx as root): its owner and mode
/// must be what that gives (the devpts mount's uid=, gid= and mode=, else
/// root and 0600), or nothing in CRIU's records could make them so.
/// `node` is the slave's path as task `pid` sees it.
pub fn check_closed_slave_node(pid: i32, node: &str, who: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(format!("/proc/{pid}/root{node}")).with_context(|| format!("stat of {node}, the closed slave of {who}"))?;
    let dir = node.rsplit_once('/').map_or("/", |(d, _)| d);
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).with_context(|| format!("reading /proc/{pid}/mountinfo"))?;
    let opts = mountinfo
        .lines()
        .rev()
        .find_map(|l| {
            let (head, tail) = l.split_once(" - ")?;
            let mut tail = tail.split(' ');
            (head.split(' ').nth(4)? == dir && tail.next()? == "devpts").then(|| tail.nth(1).unwrap_or("").to_string())
        })
        .with_context(|| format!("{who}: no devpts mount at {dir} in task {pid}"))?;
    let opt = |k: &str| opts.split(',').find_map(|o| o.strip_prefix(k)).map(str::to_string);
    let want_uid = opt("uid=").and_then(|v| v.parse().ok()).unwrap_or(0);
    let want_gid = opt("gid=").and_then(|v| v.parse().ok()).unwrap_or(0);
    let want_mode = opt("mode=").and_then(|v| u32::from_str_radix(&v, 8).ok()).unwrap_or(0o600);
    let got = (md.uid(), md.gid(), md.mode() & 0o7777);
    if got != (want_uid, want_gid, want_mode) {
        bail!(
            "{who} is a pty master whose slave is closed; the slave's node {node} is {}:{} mode {:o}, a new one would be {want_uid}:{want_gid} mode {want_mode:o}: not supported yet",
            got.0,
            got.1,
            got.2
        );
    }
    Ok(())
}
