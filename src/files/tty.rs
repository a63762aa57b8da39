//! Terminals. A dump with --shell-job records the task's terminal fds as
//! CRIU does for an external pty (tty_file_entry pointing at a tty_info
//! record in tty-info.img, plus a regular-file record of its path); a
//! restore with --shell-job connects those fds to the terminal criu runs
//! on (its stdin), so the job comes back on the caller's terminal.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use super::{reg, FileTable};
use crate::images::pb::{
    FdTypes, FileEntry, FownEntry, TermiosEntry, TtyFileEntry, TtyInfoEntry, TtyPtyEntry, TtyType, WinsizeEntry,
};
use crate::proc::stat::Stat;

/// Is this character device a terminal (tty, pty, console)?
pub fn is_tty(rdev: u64) -> bool {
    matches!(libc::major(rdev), 4 | 5 | 136..=143)
}

fn termios(f: &File) -> Option<TermiosEntry> {
    let t = nix::sys::termios::tcgetattr(f.as_fd()).ok()?;
    let raw: libc::termios = t.into();
    Some(TermiosEntry {
        c_iflag: raw.c_iflag,
        c_oflag: raw.c_oflag,
        c_cflag: raw.c_cflag,
        c_lflag: raw.c_lflag,
        c_line: u32::from(raw.c_line),
        c_ispeed: raw.c_ispeed,
        c_ospeed: raw.c_ospeed,
        c_cc: raw.c_cc.iter().map(|c| u32::from(*c)).collect(),
    })
}

/// Terminal records of a dump (tty-info.img entries).
#[derive(Debug, Default)]
pub struct TtyInfos {
    pub infos: Vec<TtyInfoEntry>,
}

/// Record fd `fd` of `pid`, a terminal, under file id `id`. Needs
/// --shell-job: the terminal belongs to whoever started the task.
pub fn dump(
    pid: i32,
    fd: i32,
    id: u32,
    link: &str,
    flags: u32,
    stat: &Stat,
    shell_job: bool,
    files: &mut FileTable,
    infos: &mut TtyInfos,
) -> Result<()> {
    if !shell_job {
        bail!("fd {fd} of task {pid} is a terminal ({link}): dump it with --shell-job");
    }
    let path = format!("/proc/{pid}/fd/{fd}");
    let f = File::open(&path).with_context(|| format!("can't open the terminal of fd {fd} of {pid}"))?;
    let md = f.metadata()?;
    let rdev = md.rdev();
    let index = link.strip_prefix("/dev/pts/").and_then(|n| n.parse().ok());
    let Some(index) = index else {
        bail!("fd {fd} of task {pid} is a terminal other than a pty ({link}): not supported yet");
    };
    let info_id = match infos.infos.iter().find(|i| u64::from(i.rdev) == rdev) {
        Some(i) => i.id,
        None => {
            let id = files.alloc_id();
            let ctty = u64::from(stat.tty_nr) == rdev;
            let ws = crate::sys::tty::get_winsize(f.as_fd()).ok();
            infos.infos.push(TtyInfoEntry {
                id,
                r#type: TtyType::Pty as i32,
                locked: false,
                exclusive: false,
                packet_mode: false,
                sid: if ctty { stat.sid as u32 } else { 0 },
                pgrp: if ctty { stat.tpgid.max(0) as u32 } else { 0 },
                rdev: rdev as u32,
                termios: termios(&f),
                termios_locked: None,
                winsize: ws.map(|w| WinsizeEntry {
                    ws_row: u32::from(w.row),
                    ws_col: u32::from(w.col),
                    ws_xpixel: u32::from(w.xpixel),
                    ws_ypixel: u32::from(w.ypixel),
                }),
                pty: Some(TtyPtyEntry { index }),
                dev: Some(md.dev() as u32),
                uid: Some(md.uid()),
                gid: Some(md.gid()),
            });
            id
        }
    };
    // The path, for tools and for a restore without a terminal of its own.
    let regf_id = files.alloc_id();
    files.push_reg(reg::entry(regf_id, link, &f, flags, 0)?);
    files.push(FileEntry {
        r#type: FdTypes::Tty as i32,
        id,
        tty: Some(TtyFileEntry { id, tty_info_id: info_id, flags, fown: FownEntry::default(), regf_id: Some(regf_id) }),
        ..Default::default()
    });
    Ok(())
}

/// The terminal a --shell-job restore hands to the task: criu's stdin, if
/// it is a terminal.
pub fn our_terminal() -> Result<File> {
    let f = File::options()
        .read(true)
        .write(true)
        .open("/proc/self/fd/0")
        .context("can't reopen our stdin for the task's terminal")?;
    if !is_tty(f.metadata()?.rdev()) || !nix::unistd::isatty(f.as_fd()).unwrap_or(false) {
        bail!("the task used a terminal: run criu restore --shell-job on a terminal (its stdin is not one)");
    }
    Ok(f)
}
