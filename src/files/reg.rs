//! Regular files, directories, O_PATH fds and the char devices CRIU
//! records the same way (such as /dev/null): the reg_file_entry a dump
//! writes, the checks a restore makes against it (through an O_PATH fd
//! first: nothing that could block is opened before its type is known),
//! and reopening it by path at its position. Unlinked ones are carried as
//! ghosts (`ghost.rs`).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::elf;
use super::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{FdTypes, FileEntry, FownEntry, RegFileEntry};

/// The regular-file kind (FD_TYPES REG).
pub struct Reg;

impl FdKind for Reg {
    fn name(&self) -> &'static str {
        "regular file"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Reg
    }

    fn claims(&self, p: &FdProbe) -> bool {
        let ft = p.md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let o_path = p.flags & libc::O_PATH as u32 != 0;
        if o_path {
            return ft.is_file() || ft.is_dir() || ft.is_symlink() || ft.is_char_device() || ft.is_block_device();
        }
        ft.is_file() || ft.is_dir() || (ft.is_char_device() && !super::tty::is_tty(p.md.rdev()))
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let leased = p.info.extra.iter().any(|(k, v)| k == "lock" && v.contains("LEASE"));
        let f = if p.flags & libc::O_PATH as u32 != 0 || leased {
            // An O_PATH fd (a symlink's itself with O_NOFOLLOW): recorded
            // from a copy of it (reopening it through /proc would follow
            // the link or need read access). A leased file too: another
            // open of it would break the lease (and wait for the frozen
            // holder for fs.lease-break-time).
            File::from(p.dup()?)
        } else {
            File::open(p.proc_path()).with_context(|| format!("can't open fd {} ({}) of task {}", p.fd, p.link, p.pid))?
        };
        let e = cx.files.reg_entry(id, p.link, &f, p.flags, p.info.pos).with_context(|| p.who())?;
        Ok(FileEntry { r#type: FdTypes::Reg as i32, id, reg: Some(e), ..Default::default() })
    }

    fn travels(&self) -> bool {
        true
    }

    fn inherit_keys(&self, fe: &FileEntry) -> Vec<String> {
        fe.reg.as_ref().map(|e| vec![e.name.clone(), e.name.trim_start_matches('/').to_string()]).unwrap_or_default()
    }

    fn open(&self, fe: &FileEntry, _fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.reg.as_ref().with_context(|| format!("file {} has no reg entry", fe.id))?;
        if super::proc_pid_of(&e.name).is_some_and(|p| cx.tree_pids.contains(&p)) {
            // Under /proc/PID of a task of the tree: opened by its task
            // once every task exists.
            return Ok(None);
        }
        Ok(Some(reopen(e)?.into()))
    }

    /// Unlinked files come back under a name every task opens them by.
    fn prepare(&self, dir: &crate::images::ImageDir, imgs: &mut super::Images) -> Result<()> {
        let made = super::ghost::Recreated::create(dir, &mut imgs.entries)?;
        *imgs.state.get_mut::<super::ghost::Recreated>() = made;
        Ok(())
    }

    /// ... and are unlinked again once all of them hold what they need.
    fn settled(&self, imgs: &super::Images) {
        if let Some(g) = imgs.state.get::<super::ghost::Recreated>() {
            g.unlink();
        }
    }

    fn open_late(&self, fe: &FileEntry, _fd: u32) -> Result<Option<OwnedFd>> {
        match fe.reg.as_ref().filter(|e| super::proc_pid_of(&e.name).is_some()) {
            Some(e) => Ok(Some(reopen(e)?.into())),
            None => Ok(None),
        }
    }
}

/// Open the file of `e` as the task had it: its flags (those meaning
/// something only at open time left out), checked against the record, at
/// its position.
pub fn reopen(e: &RegFileEntry) -> Result<File> {
    let mut flags = e.flags as i32 & !super::restore::OPEN_ONLY;
    // An O_TMPFILE file (a ghost by now) is reopened by name: its
    // O_TMPFILE bits (which include O_DIRECTORY) go.
    if flags & libc::O_TMPFILE == libc::O_TMPFILE {
        flags &= !libc::O_TMPFILE;
    }
    let acc = flags & libc::O_ACCMODE;
    // What is there now, looked at first through an O_PATH fd (which never
    // blocks): a FIFO or device put in the file's place is refused by name
    // before anything opens it. The open itself is non-blocking (a device
    // may wait in open, a tty for its carrier; a FIFO swapped in meanwhile
    // for a peer) and must find the file looked at; the task's flags are
    // then put back.
    let probe = open_path(&e.name, flags & libc::O_NOFOLLOW)?;
    let md = probe.metadata().with_context(|| format!("can't stat {}", e.name))?;
    check_type(e, &md)?;
    let nonblock = flags & (libc::O_NONBLOCK | libc::O_PATH) == 0;
    let f = OpenOptions::new()
        .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags((flags & !libc::O_ACCMODE) | if nonblock { libc::O_NONBLOCK } else { 0 })
        .open(&e.name)
        .with_context(|| format!("can't open {}", e.name))?;
    let now = f.metadata().with_context(|| format!("can't stat {}", e.name))?;
    if (now.dev(), now.ino()) != (md.dev(), md.ino()) {
        bail!("{} changed while it was opened", e.name);
    }
    if nonblock {
        let fl = fcntl(&f, FcntlArg::F_GETFL).with_context(|| format!("F_GETFL of {}", e.name))?;
        fcntl(&f, FcntlArg::F_SETFL(OFlag::from_bits_retain(fl & !libc::O_NONBLOCK))).with_context(|| format!("F_SETFL of {}", e.name))?;
    }
    validate(e, &f)?;
    let is_file = f.metadata().is_ok_and(|m| m.file_type().is_file());
    // An O_PATH fd has no position (and refuses lseek).
    if flags & libc::O_PATH == 0 && (is_file || e.pos != 0) {
        (&f).seek(SeekFrom::Start(e.pos)).with_context(|| format!("can't seek {} to {}", e.name, e.pos))?;
    }
    Ok(f)
}

/// What a dump records of a regular file opened (or mapped) by a task.
pub fn entry(id: u32, name: &str, file: &File, flags: u32, pos: u64) -> Result<RegFileEntry> {
    if name.ends_with(" (deleted)") {
        bail!("file {name} is unlinked: dumping deleted files (ghost files, --link-remap) is not supported yet");
    }
    if !name.starts_with('/') {
        bail!("file {name:?} has no absolute path");
    }
    let md = file.metadata().with_context(|| format!("can't stat {name}"))?;
    let build_id = if md.file_type().is_file() { elf::build_id(file).unwrap_or_default() } else { Vec::new() };
    Ok(RegFileEntry {
        id,
        flags,
        pos,
        fown: FownEntry::default(),
        name: name.to_string(),
        mnt_id: None,
        size: md.file_type().is_file().then(|| md.size()),
        ext: None,
        mode: Some(md.mode()),
        build_id,
        checksum: None,
        checksum_config: None,
        checksum_parameter: None,
    })
}

/// Open the file of `e` to check it against its record: as an O_PATH fd
/// was (not following a symlink it was opened on), else a regular file for
/// reading (its ELF build-id), anything else as an O_PATH fd (opening a
/// FIFO or device to look at it could wait).
pub fn open_for_check(e: &RegFileEntry) -> std::io::Result<File> {
    let flags = e.flags as i32;
    let path = open_path_io(&e.name, flags & libc::O_NOFOLLOW)?;
    if flags & libc::O_PATH != 0 || !path.metadata()?.file_type().is_file() {
        return Ok(path);
    }
    File::open(format!("/proc/self/fd/{}", path.as_raw_fd()))
}

/// An O_PATH fd on `name` (`nofollow`: O_NOFOLLOW or 0).
fn open_path_io(name: &str, nofollow: i32) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_CLOEXEC | nofollow).open(name)
}

