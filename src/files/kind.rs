//! The interface every kind of file description implements (CRIU's
//! file_desc_ops plus its collect and dump callbacks): recognize an fd at
//! dump and record it as a files.img entry (side images included), then
//! open it again at restore. A kind keeps what it gathers across fds (pipe
//! data, socket queues, terminals...) in its own type inside [`State`], so
//! adding a kind touches only its module and one line of
//! [`super::registry::KINDS`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fs::Metadata;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;

use anyhow::{Context, Result};

use super::FileTable;
use crate::images::pb::{FdTypes, FdinfoEntry, FileEntry};
use crate::images::ImageDir;
use crate::proc::fdinfo::FdInfo;

/// Per-kind data, one value of each type: a kind asks for its own type
/// (created empty on first use), no other module knows it.
#[derive(Default)]
pub struct State(HashMap<TypeId, Box<dyn Any>>);

impl State {
    /// The kind's value of type `T`, created empty on first use.
    pub fn get_mut<T: Any + Default>(&mut self) -> &mut T {
        self.0
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("a state slot holds the type it is keyed by")
    }

    /// The kind's value of type `T`, if it made one.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>()).and_then(|b| b.downcast_ref())
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "State({} kinds)", self.0.len())
    }
}

/// One fd of a task, as the dump finds it: what /proc says of it, and a
/// way to get a copy of it (pidfd_getfd; the task is seized).
pub struct FdProbe<'a> {
    pub pid: i32,
    pub fd: i32,
    /// What /proc/PID/fd/FD links to (`pipe:[123]`, `anon_inode:[eventfd]`, a path).
    pub link: &'a str,
    /// stat of the file behind it.
    pub md: &'a Metadata,
    pub info: &'a FdInfo,
    /// The file status flags (open flags without O_CLOEXEC).
    pub flags: u32,
    pub(super) pidfd: &'a mut Option<OwnedFd>,
}

impl FdProbe<'_> {
    /// /proc/PID/fd/FD, to open the file the way the task sees it.
    pub fn proc_path(&self) -> String {
        format!("/proc/{}/fd/{}", self.pid, self.fd)
    }

    /// A copy of the fd (its very description).
    pub fn dup(&mut self) -> Result<OwnedFd> {
        let (pid, fd) = (self.pid, self.fd);
        if self.pidfd.is_none() {
            *self.pidfd = Some(crate::sys::pidfd::open(nix::unistd::Pid::from_raw(pid)).with_context(|| format!("pidfd_open({pid})"))?);
        }
        let p = self.pidfd.as_ref().context("pidfd")?;
        crate::sys::pidfd::getfd(p.as_fd(), fd).with_context(|| format!("pidfd_getfd of fd {fd} of {pid}"))
    }

    /// "fd N of task P", for errors.
    pub fn who(&self) -> String {
        format!("fd {} of task {}", self.fd, self.pid)
    }

    /// The fd's type for a refusal: `socket (socket:[1])`, `anon inode (...)`, ...
    pub fn describe(&self) -> String {
        let ft = self.md.file_type();
        let link = self.link;
        if ft.is_socket() {
            format!("socket ({link})")
        } else if let Some(name) = link.strip_prefix("anon_inode:") {
            format!("anon inode ({name})")
        } else if ft.is_block_device() {
            format!("block device ({link})")
        } else if ft.is_fifo() {
            format!("fifo ({link})")
        } else {
            link.to_string()
        }
    }
}

/// What dumping a tree's fds shares between its kinds and tasks.
pub struct DumpCx<'a> {
    pub files: &'a mut FileTable,
    pub fds: &'a mut super::fds::Fds,
    pub stat: &'a crate::proc::stat::Stat,
    pub shell_job: bool,
}

/// The files of an image directory as a restore reads them: files.img by
/// id, and what each kind's side images hold (in [`State`]).
#[derive(Debug, Default)]
pub struct Images {
    pub entries: HashMap<u32, FileEntry>,
    pub state: State,
}

impl std::ops::Deref for Images {
    type Target = HashMap<u32, FileEntry>;
    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

impl std::ops::DerefMut for Images {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.entries
    }
}

impl From<HashMap<u32, FileEntry>> for Images {
    fn from(entries: HashMap<u32, FileEntry>) -> Images {
        Images { entries, state: State::default() }
    }
}

