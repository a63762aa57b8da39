//! memfd file descriptions (FD_TYPES MEMFD), as CRIU 4.2 records them: a
//! memfd_file_entry per description (its flags, position, owner and the
//! memfd.img inode it opens), the inode once per dump with its name, size,
//! owner, mode and seals, its contents in pagemap-shmem-SHMID.img (written
//! once every task is recorded, unless a mapping of it already carried
//! them; see `mem::memfd`). Mapped memfds share the inodes.
//!
//! Restore makes every inode the records name once, before any task exists
//! (`prepare`: the tasks inherit it), and opens each description as a
//! description of its own on it (through /proc/self/fd, as CRIU does), at
//! its position. Hugetlb memfds are carried too (their page size in
//! memfd.img's hugetlb_flag). A memfd in flight (SCM_RIGHTS) is refused.

use std::fs::File;
use std::os::fd::OwnedFd;
use anyhow::{Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, Images, OpenCx};
use crate::images::pb::{FdTypes, FileEntry, MemfdFileEntry};
use crate::images::ImageDir;
use crate::mem::memfd::Memfds;

/// The memfd kind (FD_TYPES MEMFD).
pub struct Memfd;

/// The memfd objects of a restore (made by [`FdKind::prepare`]), for the
/// fds and the mappings of every task: another handle on them.
pub fn made(imgs: &Images) -> Result<Memfds> {
    imgs.state.get::<Memfds>().map_or_else(|| Ok(Memfds::default()), Memfds::try_clone)
}

/// A description of memfd file `id` of the restore's images, read-only
/// (None: `id` is no memfd), for an executable run from a memfd.
pub fn open_file(imgs: &Images, id: u32) -> Result<Option<File>> {
    if imgs.get(&id).is_none_or(|fe| fe.memfd.is_none()) {
        return Ok(None);
    }
    let memfds = imgs.state.get::<Memfds>().with_context(|| format!("no memfd was made for file {id}"))?;
    memfds.open(id, libc::O_RDONLY).map(Some)
}

fn is_o_path(flags: u32) -> bool {
    flags & libc::O_PATH as u32 != 0
}

