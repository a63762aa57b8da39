//! Terminals (FD_TYPES TTY, tty-info.img, tty-data.img, as CRIU 4.2).
//! Unix98 pty pairs held by the tree are carried whole ([`pty`]): both
//! ends, their settings and queued bytes; a slave whose master was closed
//! comes back hung up. A slave whose master is outside the tree is the
//! task's terminal: a dump with --shell-job records it, and a restore with
//! --shell-job connects it to the terminal criu runs on (its stdin).
//! /dev/tty, the console and the vts are opened again by path
//! ([`simple`]). What else a terminal fd can be (a serial line, /dev/tty0)
//! is refused by name.

pub mod pty;
pub mod simple;

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, Images, OpenCx, State};
use super::{reg, FileTable};
use crate::images::kind::kinds;
use crate::images::pb::{FdTypes, FileEntry, FownEntry, TtyDataEntry, TtyFileEntry, TtyInfoEntry, TtyType};
use crate::images::{ImageDir, ImageReader, ImageWriter};

/// The terminal kind (FD_TYPES TTY).
pub struct Tty;

/// What a dump gathers: tty-info records (one per pty end, as CRIU's
/// bitmap keeps them) and the ends, for the checks and the queued data.
#[derive(Debug, Default)]
pub struct TtyInfos {
    pub infos: Vec<TtyInfoEntry>,
    pub ends: Vec<pty::End>,
    pub data: Vec<TtyDataEntry>,
    pub shell_job: bool,
    /// Each /dev/tty fd: who holds it, the pty index it stands for (None:
    /// not a pty), and the holder's session if it is that session's
    /// terminal (checked once the sessions' terminals are known).
    pub cttys: Vec<(String, Option<u32>, Option<i32>)>,
}

/// A restore's view of tty-info.img and tty-data.img.
#[derive(Debug, Default)]
struct Loaded {
    infos: Vec<TtyInfoEntry>,
    data: Vec<TtyDataEntry>,
}

impl Loaded {
    fn info(&self, id: u32) -> Option<&TtyInfoEntry> {
        self.infos.iter().find(|i| i.id == id)
    }
    fn data(&self, id: u32) -> Option<&[u8]> {
        self.data.iter().find(|d| d.tty_id == id).map(|d| &d.data[..])
    }
}

/// Is this character device a terminal (tty, pty, console)?
pub fn is_tty(rdev: u64) -> bool {
    matches!(libc::major(rdev), 4 | 5 | 128..=143)
}

/// A pty end: Some(true) for a master (/dev/ptmx), Some(false) for a slave.
fn pty_end(rdev: u64) -> Option<bool> {
    match (libc::major(rdev), libc::minor(rdev)) {
        (5, 2) | (128..=135, _) => Some(true),
        (136..=143, _) => Some(false),
        _ => None,
    }
}

/// What a terminal that is no pty is, for a refusal.
fn which_terminal(rdev: u64) -> &'static str {
    match (libc::major(rdev), libc::minor(rdev)) {
        (4, 0) => "/dev/tty0 (the current-vt alias)",
        _ => "a serial line",
    }
}

