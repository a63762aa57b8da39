//! memfd inodes: the memfd.img records the MEMFD file descriptions of
//! files.img name, shared by mappings and fds (`files::memfd`). CRIU 4.2
//! records shared memory this way (MAP_SHARED|MAP_ANONYMOUS memory too, as
//! a memfd named "/dev/zero" on kernels where such memory lives on the
//! shmem device; shared anonymous hugetlb memory as "/anon_hugepage").
//!
//! Dump records each inode once ([`Recorded`]): its name, owner, mode,
//! size, seals, hugetlb page size and shmid (the inode number); a memfd a
//! task maps gets a MEMFD file of its own (the VMA's shmid). Contents go to
//! pagemap-shmem-SHMID.img: with the memory of a task that maps it, or,
//! for a memfd only fds hold, once every task is recorded.
//!
//! Restore makes every inode the records name once, before the tasks
//! exist (they inherit it): memfd_create with the recorded name (sealing
//! allowed only when seals other than F_SEAL_SEAL were recorded; hugetlb
//! with its page size), its size, its contents from pagemap-shmem-SHMID.img,
//! owner and mode, then its seals. Each task opens the file ids its VMAs
//! and fds name from that object.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

use crate::images::kind::kinds;
use crate::files::FileTable;
use crate::images::pb::{FdTypes, FileEntry, FownEntry, MemfdFileEntry, MemfdInodeEntry};
use crate::images::{ImageDir, ImageReader, ImageWriter};
use crate::proc::maps::MapEntry;

/// The prefix /proc shows before a memfd's name.
const PREFIX: &str = "/memfd:";

/// Whether /proc names this mapping a memfd.
pub fn is_memfd_map(m: &MapEntry) -> bool {
    m.name.starts_with(PREFIX)
}

/// A memfd's name as memfd_create was given it, from what /proc shows.
fn memfd_name(shown: &str) -> &str {
    let n = shown.strip_prefix(PREFIX).unwrap_or(shown);
    n.strip_suffix(" (deleted)").unwrap_or(n)
}

/// The access mode a mapping's file was opened with, from the mode of
/// its /proc/PID/map_files link (the kernel shows the file's r/w there).
/// The restore reopens the file so, and mprotect can later widen the
/// mapping as far as the task's could.
pub(super) fn link_access(path: &str) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::symlink_metadata(path).with_context(|| format!("can't lstat {path}"))?.permissions().mode();
    Ok(match (mode & 0o400 != 0, mode & 0o200 != 0) {
        (true, true) => libc::O_RDWR as u32,
        (false, true) => libc::O_WRONLY as u32,
        _ => libc::O_RDONLY as u32,
    })
}

/// The memfd inodes a dump recorded (memfd.img, in order), each with a
/// file of it to read its contents from once every task is recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    pub inodes: Vec<MemfdInodeEntry>,
    /// (dev, ino) and a file of each inode, in `inodes` order.
    objects: Vec<((u64, u64), File)>,
}

/// The seals of memfd `f` (`what` names it). Kernels before 4.16 have no
/// seals on hugetlbfs (EINVAL): F_SEAL_SEAL, as CRIU records them.
fn seals_of(f: &File, hugetlb: bool, what: &dyn Fn() -> String) -> Result<u32> {
    match nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_GET_SEALS) {
        Err(nix::errno::Errno::EINVAL) if hugetlb => Ok(libc::F_SEAL_SEAL as u32),
        r => Ok(r.with_context(|| format!("{}: F_GET_SEALS", what()))? as u32),
    }
}

