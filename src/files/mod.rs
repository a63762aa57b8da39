//! Files: the files.img table of open file descriptions shared by fds, VMAs
//! and fs (cwd, root), and one module per file kind holding what its dump
//! records and what its restore needs.

pub mod elf;
pub mod epoll;
pub mod eventfd;
pub mod fanotify;
pub mod fds;
pub mod fifo;
pub mod fown;
pub mod ghost;
pub mod inotify;
pub mod kind;
pub mod link_remap;
pub mod locks;
pub mod memfd;
pub mod nsfile;
pub mod pidfd;
pub mod pipe;
pub mod reg;
pub mod registry;
pub mod restore;
#[cfg(test)]
pub(crate) mod round_trip;
pub mod signalfd;
pub mod timerfd;
pub mod tty;
pub mod tun;

pub use kind::Images;

use std::collections::HashMap;

use anyhow::Context;

use crate::images::kind::kinds;
use crate::images::pb::{FdTypes, FileEntry, RegFileEntry};
use crate::images::{ImageDir, ImageWriter};

/// The file descriptions of a dump, in files.img order.
#[derive(Debug, Default)]
pub struct FileTable {
    entries: Vec<FileEntry>,
    next_id: u32,
    /// Mapped files already recorded, by (dev, inode).
    mapped: HashMap<(u64, u64), u32>,
    /// Unlinked files carried in the images.
    pub ghosts: ghost::Ghosts,
    /// `--ghost-limit`.
    pub ghost_limit: u64,
    /// `--link-remap`: unlinked files with another name get a link back.
    pub link_remap: bool,
    /// The links made for them (removed unless the dump keeps them).
    pub link_remaps: link_remap::Made,
    /// The memfd inodes the MEMFD entries name (memfd.img).
    pub memfds: crate::mem::memfd::Recorded,
    /// Shared anonymous memory recorded as such (VMA_ANON_SHARED), by
    /// inode: not to be recorded as a memfd by a later task.
    pub anon_shmem: Vec<u64>,
}

impl FileTable {
    pub fn new() -> Self {
        FileTable {
            entries: Vec::new(),
            next_id: 1,
            mapped: HashMap::new(),
            ghosts: Default::default(),
            ghost_limit: crate::opts::DEFAULT_GHOST_LIMIT,
            link_remap: false,
            link_remaps: Default::default(),
            memfds: Default::default(),
            anon_shmem: Vec::new(),
        }
    }

    /// A fresh file-description id.
    pub fn alloc_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The id already given to the mapped file (dev, ino), if any.
    pub fn mapped_id(&self, dev: u64, ino: u64) -> Option<u32> {
        self.mapped.get(&(dev, ino)).copied()
    }

    /// Remember that (dev, ino) is recorded under `id`.
    pub fn set_mapped(&mut self, dev: u64, ino: u64, id: u32) {
        self.mapped.insert((dev, ino), id);
    }