impl FdKind for Tty {
    fn name(&self) -> &'static str {
        "terminal"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Tty
    }

    fn claims(&self, p: &FdProbe) -> bool {
        use std::os::unix::fs::FileTypeExt;
        p.md.file_type().is_char_device() && is_tty(p.md.rdev())
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let rdev = p.md.rdev();
        let who = p.who();
        let Some(master) = pty_end(rdev) else {
            let Some(ty) = simple::type_of(rdev) else {
                bail!("{who} is {} ({}): not supported yet", which_terminal(rdev), p.link);
            };
            return dump_simple(p, ty, id, cx);
        };
        let fd = p.dup()?;
        let index = if master {
            crate::sys::tty::pty_index(fd.as_fd()).with_context(|| format!("TIOCGPTN on {who}"))?
        } else {
            libc::minor(rdev) + (libc::major(rdev) - 136) * 256
        };
        let st = cx.fds.state.get_mut::<TtyInfos>();
        st.shell_job = cx.shell_job;
        let info_id = pty::info_id(index, master);
        if !st.infos.iter().any(|i| i.id == info_id) {
            let (mut info, hung) = pty::info(fd.as_fd(), index, master, rdev, p.md.dev(), p.md.uid(), p.md.gid())?;
            // A slave that is this task's controlling terminal: a pair's
            // session is read from its master once every fd is seen.
            if !master && !hung && u64::from(cx.stat.tty_nr) == rdev && cx.shell_job {
                info.sid = cx.stat.sid as u32;
                info.pgrp = cx.stat.tpgid.max(0) as u32;
            }
            st.infos.push(info);
            let peer_closed = master && !hung && crate::sys::tty::hung_up_peer(fd.as_fd()).with_context(|| format!("poll on {who}"))?;
            if peer_closed {
                pty::check_closed_slave_node(p.pid, &slave_path_of_ptmx(p.link, index), &who)?;
            }
            st.ends.push(pty::End { pid: p.pid, index, master, who: who.clone(), fd: fd.try_clone()?, hung, peer_closed });
        }
        // The path, for tools and for the restore's open.
        let regf_id = cx.files.alloc_id();
        // A hung-up slave's node is gone from devpts: its name stays.
        let name = p.link.strip_suffix(" (deleted)").unwrap_or(p.link);
        cx.files.push_reg(reg::entry(regf_id, name, &File::from(fd), p.flags, 0)?);
        Ok(FileEntry {
            r#type: FdTypes::Tty as i32,
            id,
            tty: Some(TtyFileEntry { id, tty_info_id: info_id, flags: p.flags, fown: FownEntry::default(), regf_id: Some(regf_id) }),
            ..Default::default()
        })
    }

    fn dumped_all(&self, st: &mut State, _files: &mut FileTable, who: &str) -> Result<()> {
        if st.get::<TtyInfos>().is_none() {
            return Ok(());
        }
        let t = st.get_mut::<TtyInfos>();
        // The copies of the ends go once read (the pty indices stay the tree's).
        let ends = std::mem::take(&mut t.ends);
        // `who` ends with the root's pid ("task P", "the tree of task P").
        let root = who.rsplit(' ').next().and_then(|p| p.parse::<i32>().ok());
        let sessions = pty::check_pairs(&ends, t.shell_job, root)?;
        for (who, index, sid) in &t.cttys {
            if index.is_some_and(|i| sessions.iter().any(|s| s.0 == i)) {
                continue;
            }
            // With --shell-job: the terminal of a session outside the tree
            // (no end of it dumped), whose place criu's terminal takes.
            let outside = index.is_none_or(|i| !ends.iter().any(|e| e.master && e.index == i));
            if t.shell_job && outside && sid.is_some_and(|s| Some(s) != root) {
                continue;
            }
            let what = index.map_or("a terminal outside the tree".to_string(), |i| format!("pty {i}"));
            bail!("{who} is /dev/tty standing for {what}, which is not the controlling terminal of the dumped tree's root (a session leader holding it){}: not supported yet", if t.shell_job { "" } else { " nor, with --shell-job, the one of the session it runs in" });
        }
        for (index, sid, pgrp) in sessions {
            for i in t.infos.iter_mut().filter(|i| i.pty.as_ref().is_some_and(|p| p.index == index)) {
                i.sid = sid as u32;
                i.pgrp = pgrp as u32;
            }
        }
        t.data = pty::queued_data(&ends)?;
        Ok(())
    }

    fn write_images(&self, st: &State, dir: &ImageDir) -> Result<()> {
        let Some(t) = st.get::<TtyInfos>().filter(|t| !t.infos.is_empty()) else { return Ok(()) };
        let mut w = ImageWriter::create(dir, "tty-info.img", kinds::tty_info())?;
        for e in &t.infos {
            w.write(e)?;
        }
        w.finish()?;
        if !t.data.is_empty() {
            let mut w = ImageWriter::create(dir, "tty-data.img", kinds::tty_data())?;
            for e in &t.data {
                w.write(e)?;
            }
            w.finish()?;
        }
        Ok(())
    }

    fn load_images(&self, dir: &ImageDir, imgs: &mut Images) -> Result<()> {
        let l = imgs.state.get_mut::<Loaded>();
        for (name, infos) in [("tty-info.img", true), ("tty-data.img", false)] {
            if !dir.exists(name) {
                continue;
            }
            if infos {
                let mut r = ImageReader::open_kind(dir, name, kinds::tty_info())?;
                while let Some(e) = r.next_entry()? {
                    l.infos.push(e);
                }
                let mut c = CTTYS.lock().unwrap_or_else(|e| e.into_inner());
                c.clear();
                // Pairs only: a lone slave is criu's terminal (--shell-job).
                let paired = |i: &TtyInfoEntry| l.infos.iter().any(|o| o.id == i.id ^ 1 && o.termios.is_some());
                let pairs = l.infos.iter().filter(|i| i.sid != 0 && i.termios.is_some() && paired(i));
                c.extend(pairs.filter_map(|i| Some((i.id, i.pty.as_ref()?.index, i.sid, i.pgrp))));
            } else {
                let mut r = ImageReader::open_kind(dir, name, kinds::tty_data())?;
                while let Some(e) = r.next_entry()? {
                    l.data.push(e);
                }
            }
        }
        Ok(())
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.tty.as_ref().map(|t| t.flags)
    }

    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let tfe = fe.tty.as_ref().with_context(|| format!("file {} has no tty entry", fe.id))?;
        let loaded = cx.images.state.get::<Loaded>();
        let info = loaded
            .and_then(|l| l.info(tfe.tty_info_id))
            .with_context(|| format!("fd {fd}: tty {:#x} has no record {:#x} in tty-info.img", fe.id, tfe.tty_info_id))?;
        let reg = tfe.regf_id.and_then(|r| cx.images.get(&r)).and_then(|f| f.reg.as_ref());
        match TtyType::try_from(info.r#type) {
            Ok(TtyType::Pty) => {}
            Ok(ty @ (TtyType::Console | TtyType::Vt | TtyType::Ctty)) => {
                let path = match (reg, ty) {
                    (Some(r), _) => r.name.clone(),
                    (None, TtyType::Console) => "/dev/console".into(),
                    (None, TtyType::Ctty) => "/dev/tty".into(),
                    (None, _) => bail!("fd {fd}: vt {:#x} has no path record", fe.id),
                };
                if ty == TtyType::Ctty {
                    // It stands for the caller's terminal: opened once the
                    // root is its session's leader with it again.
                    let late = cx.state.get_mut::<LateCttys>();
                    if !late.0.iter().any(|l| l.0 == fe.id) {
                        late.0.push((fe.id, tfe.flags, path));
                    }
                    return Ok(None);
                }
                return simple::open(&path, tfe.flags, info).with_context(|| format!("fd {fd}")).map(Some);
            }
            _ => bail!("fd {fd}: terminal {:#x} is of type {} (not a pty, console, vt or /dev/tty): not supported yet", fe.id, info.r#type),
        }
        let index = info.pty.as_ref().with_context(|| format!("fd {fd}: pty record {:#x} has no index", info.id))?.index;
        let master = info.id & 1 == 1;
        let has_info = |id: u32| cx.images.values().any(|f| f.tty.as_ref().is_some_and(|t| t.tty_info_id == id));
        let peer_live = has_info(pty::info_id(index, !master))
            && loaded.and_then(|l| l.info(pty::info_id(index, !master))).is_some_and(|i| i.termios.is_some());
        if !master && info.termios.is_none() {
            // Hung up: its master was closed. A master made for the while
            // and closed again hangs the new slave up the same way.
            let _m = pty::open_master(&ptmx_path(reg), index, libc::O_RDWR as u32)?;
            crate::sys::tty::set_pty_locked(_m.as_fd(), false).with_context(|| format!("unlocking pty {index}"))?;
            return pty::open_slave(&slave_path(reg, index), index, tfe.flags, reg.and_then(|r| r.mode), info.uid.zip(info.gid)).map(Some);
        }
        if !master && !peer_live {
            if !cx.shell_job {
                bail!("fd {fd} is the slave of pty {index} whose master was not dumped: restore it with --shell-job");
            }
            return Ok(Some(our_terminal()?.into()));
        }
        let master_info = loaded.and_then(|l| l.info(pty::info_id(index, true))).cloned();
        let made = cx.state.get_mut::<pty::Made>();
        if !made.masters.contains_key(&index) {
            let mi = master_info.with_context(|| format!("fd {fd}: pty {index} has no master record"))?;
            let mflags = cx
                .images
                .values()
                .filter_map(|f| f.tty.as_ref())
                .find(|t| t.tty_info_id == mi.id)
                .map_or(libc::O_RDWR as u32, |t| t.flags);
            let mreg = cx
                .images
                .values()
                .filter_map(|f| f.tty.as_ref())
                .find(|t| t.tty_info_id == mi.id)
                .and_then(|t| t.regf_id)
                .and_then(|r| cx.images.get(&r))
                .and_then(|f| f.reg.as_ref());
            let m = pty::open_master(&ptmx_path(mreg), index, mflags)?;
            crate::sys::tty::set_pty_locked(m.as_fd(), false).with_context(|| format!("unlocking pty {index}"))?;
            pty::set_params(m.as_fd(), &mi)?;
            if master && !peer_live {
                // A lone master: its slave was closed (the dump checks
                // that). An opening of the slave, closed again, hangs the
                // new master up the same way.
                let spath = slave_path_of_ptmx(&ptmx_path(mreg), index);
                drop(pty::open_slave(&spath, index, libc::O_RDWR as u32, None, None)?);
                tracing::info!("pty {index}: its slave opened and closed again (it was closed at dump)");
            }
            if mi.packet_mode {
                crate::sys::tty::set_packet_mode(m.as_fd(), true).with_context(|| format!("packet mode on pty {index}"))?;
            }
            let made = cx.state.get_mut::<pty::Made>();
            made.masters.insert(index, m);
        }
        let made = cx.state.get_mut::<pty::Made>();
        if master {
            let m = made.masters.get(&index).context("master made")?;
            return Ok(Some(m.try_clone().with_context(|| format!("dup of the master of pty {index}"))?));
        }
        let s = pty::open_slave(&slave_path(reg, index), index, tfe.flags, reg.and_then(|r| r.mode), info.uid.zip(info.gid))?;
        if let std::collections::hash_map::Entry::Vacant(v) = made.slaves.entry(index) {
            v.insert(s.try_clone()?);
        }
        Ok(Some(s))
    }

    fn opened_all(&self, cx: &mut OpenCx) -> Result<()> {
        let Some(loaded) = cx.images.state.get::<Loaded>() else { return Ok(()) };
        let made = std::mem::take(cx.state.get_mut::<pty::Made>());
        // A session's terminal, in its leader (the root: we run in it,
        // after its setsid), before any other task is forked.
        let cttys = CTTYS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (_, index, sid, _) in cttys {
            if !made.masters.contains_key(&index) {
                continue;
            }
            if nix::unistd::getsid(None).map(|s| s.as_raw() as u32).ok() != Some(sid) || std::process::id() != sid {
                bail!("pty {index} is the controlling terminal of session {sid}, whose leader is not the restored tree's root: not supported yet");
            }
            pty::take_ctty(&format!("/dev/pts/{index}"), index)?;
            tracing::info!("pty {index}: the controlling terminal of session {sid} again");
        }
        for (id, flags, path) in std::mem::take(&mut cx.state.get_mut::<LateCttys>().0) {
            let info = loaded.info(simple::info_id(TtyType::Ctty)).with_context(|| format!("file {id:#x}: no /dev/tty record in tty-info.img"))?;
            let f = simple::open(&path, flags, info)
                .with_context(|| format!("file {id:#x}: {path} stands for the controlling terminal, which the restoring root (task {}) lacks", std::process::id()))?;
            cx.opened.insert(id, f);
        }
        for (index, m) in &made.masters {
            let index = *index;
            let s = made.slaves.get(&index);
            if let Some(d) = loaded.data(pty::info_id(index, false)) {
                pty::refill(m.as_fd(), d, &format!("the master of pty {index}"))?;
            }
            if let (Some(d), Some(s)) = (loaded.data(pty::info_id(index, true)), s) {
                pty::refill(s.as_fd(), d, &format!("the slave of pty {index}"))?;
            }
            let mi = loaded.info(pty::info_id(index, true));
            let si = loaded.info(pty::info_id(index, false));
            if mi.is_some_and(|i| i.exclusive) {
                crate::sys::tty::set_exclusive(m.as_fd()).with_context(|| format!("TIOCEXCL on the master of pty {index}"))?;
            }
            if let (Some(s), true) = (s, si.is_some_and(|i| i.exclusive)) {
                crate::sys::tty::set_exclusive(s.as_fd()).with_context(|| format!("TIOCEXCL on the slave of pty {index}"))?;
            }
            if mi.is_some_and(|i| i.locked) {
                crate::sys::tty::set_pty_locked(m.as_fd(), true).with_context(|| format!("locking pty {index}"))?;
            }
        }
        Ok(())
    }

    fn installed(&self, fe: &FileEntry, fd: i32) -> Result<()> {
        // In the session's leader (the root, which took the terminal back
        // before forking): the foreground group, every group existing now.
        let Some(tfe) = fe.tty.as_ref() else { return Ok(()) };
        let ctty = CTTYS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|c| c.0 == tfe.tty_info_id).copied();
        let Some((_, index, sid, pgrp)) = ctty else { return Ok(()) };
        if sid != std::process::id() || pgrp == 0 {
            return Ok(());
        }
        if crate::sys::tty::foreground_of(fd).ok() == Some(pgrp as i32) {
            return Ok(()); // done through its other end
        }
        crate::sys::tty::set_foreground_of(fd, pgrp as i32).with_context(|| format!("TIOCSPGRP {pgrp} on pty {index} (fd {fd})"))
    }

    fn companions(&self, fe: &FileEntry) -> Vec<u32> {
        // The path record: the terminal is made again, not found there.
        fe.tty.as_ref().and_then(|t| t.regf_id).into_iter().collect()
    }
}