fn open_path(name: &str, nofollow: i32) -> Result<File> {
    open_path_io(name, nofollow).with_context(|| format!("can't open {name}"))
}

/// The file at the record's path must be of the recorded type (one with no
/// recorded type must not be a FIFO or socket: those have records of their
/// own, and opening one could wait).
fn check_type(e: &RegFileEntry, md: &std::fs::Metadata) -> Result<()> {
    let now = md.mode() & libc::S_IFMT;
    match e.mode {
        Some(mode) if mode & libc::S_IFMT != now => bail!("{} changed type since dump (mode {:o}, now {:o})", e.name, mode, md.mode()),
        None if now == libc::S_IFIFO || now == libc::S_IFSOCK => bail!("{} is a {} now", e.name, if now == libc::S_IFIFO { "FIFO" } else { "socket" }),
        _ => Ok(()),
    }
}

/// What a restore checks of a regular file against its record: still a file
/// of the same type, same size, same ELF build-id (CRIU's default
/// validation). The error names the file and what changed.
pub fn validate(e: &RegFileEntry, file: &File) -> Result<()> {
    let md = file.metadata().with_context(|| format!("can't stat {}", e.name))?;
    if let Some(mode) = e.mode
        && mode & libc::S_IFMT != md.mode() & libc::S_IFMT {
            bail!("{} changed type since dump (mode {:o}, now {:o})", e.name, mode, md.mode());
        }
    if let Some(size) = e.size
        && size != md.size() {
            bail!("{} changed since dump: size {} bytes, now {}", e.name, size, md.size());
        }
    if !e.build_id.is_empty() {
        match elf::build_id(file) {
            Some(id) if id == e.build_id => {}
            Some(_) => bail!("{} changed since dump: its ELF build-id differs", e.name),
            None => bail!("{} changed since dump: it has no ELF build-id now", e.name),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_files_validate_on_this_machine() {
        // The CRIU 4.2 fixtures were dumped on a fresh machine of this kind:
        // their mapped files and binaries are the ones installed here.
        let dir = crate::images::ImageDir::open(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/criu-4.2/sleep"
        )))
        .unwrap();
        let mut r = crate::images::ImageReader::open_kind(&dir, "files.img", crate::images::kind::kinds::files()).unwrap();
        let mut checked = 0;
        while let Some(fe) = r.next_entry().unwrap() {
            let Some(reg) = fe.reg else { continue };
            let f = File::open(&reg.name).unwrap();
            validate(&reg, &f).unwrap_or_else(|e| panic!("{e:#}"));
            if !reg.build_id.is_empty() {
                checked += 1;
            }
        }
        assert!(checked >= 2, "sleep and libc carry build-ids");
        // A changed size is refused, naming the file.
        let mut reg = RegFileEntry { name: "/usr/bin/sleep".into(), size: Some(1), ..Default::default() };
        let e = validate(&reg, &File::open("/usr/bin/sleep").unwrap()).unwrap_err().to_string();
        assert!(e.contains("/usr/bin/sleep changed since dump: size 1 bytes"), "{e}");
        reg.size = None;
        reg.build_id = vec![1, 2, 3, 4, 5];
        let e = validate(&reg, &File::open("/usr/bin/sleep").unwrap()).unwrap_err().to_string();
        assert!(e.contains("build-id differs"), "{e}");
    }

    #[test]
    fn dump_entry_matches_the_fixture_record() {
        let f = File::open("/usr/bin/sleep").unwrap();
        let e = entry(1, "/usr/bin/sleep", &f, 0, 0).unwrap();
        let dir = crate::images::ImageDir::open(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/criu-4.2/sleep"
        )))
        .unwrap();
        let mut r = crate::images::ImageReader::open_kind(&dir, "files.img", crate::images::kind::kinds::files()).unwrap();
        let fx = r.next_entry().unwrap().unwrap().reg.unwrap();
        assert_eq!(fx.name, "/usr/bin/sleep");
        assert_eq!((e.size, e.mode, &e.build_id), (fx.size, fx.mode, &fx.build_id));
    }

    #[test]
    fn round_trip() {
        use std::io::{Seek, Write};
        use std::os::fd::AsRawFd;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("data");
        let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(&path).unwrap();
        f.write_all(b"0123456789").unwrap();
        f.seek(std::io::SeekFrom::Start(4)).unwrap();
        let dir = File::open(tmp.path()).unwrap();
        let (before, back, after) = super::super::round_trip::run(&[f.as_raw_fd(), dir.as_raw_fd()]);
        for (b, a) in before.entries.iter().zip(&after.entries) {
            let (b, a) = (b.reg.as_ref().unwrap(), a.reg.as_ref().unwrap());
            assert_eq!((&a.name, a.pos, a.flags, a.size, a.mode), (&b.name, b.pos, b.flags, b.size, b.mode));
        }
        let r = before.entries[0].reg.as_ref().unwrap();
        assert_eq!((r.pos, r.size, r.flags & libc::O_APPEND as u32), (4, Some(10), libc::O_APPEND as u32));
        assert_eq!(std::fs::read_link(format!("/proc/self/fd/{}", back[1].as_raw_fd())).unwrap(), tmp.path());
    }
}