impl Recorded {
    /// The memfd.img inode id of memfd `f` (shown as `shown` by /proc),
    /// recording the inode the first time it is seen. `what` names the
    /// fd or mapping, for errors.
    pub fn inode_id(&mut self, shown: &str, f: &File, what: &dyn Fn() -> String) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let md = f.metadata().with_context(|| format!("{}: can't stat", what()))?;
        let key = (md.dev(), md.ino());
        if let Some(i) = self.objects.iter().position(|(k, _)| *k == key) {
            return Ok(self.inodes[i].inode_id);
        }
        let hugetlb_flag = if super::hugetlb::is_hugetlb(f).with_context(what)? {
            Some(super::hugetlb::memfd_flag(f).with_context(what)?)
        } else {
            None
        };
        let inode_id = self.inodes.len() as u64 + 1;
        self.inodes.push(MemfdInodeEntry {
            name: memfd_name(shown).to_string(),
            uid: md.uid(),
            gid: md.gid(),
            size: md.len(),
            shmid: md.ino() as u32,
            seals: seals_of(f, hugetlb_flag.is_some(), what)?,
            inode_id,
            hugetlb_flag,
            mode: Some(md.mode()),
        });
        let copy = f.try_clone().with_context(|| format!("{}: dup", what()))?;
        self.objects.push((key, copy));
        Ok(inode_id)
    }

    /// Dump the contents of every inode whose shmid is not in `done`
    /// (dumped with a mapping of it), each as pagemap-shmem-SHMID.img and
    /// its pages file, numbered from `*pages_id` on. Returns the pages
    /// written. Empty inodes have no pagemap (as CRIU writes them).
    pub fn dump_contents(&self, dir: &ImageDir, pages_id: &mut u32, done: &mut Vec<u64>) -> Result<u64> {
        let mut written = 0;
        for (e, (_, f)) in self.inodes.iter().zip(&self.objects) {
            let shmid = u64::from(e.shmid);
            if done.contains(&shmid) || e.size == 0 {
                continue;
            }
            done.push(shmid);
            let len = f.metadata().map(|m| m.len()).unwrap_or(e.size);
            written += super::pages::dump_object(f, shmid, len, dir, *pages_id)
                .with_context(|| format!("contents of memfd:{} (inode {})", e.name, e.inode_id))?;
            *pages_id += 1;
        }
        Ok(written / crate::images::pagemap::PAGE_SIZE)
    }
}

/// Record the memfd that task `pid` maps at `m` (its inode once per dump)
/// and return its files.img id and the VMA's fdflags. A shared, writable
/// mapping of a memfd sealed against writing is refused: the restore
/// seals the memfd before it maps it.
pub fn record_mapping(pid: i32, m: &MapEntry, files: &mut FileTable) -> Result<(u32, u32)> {
    let path = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    let what = || format!("memfd {} mapped at {:#x}-{:#x} by task {pid}", m.name, m.start, m.end);
    let f = File::open(&path).with_context(|| format!("{}: can't open {path}", what()))?;
    let fdflags = link_access(&path).with_context(what)?;
    if m.shared && m.write && seals_of(&f, true, &what)? & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) as u32 != 0 {
        bail!("{}: mapped shared and writable, yet sealed against writing (F_SEAL_WRITE or F_SEAL_FUTURE_WRITE): not supported yet", what());
    }
    Ok((record_file(&m.name, &f, files, &what)?, fdflags))
}

/// Whether a file /proc names `shown`, of metadata `md`, is a memfd.
pub fn is_memfd_file(shown: &str, md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    shown.starts_with(PREFIX) && shown.ends_with(" (deleted)") && md.is_file() && md.nlink() == 0
}

/// The files.img id of memfd `f` as a mapped file or an executable (shown
/// as `shown` by /proc): one MEMFD record per inode, without flags or
/// position, recorded the first time.
pub fn record_file(shown: &str, f: &File, files: &mut FileTable, what: &dyn Fn() -> String) -> Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let md = f.metadata().with_context(|| format!("{}: can't stat", what()))?;
    if let Some(id) = files.mapped_id(md.dev(), md.ino()) {
        return Ok(id);
    }
    let inode_id = files.memfds.inode_id(shown, f, what)?;
    let id = files.alloc_id();
    files.push(FileEntry {
        r#type: FdTypes::Memfd as i32,
        id,
        memfd: Some(MemfdFileEntry { id, flags: 0, pos: 0, fown: FownEntry::default(), inode_id: inode_id as u32 }),
        ..Default::default()
    });
    files.set_mapped(md.dev(), md.ino(), id);
    Ok(id)
}

