//! Terminals. A dump with --shell-job records the task's terminal fds as
//! CRIU does for an external pty (tty_file_entry pointing at a tty_info
//! record in tty-info.img, plus a regular-file record of its path); a
//! restore with --shell-job connects those fds to the terminal criu runs
//! on (its stdin), so the job comes back on the caller's terminal.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx, State};
use super::{reg, FileTable};
use crate::images::kind::kinds;
use crate::images::pb::{
    FdTypes, FileEntry, FownEntry, TermiosEntry, TtyFileEntry, TtyInfoEntry, TtyPtyEntry, TtyType, WinsizeEntry,
};
use crate::images::{ImageDir, ImageWriter};
use crate::proc::stat::Stat;

/// The terminal kind (FD_TYPES TTY).
pub struct Tty;

impl FdKind for Tty {
    fn name(&self) -> &'static str {
        "terminal"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Tty
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_char_device() && is_tty(p.md.rdev())
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let t = TtyFd { pid: p.pid, fd: p.fd, id, link: p.link, flags: p.flags };
        dump(&t, cx.stat, cx.shell_job, cx.files, cx.fds.state.get_mut::<TtyInfos>())
    }

    fn write_images(&self, st: &State, dir: &ImageDir) -> Result<()> {
        let Some(t) = st.get::<TtyInfos>().filter(|t| !t.infos.is_empty()) else { return Ok(()) };
        let mut w = ImageWriter::create(dir, "tty-info.img", kinds::tty_info())?;
        for e in &t.infos {
            w.write(e)?;
        }
        w.finish()?;
        Ok(())
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.tty.as_ref().map(|t| t.flags)
    }

    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        if !cx.shell_job {
            bail!("fd {fd} is the task's terminal: restore it with --shell-job");
        }
        fe.tty.as_ref().with_context(|| format!("file {} has no tty entry", fe.id))?;
        Ok(Some(our_terminal()?.into()))
    }

    fn companions(&self, fe: &FileEntry) -> Vec<u32> {
        // The path record: the terminal comes from criu (--shell-job).
        fe.tty.as_ref().and_then(|t| t.regf_id).into_iter().collect()
    }
}

/// Is this character device a terminal (tty, pty, console)?
pub fn is_tty(rdev: u64) -> bool {
    matches!(libc::major(rdev), 4 | 5 | 136..=143)
}

/// How many `c_cc` words a termios record holds (CRIU's TERMIOS_NCC).
const TERMIOS_NCC: usize = 19;
/// How many control-character bytes CRIU packs into them (glibc's NCCS).
const CC_BYTES: usize = 32;

/// A termios record as CRIU 4.2 writes one: the kernel's settings (no
/// speeds: TCGETS has none), and the control characters packed four to a
/// word, little-endian, in the first 8 of the 19 words (CRIU copies glibc's
/// 32-byte `c_cc` array over the words; it leaves the other 11 words
/// unset, we write 0).
fn termios_entry(t: &crate::sys::tty::KernelTermios) -> TermiosEntry {
    let mut bytes = [0u8; CC_BYTES];
    bytes[..t.c_cc.len()].copy_from_slice(&t.c_cc);
    let mut c_cc: Vec<u32> = bytes.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
    c_cc.resize(TERMIOS_NCC, 0);
    TermiosEntry {
        c_iflag: t.c_iflag,
        c_oflag: t.c_oflag,
        c_cflag: t.c_cflag,
        c_lflag: t.c_lflag,
        c_line: u32::from(t.c_line),
        c_ispeed: 0,
        c_ospeed: 0,
        c_cc,
    }
}

/// CRIU's tty_info id of a pty: its index, doubled, plus one for a master.
fn info_id(index: u32, master: bool) -> u32 {
    (index << 1) + u32::from(master)
}

/// Terminal records of a dump (tty-info.img entries).
#[derive(Debug, Default)]
pub struct TtyInfos {
    pub infos: Vec<TtyInfoEntry>,
}

/// A terminal fd being dumped: fd `fd` of `pid`, its /proc link and open
/// flags, under file id `id`.
pub struct TtyFd<'a> {
    pub pid: i32,
    pub fd: i32,
    pub id: u32,
    pub link: &'a str,
    pub flags: u32,
}

/// Record a terminal fd. Needs --shell-job: the terminal belongs to
/// whoever started the task.
pub fn dump(t: &TtyFd, stat: &Stat, shell_job: bool, files: &mut FileTable, infos: &mut TtyInfos) -> Result<FileEntry> {
    let TtyFd { pid, fd, id, link, flags } = *t;
    if !shell_job {
        bail!("fd {fd} of task {pid} is a terminal ({link}): dump it with --shell-job");
    }
    let path = format!("/proc/{pid}/fd/{fd}");
    let f = File::open(&path).with_context(|| format!("can't open the terminal of fd {fd} of {pid}"))?;
    let md = f.metadata()?;
    let rdev = md.rdev();
    let index = link.strip_prefix("/dev/pts/").and_then(|n| n.parse::<u32>().ok());
    let Some(index) = index else {
        bail!("fd {fd} of task {pid} is a terminal other than a pty ({link}): not supported yet");
    };
    let info_id = match infos.infos.iter().find(|i| u64::from(i.rdev) == rdev) {
        Some(i) => i.id,
        None => {
            let id = info_id(index, false);
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
                termios: crate::sys::tty::termios(f.as_fd()).ok().map(|t| termios_entry(&t)),
                termios_locked: crate::sys::tty::locked_termios(f.as_fd()).ok().map(|t| termios_entry(&t)),
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
    Ok(FileEntry {
        r#type: FdTypes::Tty as i32,
        id,
        tty: Some(TtyFileEntry { id, tty_info_id: info_id, flags, fown: FownEntry::default(), regf_id: Some(regf_id) }),
        ..Default::default()
    })
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

#[cfg(test)]
mod tests {
    #[test]
    fn termios_as_criu_packs_it() {
        let mut t = crate::sys::tty::KernelTermios { c_iflag: 1280, c_oflag: 5, c_cflag: 191, c_lflag: 35387, ..Default::default() };
        t.c_cc[..12].copy_from_slice(&[3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0]);
        t.c_cc[12..17].copy_from_slice(&[18, 15, 23, 22, 0]);
        let e = super::termios_entry(&t);
        // The words CRIU 4.2 wrote for the same terminal (/dev/pts/0 of a fresh openpty).
        assert_eq!(&e.c_cc[..8], &[360651779, 65540, 1708817, 370609938, 0, 0, 0, 0]);
        assert_eq!(e.c_cc.len(), 19);
        assert_eq!((e.c_ispeed, e.c_ospeed), (0, 0));
        assert_eq!((super::info_id(0, false), super::info_id(3, true)), (0, 7));
    }
}
