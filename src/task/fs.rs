//! A task's fs state (`fs-PID.img`: cwd, root, umask) both ways: the dump
//! records cwd and root as regular files of files.img
//! (`crate::files::dir_entry`) with the umask ([`dump`]); the restore
//! resolves them by file id ([`plan`]), changes into the cwd, checks the
//! root it chroots into later and sets the umask ([`restore`]).

use anyhow::{Context, Result};

use crate::files::FileTable;
use crate::images::pb::{FsEntry, RegFileEntry};

/// The fs entry of task `pid`, its cwd and root added to `files`.
pub fn dump(files: &mut FileTable, pid: i32, umask: Option<u32>) -> Result<FsEntry> {
    Ok(FsEntry {
        cwd_id: crate::files::dir_entry(files, pid, "cwd")?,
        root_id: crate::files::dir_entry(files, pid, "root")?,
        umask,
    })
}

/// What a restoring task does with its fs entry. Both names are as criu
/// sees them (from the host's root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub cwd: String,
    /// The root to chroot into (None: the host's): just before the jump
    /// to the restorer (chroot keeps the cwd; we still need the host's
    /// /proc until then).
    pub chroot: Option<String>,
    pub umask: Option<u32>,
}

/// The plan of `fs`, its files looked up by id with `reg`.
pub fn plan<'a>(fs: &FsEntry, reg: impl Fn(u32) -> Result<&'a RegFileEntry>) -> Result<Plan> {
    let cwd = reg(fs.cwd_id)?;
    let root = reg(fs.root_id)?;
    Ok(Plan { cwd: cwd.name.clone(), chroot: (root.name != "/").then(|| root.name.clone()), umask: fs.umask })
}

/// Change into the cwd, check the root is there, set the umask.
pub fn restore(p: &Plan, pid: i32) -> Result<()> {
    nix::unistd::chdir(p.cwd.as_str()).with_context(|| format!("chdir {}", p.cwd))?;
    if let Some(r) = &p.chroot {
        std::fs::read_dir(r).with_context(|| format!("root {r} of task {pid}"))?;
    }
    if let Some(u) = p.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(u));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup<'a>(files: &'a HashMap<u32, RegFileEntry>) -> impl Fn(u32) -> Result<&'a RegFileEntry> {
        move |id| files.get(&id).with_context(|| format!("no file {id}"))
    }

    #[test]
    fn fs_round_trips() {
        let reg = |name: &str| RegFileEntry { name: name.into(), ..Default::default() };
        let files: HashMap<u32, RegFileEntry> = [(1, reg("/tmp/w")), (2, reg("/")), (3, reg("/srv/root"))].into();
        let fs = FsEntry { cwd_id: 1, root_id: 2, umask: Some(0o027) };
        assert_eq!(plan(&fs, lookup(&files)).unwrap(), Plan { cwd: "/tmp/w".into(), chroot: None, umask: Some(0o027) });
        let fs = FsEntry { cwd_id: 1, root_id: 3, umask: None };
        assert_eq!(plan(&fs, lookup(&files)).unwrap().chroot.as_deref(), Some("/srv/root"));
        assert!(plan(&FsEntry { cwd_id: 9, ..fs }, lookup(&files)).is_err());
    }

    #[test]
    fn our_own_fs_dumps() {
        let mut files = FileTable::new();
        let me = std::process::id() as i32;
        let fs = dump(&mut files, me, Some(0o022)).unwrap();
        assert_ne!(fs.cwd_id, fs.root_id);
        assert_eq!(fs.umask, Some(0o022));
    }
}