/// Write memfd.img (nothing when no memfd was recorded).
pub fn write_inodes(dir: &ImageDir, inodes: &[MemfdInodeEntry]) -> Result<()> {
    if inodes.is_empty() {
        return Ok(());
    }
    let mut w = ImageWriter::create(dir, "memfd.img", kinds::memfd_inode())?;
    for e in inodes {
        w.write(e)?;
    }
    w.finish()?;
    Ok(())
}

/// The memfd objects of a restore, by files.img id.
#[derive(Debug, Default)]
pub struct Memfds {
    /// files.img id -> memfd.img inode id.
    files: HashMap<u32, u64>,
    /// inode id -> the object (as memfd_create returned it) and its name.
    inodes: HashMap<u64, (OwnedFd, String)>,
}

/// The memfd inodes of memfd.img (none when the image is absent).
pub fn read_inodes(dir: &ImageDir) -> Result<Vec<MemfdInodeEntry>> {
    if !dir.exists("memfd.img") {
        return Ok(Vec::new());
    }
    Ok(ImageReader::open_kind(dir, "memfd.img", kinds::memfd_inode())?.all()?)
}

impl Memfds {
    /// Make every memfd inode a MEMFD record of `files` (files.img) names,
    /// once: as a mapping's file or as an fd's.
    pub fn create(dir: &ImageDir, files: &HashMap<u32, FileEntry>) -> Result<Memfds> {
        let mut out = Memfds::default();
        let mut ids: Vec<(u32, u64)> =
            files.values().filter_map(|fe| fe.memfd.as_ref().map(|m| (fe.id, u64::from(m.inode_id)))).collect();
        if ids.is_empty() {
            return Ok(out);
        }
        ids.sort_unstable();
        let inodes = read_inodes(dir)?;
        for (id, ino) in ids {
            if let std::collections::hash_map::Entry::Vacant(slot) = out.inodes.entry(ino) {
                let e = inodes.iter().find(|e| e.inode_id == ino).with_context(|| format!("memfd inode {ino} of file id {id} is not in memfd.img"))?;
                slot.insert((make(dir, e)?, e.name.clone()));
            }
            out.files.insert(id, ino);
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }

    /// Another handle on the same objects (for a forked task).
    pub fn try_clone(&self) -> Result<Memfds> {
        let mut inodes = HashMap::new();
        for (ino, (fd, name)) in &self.inodes {
            inodes.insert(*ino, (fd.try_clone().with_context(|| format!("dup of memfd:{name}"))?, name.clone()));
        }
        Ok(Memfds { files: self.files.clone(), inodes })
    }

    /// Open memfd file `id` with access mode `flags` (O_RDONLY, O_WRONLY or
    /// O_RDWR; O_PATH kept) as a file description of its own on the
    /// object, through /proc/self/fd.
    pub fn open(&self, id: u32, flags: i32) -> Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let ino = self.files.get(&id).with_context(|| format!("file id {id} is not a memfd of the images"))?;
        let (fd, name) = self.inodes.get(ino).with_context(|| format!("memfd inode {ino} was not made"))?;
        let acc = flags & libc::O_ACCMODE;
        std::fs::OpenOptions::new()
            .read(acc != libc::O_WRONLY)
            .write(acc != libc::O_RDONLY)
            .custom_flags(flags & libc::O_PATH)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .with_context(|| format!("reopening memfd:{name} (file id {id})"))
    }
}

