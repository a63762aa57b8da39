//! Terminals opened again by their path, as CRIU 4.2's "simple" drivers:
//! /dev/tty (TTY_TYPE CTTY, the caller's controlling terminal), the
//! console (/dev/console, CONSOLE) and the virtual terminals /dev/tty1..63
//! (VT). Each type has one tty-info record (CRIU's fixed ids), holding the
//! terminal's settings, locked settings, window size and exclusive mode;
//! every fd of that type names it. At restore the path is opened again
//! (never as a controlling terminal) and the record's settings are set.
//!
//! What could not come back is refused at dump by fd: a /dev/tty that
//! does not stand for a pty of the tree that is its root's controlling
//! terminal (the restore opens /dev/tty in the root, after giving it that
//! terminal back), nor, with --shell-job, for the terminal of the session
//! outside the tree it runs in (criu's terminal takes its place); a
//! console or vt that is a task's controlling terminal; two vts with
//! different settings (their one record can't hold both).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context, Result};

use super::pty;
use crate::images::pb::{TtyInfoEntry, TtyType, WinsizeEntry};
use crate::sys::tty as t;

/// The path-opened terminal `rdev` is, if it is one.
pub fn type_of(rdev: u64) -> Option<TtyType> {
    match (libc::major(rdev), libc::minor(rdev)) {
        (5, 0) => Some(TtyType::Ctty),
        (5, 1) => Some(TtyType::Console),
        (4, 1..=63) => Some(TtyType::Vt),
        _ => None,
    }
}

/// CRIU's tty-info id of a type (its fixed index, doubled).
pub fn info_id(ty: TtyType) -> u32 {
    match ty {
        TtyType::Console => 1002 << 1,
        TtyType::Vt => 1004 << 1,
        _ => 1006 << 1,
    }
}

/// What a type is, for errors.
pub fn what(ty: TtyType) -> &'static str {
    match ty {
        TtyType::Ctty => "/dev/tty",
        TtyType::Console => "the console",
        _ => "a virtual terminal",
    }
}

/// The tty-info record of `fd` (a terminal of type `ty`, device `rdev` on
/// `dev`, owned by uid:gid), with session and foreground group `sid_pgrp`
/// (those of a task whose controlling terminal it is; 0 otherwise, as
/// CRIU's parasite reads them).
pub fn info(fd: BorrowedFd<'_>, ty: TtyType, rdev: u64, dev: u64, owner: (u32, u32), sid_pgrp: (i32, i32), who: &str) -> Result<TtyInfoEntry> {
    let termios = match t::termios(fd) {
        Ok(k) => k,
        Err(e) if e.raw_os_error() == Some(libc::EIO) => bail!("{who} is {} hung up: not supported yet", what(ty)),
        Err(e) => return Err(e).with_context(|| format!("TCGETS on {who}")),
    };
    let w = t::get_winsize(fd).with_context(|| format!("TIOCGWINSZ on {who}"))?;
    Ok(TtyInfoEntry {
        id: info_id(ty),
        r#type: ty as i32,
        sid: sid_pgrp.0.max(0) as u32,
        pgrp: sid_pgrp.1.max(0) as u32,
        rdev: rdev as u32,
        dev: Some(dev as u32),
        uid: Some(owner.0),
        gid: Some(owner.1),
        exclusive: t::exclusive(fd).with_context(|| format!("TIOCGEXCL on {who}"))?,
        termios: Some(pty::termios_entry(&termios)),
        termios_locked: Some(pty::termios_entry(&t::locked_termios(fd).with_context(|| format!("TIOCGLCKTRMIOS on {who}"))?)),
        winsize: Some(WinsizeEntry {
            ws_row: u32::from(w.row),
            ws_col: u32::from(w.col),
            ws_xpixel: u32::from(w.xpixel),
            ws_ypixel: u32::from(w.ypixel),
        }),
        ..Default::default()
    })
}

/// Whether two records of one type hold the same terminal state (all a
/// restore sets from the one record).
pub fn same_state(a: &TtyInfoEntry, b: &TtyInfoEntry) -> bool {
    (&a.termios, &a.termios_locked, &a.winsize, a.exclusive) == (&b.termios, &b.termios_locked, &b.winsize, b.exclusive)
}

/// Open a path-opened terminal at `path` with status flags `flags` (never
/// as a controlling terminal) and set what record `info` holds.
pub fn open(path: &str, flags: u32, info: &TtyInfoEntry) -> Result<OwnedFd> {
    let acc = (flags as i32) & libc::O_ACCMODE;
    let f = std::fs::OpenOptions::new()
        .read(acc != libc::O_WRONLY)
        .write(acc != libc::O_RDONLY)
        .custom_flags(((flags as i32) & !libc::O_ACCMODE & !libc::O_CREAT) | libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("can't open {path} ({})", what(ty_of(info))))?;
    let fd: OwnedFd = f.into();
    pty::set_params(fd.as_fd(), info).with_context(|| format!("the settings of {path}"))?;
    if info.exclusive {
        t::set_exclusive(fd.as_fd()).with_context(|| format!("TIOCEXCL on {path}"))?;
    }
    Ok(fd)
}

fn ty_of(info: &TtyInfoEntry) -> TtyType {
    TtyType::try_from(info.r#type).unwrap_or(TtyType::Ctty)
}
