//! Link remaps (`--link-remap`): a file a task holds open after one of its
//! names was unlinked, while another name remains. As CRIU 4.2 does, the
//! dump gives the inode one more hard link, `link_remap.ID` beside the
//! name it had, recorded as a regular-file record of its own and a LINKED
//! record in remap-fpath.img; the file itself stays where it is. A restore
//! links it back under its old name (when that is free), lets the tasks
//! open it there, and removes both names once they hold it. A dump that
//! fails, or leaves its tasks running, removes the links it made.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::images::pb::{FownEntry, RegFileEntry};

/// The links a dump made: removed on drop unless [`Made::keep`] is called
/// (the dump succeeded and its tasks are gone).
#[derive(Debug, Default)]
pub struct Made {
    paths: Vec<PathBuf>,
}

impl Made {
    /// Give `file` (open on an unlinked `name`) the name `link_remap.ID`
    /// in `name`'s directory, and return the record of that name as file
    /// `id`.
    pub fn link(&mut self, id: u32, name: &str, file: &File) -> Result<RegFileEntry> {
        let dir = Path::new(name).parent().with_context(|| format!("{name} has no directory"))?;
        let path = dir.join(format!("link_remap.{id}"));
        nix::unistd::linkat(file.as_fd(), "", nix::fcntl::AT_FDCWD, &path, nix::fcntl::AtFlags::AT_EMPTY_PATH)
            .with_context(|| format!("can't link unlinked {name} back as {}", path.display()))?;
        info!("Linked unlinked {name} back as {}", path.display());
        self.paths.push(path.clone());
        Ok(RegFileEntry {
            id,
            flags: 0,
            pos: 0,
            fown: FownEntry::default(),
            name: path.to_string_lossy().into_owned(),
            ..Default::default()
        })
    }

    /// Leave the links for the restore.
    pub fn keep(&mut self) {
        self.paths.clear();
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        for p in self.paths.drain(..) {
            if let Err(e) = std::fs::remove_file(&p) {
                warn!("can't remove link remap {}: {e}", p.display());
            }
        }
    }
}

/// At restore: the names made for the tasks to open linked files by.
#[derive(Debug, Default)]
pub struct Restored {
    /// Old names linked back: removed in any case.
    linked: RefCell<Vec<PathBuf>>,
    /// The dump's link_remap names: removed once every task holds its
    /// files (a failed restore leaves them for the next attempt).
    sources: RefCell<Vec<PathBuf>>,
}

impl Restored {
    /// Make `orig` (a file's record) name the file `remap` (its
    /// link_remap name) names: under its old name when that is free.
    pub fn relink(&self, orig: &mut RegFileEntry, remap: &str) -> Result<()> {
        let source = PathBuf::from(remap);
        if !self.sources.borrow().contains(&source) {
            self.sources.borrow_mut().push(source);
        }
        if std::fs::symlink_metadata(&orig.name).is_ok() {
            info!("{} is taken: file {} is opened as {remap}", orig.name, orig.id);
            orig.name = remap.to_string();
            return Ok(());
        }
        std::fs::hard_link(remap, &orig.name).with_context(|| format!("can't link {remap} back to {}", orig.name))?;
        self.linked.borrow_mut().push(PathBuf::from(&orig.name));
        Ok(())
    }

    /// Every task holds its files: remove the names.
    pub fn settle(&self) {
        for p in self.linked.borrow_mut().drain(..).chain(self.sources.borrow_mut().drain(..)) {
            if let Err(e) = std::fs::remove_file(&p) {
                warn!("can't remove {}: {e}", p.display());
            }
        }
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        for p in self.linked.get_mut().drain(..) {
            let _ = std::fs::remove_file(&p);
        }
    }
}