impl FdKind for Memfd {
    fn name(&self) -> &'static str {
        "memfd"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Memfd
    }

    fn claims(&self, p: &FdProbe) -> bool {
        // A memfd has no name in any directory: never a path of a file
        // still linked.
        crate::mem::memfd::is_memfd_file(p.link, p.md)
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        // Read-only through /proc (an O_PATH or write-only description
        // could not be read): its contents are read from it later.
        let f = File::open(p.proc_path()).with_context(|| format!("can't open {} ({})", p.who(), p.link))?;
        let (pid, fd) = (p.pid, p.fd);
        let what = move || format!("fd {fd} of task {pid}");
        let inode_id = cx.files.memfds.inode_id(p.link, &f, &what)?;
        let e = MemfdFileEntry { id, flags: p.flags, pos: p.info.pos, fown: Default::default(), inode_id: inode_id as u32 };
        Ok(FileEntry { r#type: FdTypes::Memfd as i32, id, memfd: Some(e), ..Default::default() })
    }

    fn prepare(&self, dir: &ImageDir, imgs: &mut Images) -> Result<()> {
        let made = Memfds::create(dir, &imgs.entries)?;
        if !made.is_empty() {
            *imgs.state.get_mut::<Memfds>() = made;
        }
        Ok(())
    }

    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.memfd.as_ref().with_context(|| format!("file {} has no memfd entry", fe.id))?;
        let memfds = cx.images.state.get::<Memfds>().with_context(|| format!("fd {fd}: no memfd was made for file {}", fe.id))?;
        let f = memfds.open(fe.id, e.flags as i32).with_context(|| format!("fd {fd}"))?;
        if !is_o_path(e.flags) {
            nix::unistd::lseek(&f, e.pos as i64, nix::unistd::Whence::SeekSet)
                .with_context(|| format!("fd {fd}: memfd file {} back to position {}", fe.id, e.pos))?;
        }
        Ok(Some(f.into()))
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        // An O_PATH description takes no F_SETFL.
        fe.memfd.as_ref().map(|e| e.flags).filter(|f| !is_o_path(*f))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::{Seek, SeekFrom};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::fs::{FileExt, MetadataExt};

    use nix::sys::memfd::{memfd_create, MFdFlags};

    fn reopen(f: &File, flags: libc::c_int) -> File {
        use std::os::unix::fs::OpenOptionsExt;
        let acc = flags & libc::O_ACCMODE;
        std::fs::OpenOptions::new()
            .read(acc != libc::O_WRONLY)
            .write(acc != libc::O_RDONLY)
            .custom_flags(flags & !libc::O_ACCMODE)
            .open(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .unwrap()
    }

    fn seals(f: &OwnedFd) -> i32 {
        nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_GET_SEALS).unwrap()
    }

    /// Two memfds, one held by three descriptions (read-write at one
    /// position, read-only non-blocking at another, O_PATH): one inode
    /// each in the images, every description its own again, on one object
    /// per inode, with its flags and position; name, size, seals and
    /// contents as they were.
    #[test]
    fn round_trip() {
        let Ok(fd) = memfd_create(c"rt one", MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC) else {
            eprintln!("skipped: memfd_create(MFD_ALLOW_SEALING) is not available");
            return;
        };
        let mut rw = File::from(fd);
        let size = 3 * 4096 + 77;
        rw.set_len(size).unwrap();
        rw.write_all_at(b"start", 0).unwrap();
        rw.write_all_at(b"tail", size - 4).unwrap();
        rw.seek(SeekFrom::Start(1234)).unwrap();
        nix::fcntl::fcntl(&rw, nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::F_SEAL_GROW)).unwrap();
        let mut ro = reopen(&rw, libc::O_RDONLY | libc::O_NONBLOCK);
        ro.seek(SeekFrom::Start(9)).unwrap();
        let path = reopen(&rw, libc::O_PATH);
        let other = File::from(memfd_create(c"rt two", MFdFlags::MFD_CLOEXEC).unwrap());
        other.write_all_at(b"second", 0).unwrap();
        let list = [rw.as_raw_fd(), ro.as_raw_fd(), path.as_raw_fd(), other.as_raw_fd()];
        let flags = |f: &dyn AsRawFd| crate::sys::fd::get_fl(f.as_raw_fd()).unwrap();
        let orig_flags = [flags(&rw), flags(&ro), flags(&path), flags(&other)];
        let want = {
            let mut v = vec![0u8; size as usize];
            rw.read_exact_at(&mut v, 0).unwrap();
            v
        };
        let (before, back, after) = super::super::round_trip::run_with(&list, move || drop((rw, ro, path, other)));
        let rec = |d: &super::super::round_trip::Dumped| {
            d.entries.iter().map(|e| e.memfd.as_ref().map(|m| (m.flags, m.pos, m.inode_id)).unwrap()).collect::<Vec<_>>()
        };
        let b = rec(&before);
        assert_eq!(b.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(), [(1234, 1), (9, 1), (0, 1), (0, 2)]);
        assert_eq!(rec(&after), b);
        assert_eq!(back.iter().map(|f| flags(f)).collect::<Vec<_>>(), orig_flags);
        let ino = |f: &OwnedFd| std::fs::metadata(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap().ino();
        assert!(ino(&back[0]) == ino(&back[1]) && ino(&back[1]) == ino(&back[2]) && ino(&back[0]) != ino(&back[3]));
        let link = std::fs::read_link(format!("/proc/self/fd/{}", back[1].as_raw_fd())).unwrap();
        assert_eq!(link.to_string_lossy(), "/memfd:rt one (deleted)");
        assert_eq!(seals(&back[0]), libc::F_SEAL_GROW);
        assert_eq!(seals(&back[3]), libc::F_SEAL_SEAL);
        let f = File::from(back[1].try_clone().unwrap());
        let mut got = vec![0u8; size as usize];
        f.read_exact_at(&mut got, 0).unwrap();
        assert!(got == want, "contents differ");
        let mut two = [0u8; 6];
        File::from(back[3].try_clone().unwrap()).read_exact_at(&mut two, 0).unwrap();
        assert_eq!(&two, b"second");
        assert_eq!(File::from(back[3].try_clone().unwrap()).metadata().unwrap().len(), 6);
    }
}