/// The restore's controlling terminals, (tty-info id, pty index, session,
/// foreground group), from tty-info.img: read by the session's leader once
/// its fds are in place (the restoring tasks are forked from the process
/// that read the images).
static CTTYS: std::sync::Mutex<Vec<(u32, u32, u32, u32)>> = std::sync::Mutex::new(Vec::new());

/// Dump an fd of a path-opened terminal (/dev/tty, the console, a vt):
/// one record per type, a path record, and the checks a restore needs.
fn dump_simple(p: &mut FdProbe, ty: TtyType, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
    let who = p.who();
    let rdev = p.md.rdev();
    let fd = p.dup()?;
    // The terminal it stands for (/dev/tty and /dev/console are aliases).
    let real = match ty {
        TtyType::Vt => rdev,
        _ => crate::sys::tty::real_device(fd.as_fd()).with_context(|| format!("TIOCGDEV on {who} ({}): is it hung up?", p.link))?,
    };
    let own_ctty = u64::from(cx.stat.tty_nr) == real;
    let st = cx.fds.state.get_mut::<TtyInfos>();
    st.shell_job = cx.shell_job;
    if ty == TtyType::Ctty {
        let index = matches!(libc::major(real), 136..=143).then(|| libc::minor(real) + (libc::major(real) - 136) * 256);
        if index.is_none() && !(cx.shell_job && own_ctty) {
            bail!("{who} is /dev/tty standing for device {}:{}, not a pty of the tree: not supported yet", libc::major(real), libc::minor(real));
        }
        st.cttys.push((who.clone(), index, own_ctty.then_some(cx.stat.sid)));
    } else if own_ctty {
        bail!("{who} is {} ({}), the controlling terminal of task {}: not supported yet", simple::what(ty), p.link, p.pid);
    }
    let sid_pgrp = if own_ctty { (cx.stat.sid, cx.stat.tpgid) } else { (0, 0) };
    let info = simple::info(fd.as_fd(), ty, rdev, p.md.dev(), (p.md.uid(), p.md.gid()), sid_pgrp, &who)?;
    match st.infos.iter().find(|i| i.id == info.id) {
        None => st.infos.push(info),
        Some(had) if simple::same_state(had, &info) => {}
        Some(_) => bail!(
            "{who} is {} ({}) whose settings differ from another one's of the tree: CRIU's one record per terminal type can't hold both",
            simple::what(ty),
            p.link
        ),
    }
    let regf_id = cx.files.alloc_id();
    cx.files.push_reg(reg::entry(regf_id, p.link, &File::from(fd), p.flags, 0)?);
    Ok(FileEntry {
        r#type: FdTypes::Tty as i32,
        id,
        tty: Some(TtyFileEntry { id, tty_info_id: simple::info_id(ty), flags: p.flags, fown: FownEntry::default(), regf_id: Some(regf_id) }),
        ..Default::default()
    })
}