    pub fn push_reg(&mut self, reg: RegFileEntry) {
        self.entries.push(FileEntry { r#type: FdTypes::Reg as i32, id: reg.id, reg: Some(reg), ..Default::default() });
    }

    /// Record `file`, opened at `name` (as /proc shows it), as regular file
    /// `id`; an unlinked one is carried as a ghost.
    pub fn push_reg_file(&mut self, id: u32, name: &str, file: &std::fs::File, flags: u32, pos: u64) -> anyhow::Result<()> {
        let e = self.reg_entry(id, name, file, flags, pos)?;
        self.push_reg(e);
        Ok(())
    }

    /// The record of `file`, opened at `name` (as /proc shows it), as
    /// regular file `id`; an unlinked one is recorded as a ghost.
    pub fn reg_entry(&mut self, id: u32, name: &str, file: &std::fs::File, flags: u32, pos: u64) -> anyhow::Result<RegFileEntry> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        if name.starts_with("/memfd:") && name.ends_with(" (deleted)") {
            anyhow::bail!("{name} is a memfd: memfd files are not supported yet");
        }
        let Some(n) = ghost::strip_deleted(name) else { return reg::entry(id, name, file, flags, pos) };
        let md = file.metadata().with_context(|| format!("can't stat unlinked {n}"))?;
        let ft = md.file_type();
        if md.nlink() == 0 && (ft.is_file() || ft.is_fifo() || ft.is_dir() || ft.is_char_device() || ft.is_block_device() || ft.is_symlink()) {
            let e = reg::entry(id, n, file, flags, pos)?;
            self.ghosts.record(id, n, file, self.ghost_limit)?;
            return Ok(e);
        }
        if md.nlink() > 0 && !ft.is_dir() {
            if !self.link_remap {
                anyhow::bail!("{n} was unlinked but has {} other link(s): dump with --link-remap to carry it", md.nlink());
            }
            let e = reg::entry(id, n, file, flags, pos)?;
            let remap_id = self.alloc_id();
            let link = self.link_remaps.link(remap_id, n, file)?;
            self.push_reg(link);
            self.ghosts.linked(id, remap_id);
            return Ok(e);
        }
        reg::entry(id, name, file, flags, pos)
    }

    pub fn push(&mut self, e: FileEntry) {
        self.entries.push(e);
    }

    /// The record of file `id`, to complete it.
    pub fn entry_mut(&mut self, id: u32) -> Option<&mut FileEntry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    pub fn entries(&self) -> &[FileEntry] {
        &self.entries
    }

    /// Write files.img, memfd.img when memfds were recorded, and
    /// remap-fpath.img and the ghost-file images when there are ghosts.
    pub fn write(&self, dir: &ImageDir) -> anyhow::Result<()> {
        let mut w = ImageWriter::create(dir, "files.img", kinds::files())?;
        for e in &self.entries {
            w.write(e)?;
        }
        w.finish()?;
        crate::mem::memfd::write_inodes(dir, &self.memfds.inodes)?;
        self.ghosts.write(dir)
    }
}

/// The pid of a path under a task's /proc directory (`/proc/PID/...`).
pub fn proc_pid_of(path: &str) -> Option<i32> {
    let rest = path.strip_prefix("/proc/")?;
    rest.split('/').next()?.parse().ok()
}

/// Once the tree's fds are dumped (`fdinfos`: each task's pid and fd
/// table): a file under /proc/PID must name a task of the tree (its pid
/// comes back; another process's would not), and be held by one task only
/// (the restore opens it in that task, once every task exists).
pub fn check_proc_paths(files: &FileTable, fdinfos: &[(i32, &[crate::images::pb::FdinfoEntry])]) -> anyhow::Result<()> {
    pidfd::check_targets(&files.entries, fdinfos)?;
    for e in &files.entries {
        let Some(r) = e.reg.as_ref() else { continue };
        let Some(p) = proc_pid_of(&r.name) else { continue };
        let users: Vec<(i32, u32)> =
            fdinfos.iter().flat_map(|(pid, fds)| fds.iter().filter(|f| f.id == e.id).map(move |f| (*pid, f.fd))).collect();
        let Some(&(pid, fd)) = users.first() else {
            // Not an fd (a cwd, root or mapping under /proc): refused as an fd would be.
            anyhow::bail!("{} (file {}) is under /proc/{p} but is not an fd: not supported", r.name, e.id);
        };
        if !fdinfos.iter().any(|(t, _)| *t == p) {
            anyhow::bail!("fd {fd} of task {pid} is open on {}, of process {p} outside the dumped tree: its /proc entry would name another process after a restore", r.name);
        }
        if users.iter().any(|(t, _)| *t != pid) {
            anyhow::bail!("fd {fd} of task {pid} is open on {}, shared with another task: /proc files shared between tasks are not supported", r.name);
        }
    }
    Ok(())
}

/// Record the task's cwd or root (`what` is "cwd" or "root") as a
/// directory file and return its id.
pub fn dir_entry(files: &mut FileTable, pid: i32, what: &str) -> anyhow::Result<u32> {
    use anyhow::Context;
    let link = format!("/proc/{pid}/{what}");
    let name = std::fs::read_link(&link).with_context(|| format!("can't read {what} of task {pid}"))?;
    let f = std::fs::File::open(&link).with_context(|| format!("can't open {what} of task {pid}"))?;
    let id = files.alloc_id();
    files.push_reg_file(id, &name.to_string_lossy(), &f, 0, 0).with_context(|| format!("{what} of task {pid}"))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::pb::FdinfoEntry;

    #[test]
    fn proc_paths_must_name_a_task_of_the_tree() {
        assert_eq!(proc_pid_of("/proc/42/status"), Some(42));
        assert_eq!(proc_pid_of("/proc/42"), Some(42));
        assert_eq!(proc_pid_of("/proc/meminfo"), None);
        assert_eq!(proc_pid_of("/procx/1/status"), None);
        let mut t = FileTable::new();
        for (id, name) in [(1, "/proc/42/status"), (2, "/proc/meminfo")] {
            t.push_reg(RegFileEntry { id, name: name.into(), ..Default::default() });
        }
        let fds = [FdinfoEntry { id: 1, fd: 3, ..Default::default() }, FdinfoEntry { id: 2, fd: 4, ..Default::default() }];
        check_proc_paths(&t, &[(42, &fds[..]), (43, &[][..])]).unwrap();
        let e = check_proc_paths(&t, &[(7, &fds[..])]).unwrap_err().to_string();
        assert!(e.contains("fd 3 of task 7") && e.contains("outside the dumped tree"), "{e}");
        let e = check_proc_paths(&t, &[(42, &fds[..]), (43, &fds[..1])]).unwrap_err().to_string();
        assert!(e.contains("shared with another task"), "{e}");
    }
}