/// Make one memfd inode as recorded.
fn make(dir: &ImageDir, e: &MemfdInodeEntry) -> Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let huge = e.hugetlb_flag.is_some_and(|h| h != 0);
    let what = format!("memfd inode {} (memfd:{}{})", e.inode_id, e.name, if huge { ", hugetlb" } else { "" });
    // The kernel seals a memfd made without MFD_ALLOW_SEALING with exactly
    // F_SEAL_SEAL; other seals need it, and are added once filled.
    let sealing = e.seals != libc::F_SEAL_SEAL as u32;
    let mut flags = MFdFlags::MFD_CLOEXEC;
    if sealing {
        flags |= MFdFlags::MFD_ALLOW_SEALING;
    }
    if let Some(h) = e.hugetlb_flag.filter(|h| *h != 0) {
        // MFD_HUGETLB and the page size bits, as recorded.
        flags |= MFdFlags::from_bits_retain(h);
    }
    let name = CString::new(e.name.as_str()).with_context(|| format!("{what}: a NUL byte in the name"))?;
    let fd = memfd_create(name.as_c_str(), flags).with_context(|| format!("memfd_create for {what}"))?;
    nix::unistd::ftruncate(&fd, e.size as i64).with_context(|| format!("{what}: ftruncate to {} bytes", e.size))?;
    let f = File::from(fd);
    super::shmem::fill(dir, u64::from(e.shmid), &f, e.size, &what)?;
    nix::unistd::fchown(f.as_fd(), Some(e.uid.into()), Some(e.gid.into()))
        .with_context(|| format!("{what}: fchown to {}:{}", e.uid, e.gid))?;
    if let Some(mode) = e.mode {
        nix::sys::stat::fchmod(f.as_fd(), nix::sys::stat::Mode::from_bits_truncate(mode & 0o7777))
            .with_context(|| format!("{what}: fchmod {:o}", mode & 0o7777))?;
    }
    if sealing {
        let seals = nix::fcntl::SealFlag::from_bits_retain(e.seals as i32);
        nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_ADD_SEALS(seals)).with_context(|| format!("{what}: adding seals {:#x}", e.seals))?;
    }
    // Kept read-only: a writer open anywhere would keep the memfd from
    // becoming a task's executable (PR_SET_MM_MAP's exe_fd). Each
    // description is reopened from it with its own access.
    let ro = File::open(format!("/proc/self/fd/{}", f.as_raw_fd())).with_context(|| format!("{what}: reopening it read-only"))?;
    Ok(OwnedFd::from(ro))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::vma::status;
    use crate::sys::mm;
    use std::os::unix::fs::{FileExt, MetadataExt};

    const PAGE: u64 = 4096;

    fn seals_of(f: &File) -> i32 {
        nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_GET_SEALS).unwrap()
    }

    /// A memfd mapped shared in this process, dumped (record_mapping and
    /// dump_shmem on ourselves) and made again from the images: same
    /// name, size, mode, seals and bytes, including the tail past the
    /// size in its last page.
    #[test]
    fn a_mapped_memfd_round_trips_through_the_images() {
        use nix::sys::memfd::{memfd_create, MFdFlags};
        let Ok(fd) = memfd_create(c"round trip", MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC) else {
            eprintln!("skipped: memfd_create(MFD_ALLOW_SEALING) is not available");
            return;
        };
        let size = 2 * PAGE + 100;
        let f = File::from(fd);
        f.set_len(size).unwrap();
        f.write_all_at(b"first", 0).unwrap();
        f.write_all_at(b"end", size - 3).unwrap();
        nix::sys::stat::fchmod(f.as_fd(), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
        let at = mm::map(0, 3 * PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, Some(f.as_fd()), 0).unwrap();
        // Bytes past the size in the last page: only a mapping sees them.
        let mem = std::fs::OpenOptions::new().read(true).write(true).open("/proc/self/mem").unwrap();
        mem.write_all_at(b"beyond", at + size + 10).unwrap();
        nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::F_SEAL_GROW)).unwrap();
        // "first" (written with pwrite, never touched through the mapping)
        // is in the page cache only, not in this task's page tables: the
        // dump must find it in the object, not through the task's pagemap.
        let pagemap = File::open("/proc/self/pagemap").unwrap();
        let mut pte = [0u8; 8];
        pagemap.read_exact_at(&mut pte, at / PAGE * 8).unwrap();
        assert_eq!(u64::from_ne_bytes(pte) >> 63, 0, "the first page of the mapping is already in the page tables");

        let pid = std::process::id() as i32;
        let maps = crate::proc::maps::read(pid).unwrap();
        let m: Vec<MapEntry> = maps.into_iter().filter(|m| m.start == at).collect();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "/memfd:round trip (deleted)");
        let mut files = FileTable::new();
        let vmas = crate::mem::vma::collect(pid, &m, &mut files, false).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = ImageDir::open(tmp.path()).unwrap();
        let mut done = Vec::new();
        crate::mem::pages::dump_shmem(pid, &vmas, &dir, 1, &mut done).unwrap();
        pagemap.read_exact_at(&mut pte, at / PAGE * 8).unwrap();
        assert_eq!(u64::from_ne_bytes(pte) >> 63, 0, "the dump faulted the first page into the task");
        // Dumped with the mapping already: not again.
        assert_eq!(files.memfds.dump_contents(&dir, &mut 2, &mut done).unwrap(), 0);
        files.write(&dir).unwrap();
        let _ = mm::unmap(at, 3 * PAGE);

        let v = &vmas[0].entry;
        assert_eq!(v.status, status::AREA_REGULAR | status::FILE_SHARED | status::AREA_MEMFD);
        assert_eq!(v.fdflags, Some(libc::O_RDWR as u32));
        let entries: HashMap<u32, FileEntry> = files.entries().iter().map(|e| (e.id, e.clone())).collect();
        let made = Memfds::create(&dir, &entries).unwrap();
        let g = made.open(v.shmid as u32, libc::O_RDWR).unwrap();
        let md = g.metadata().unwrap();
        assert_eq!(md.len(), size);
        assert_eq!(md.mode() & 0o7777, 0o640);
        assert_eq!(seals_of(&g), seals_of(&f));
        let link = std::fs::read_link(format!("/proc/self/fd/{}", g.as_raw_fd())).unwrap();
        assert_eq!(link.to_string_lossy(), "/memfd:round trip (deleted)");
        let mut got = vec![0u8; size as usize];
        g.read_exact_at(&mut got, 0).unwrap();
        let mut want = vec![0u8; size as usize];
        f.read_exact_at(&mut want, 0).unwrap();
        assert!(got == want, "contents differ");
        let at = mm::map(0, 3 * PAGE, libc::PROT_READ, libc::MAP_SHARED, Some(g.as_fd()), 0).unwrap();
        let mut tail = [0u8; 6];
        mem.read_exact_at(&mut tail, at + size + 10).unwrap();
        let _ = mm::unmap(at, 3 * PAGE);
        assert_eq!(&tail, b"beyond");
    }

    fn inode(seals: u32) -> MemfdInodeEntry {
        MemfdInodeEntry { name: "x".into(), uid: 0, gid: 0, size: PAGE, shmid: 1, seals, inode_id: 1, hugetlb_flag: None, mode: None }
    }

    /// Seals are applied as recorded; a shared writable mapping of a
    /// memfd sealed against writing is refused at dump, naming the VMA.
    #[test]
    fn seals_come_back_and_write_seals_under_a_writable_mapping_are_refused() {
        use nix::sys::memfd::{memfd_create, MFdFlags};
        let tmp = tempfile::tempdir().unwrap();
        let dir = ImageDir::open(tmp.path()).unwrap();
        let f = File::from(make(&dir, &inode((libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL) as u32)).unwrap());
        assert_eq!(seals_of(&f), libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL);
        // F_SEAL_SEAL alone: made without MFD_ALLOW_SEALING, as the kernel seals it.
        let f = File::from(make(&dir, &inode(libc::F_SEAL_SEAL as u32)).unwrap());
        assert_eq!(seals_of(&f), libc::F_SEAL_SEAL);
        // No seal at all: sealing stays allowed.
        let f = File::from(make(&dir, &inode(0)).unwrap());
        assert_eq!(seals_of(&f), 0);

        let Ok(fd) = memfd_create(c"sealed", MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC) else {
            eprintln!("skipped: memfd_create(MFD_ALLOW_SEALING) is not available");
            return;
        };
        let f = File::from(fd);
        f.set_len(PAGE).unwrap();
        let at = mm::map(0, PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, Some(f.as_fd()), 0).unwrap();
        let sealed = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::F_SEAL_FUTURE_WRITE));
        let pid = std::process::id() as i32;
        let m: Vec<MapEntry> = crate::proc::maps::read(pid).unwrap().into_iter().filter(|m| m.start == at).collect();
        let r = record_mapping(pid, &m[0], &mut FileTable::new());
        let _ = mm::unmap(at, PAGE);
        if sealed.is_err() {
            eprintln!("skipped: F_SEAL_FUTURE_WRITE is not available");
            return;
        }
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains(&format!("mapped at {at:#x}")) && e.contains("sealed against writing"), "{e}");
    }
}