/// A restore opening the tree's descriptions.
pub struct OpenCx<'a> {
    pub images: &'a Images,
    /// Opened so far, by file id (a kind may open more than one: a pair).
    pub opened: HashMap<u32, OwnedFd>,
    /// More descriptions to open (files in flight in socket queues).
    pub more: Vec<FdinfoEntry>,
    /// What a kind keeps while opening (created pipes, pairs made...).
    pub state: State,
    pub shell_job: bool,
    /// Every pid of the tree.
    pub tree_pids: &'a [i32],
}

/// One kind of file description. Every method but the first four has a
/// default that does nothing.
pub trait FdKind: Sync {
    /// The kind's name, for logs.
    fn name(&self) -> &'static str;

    /// The fd type of its files.img records (one kind per type).
    fn fd_type(&self) -> FdTypes;

    /// Dump: whether the fd is of this kind (the first kind of the table
    /// that claims it dumps it).
    fn claims(&self, p: &FdProbe) -> bool;

    /// Dump: the description's files.img record, as file `id` (its owner,
    /// fown, is filled in after), and whatever the kind keeps for its side
    /// images.
    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry>;

    /// Dump: put the finished record into files.img (a unix socket's waits
    /// for its peer's, as CRIU orders them).
    fn record(&self, e: FileEntry, cx: &mut DumpCx) {
        cx.files.push(e);
    }

    /// Dump: whether a file of this kind is carried when found in flight
    /// (passed in a socket queue).
    fn travels(&self) -> bool {
        false
    }

    /// Dump, once every task's fds are recorded, just before the clocks are
    /// read for the image: final checks and readings. `who` names the
    /// dumped tasks.
    fn dumped_all(&self, _st: &mut State, _files: &mut FileTable, _who: &str) -> Result<()> {
        Ok(())
    }

    /// Dump: write the kind's side images.
    fn write_images(&self, _st: &State, _dir: &ImageDir) -> Result<()> {
        Ok(())
    }

    /// Restore: read the kind's side images.
    fn load_images(&self, _dir: &ImageDir, _imgs: &mut Images) -> Result<()> {
        Ok(())
    }

    /// Restore, before any file is checked or opened: make what the
    /// records need on disk (ghost files), pointing the records at it.
    fn prepare(&self, _dir: &ImageDir, _imgs: &mut Images) -> Result<()> {
        Ok(())
    }

    /// Restore: every task holds its files now (ghosts go again).
    fn settled(&self, _imgs: &Images) {}

    /// Restore: the names `--inherit-fd fd[N]:NAME` may give the file.
    fn inherit_keys(&self, _fe: &FileEntry) -> Vec<String> {
        Vec::new()
    }

    /// Restore: open the description of `fe` (for fd `fd`, or u32::MAX for
    /// a file in flight). None: opened later, by its task
    /// ([`FdKind::open_late`]).
    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>>;

    /// Restore: the file status flags to set on what [`FdKind::open`] gave
    /// (None: it set them itself).
    fn status_flags(&self, _fe: &FileEntry) -> Option<u32> {
        None
    }

    /// Restore: every description of the tree is open.
    fn opened_all(&self, _cx: &mut OpenCx) -> Result<()> {
        Ok(())
    }

    /// Restore, in the task, once every task of the tree exists: open what
    /// [`FdKind::open`] left for later.
    fn open_late(&self, _fe: &FileEntry, _fd: u32) -> Result<Option<OwnedFd>> {
        Ok(None)
    }

    /// Restore, in the first task that holds the description, with every
    /// fd of it at its number: what needs other fds (epoll targets).
    fn installed(&self, _fe: &FileEntry, _fd: i32) -> Result<()> {
        Ok(())
    }

    /// Restore: file ids other records of this one stand for (a terminal's
    /// path record), not to be checked as files of their own.
    fn companions(&self, _fe: &FileEntry) -> Vec<u32> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::State;

    #[test]
    fn state_keeps_one_value_per_type() {
        #[derive(Default)]
        struct A(u32);
        #[derive(Default)]
        struct B(&'static str);
        let mut s = State::default();
        assert!(s.get::<A>().is_none());
        s.get_mut::<A>().0 = 7;
        s.get_mut::<B>().0 = "b";
        s.get_mut::<A>().0 += 1;
        assert_eq!(s.get::<A>().map(|a| a.0), Some(8));
        assert_eq!(s.get::<B>().map(|b| b.0), Some("b"));
    }
}