/// /dev/tty fds the restore opens once the root has its controlling
/// terminal again: (file id, status flags, path).
#[derive(Debug, Default)]
struct LateCttys(Vec<(u32, u32, String)>);

/// The ptmx to open for a master: its recorded path, or /dev/ptmx.
fn ptmx_path(reg: Option<&crate::images::pb::RegFileEntry>) -> String {
    reg.map(|r| r.name.clone()).filter(|n| n.ends_with("ptmx")).unwrap_or_else(|| "/dev/ptmx".into())
}

/// The slave of pty `index` next to master path `ptmx` (/dev/ptmx ->
/// /dev/pts/N, /dev/pts/ptmx -> /dev/pts/N).
fn slave_path_of_ptmx(ptmx: &str, index: u32) -> String {
    match ptmx.strip_suffix("ptmx") {
        Some(dir) if dir.ends_with("pts/") => format!("{dir}{index}"),
        Some(dir) => format!("{dir}pts/{index}"),
        None => format!("/dev/pts/{index}"),
    }
}

/// A slave's path: its recorded one, or /dev/pts/N.
fn slave_path(reg: Option<&crate::images::pb::RegFileEntry>, index: u32) -> String {
    reg.map(|r| r.name.clone()).filter(|n| !n.ends_with("ptmx")).unwrap_or_else(|| format!("/dev/pts/{index}"))
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
mod tests;
