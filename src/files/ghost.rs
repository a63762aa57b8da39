//! Ghost files: regular files a task holds open (or maps) after they were
//! unlinked. A dump carries their contents in ghost-file-N.img, tied to
//! the file's reg entry by a GHOST record in remap-fpath.img (CRIU's
//! layout: the entry, then the bytes raw, or, from 12 KiB up as CRIU
//! and for any smaller file with a hole, ghost_chunk_entry + bytes for
//! each data extent SEEK_DATA/SEEK_HOLE find, so holes stay holes in
//! either restorer; --ghost-limit counts the blocks in use, as CRIU's
//! does). A restore recreates each one (at its old path when that is
//! free, else beside it; chunked ones sized first, then the extents
//! written, so what lies between stays a hole), lets every task open it
//! by that name, and unlinks it before the tree runs. An unlinked FIFO,
//! directory or device node is a ghost without contents (made again with
//! mkfifo, mkdir or mknod; a FIFO's buffered bytes are the fifo kind's).
//! remap-fpath.img's LINKED records (`--link-remap`) are `link_remap.rs`'s.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};

use crate::images::kind::kinds;
use crate::images::pb::{FileEntry, GhostChunkEntry, GhostFileEntry, RemapFilePathEntry, RemapType, Timeval};
use crate::images::{ImageDir, ImageReader, ImageWriter};

/// The size from which CRIU writes a ghost's contents as chunks (its
/// GHOST_CHUNKS_THRESH, three pages). Below it CRIU writes the bytes raw,
/// which its restore (and ours) writes back dense: we chunk a smaller
/// file too when it has a hole, which both restores read.
const CHUNKS_FROM: u64 = 3 * 4096;

/// What `/proc` appends to the link of an unlinked file.
const DELETED: &str = " (deleted)";

/// A ghost found by a dump: its record and contents.
#[derive(Debug)]
pub struct Ghost {
    pub id: u32,
    dev: u64,
    ino: u64,
    entry: GhostFileEntry,
    /// The contents: (offset, bytes) per data extent when chunked, else
    /// one part at 0 with the whole file.
    parts: Vec<(u64, Vec<u8>)>,
}

/// The ghosts of a dump and the remap records pointing at them.
#[derive(Debug, Default)]
pub struct Ghosts {
    found: Vec<Ghost>,
    remaps: Vec<RemapFilePathEntry>,
    next_id: u32,
}

/// `name` without the " (deleted)" tag, when it has it.
pub fn strip_deleted(name: &str) -> Option<&str> {
    name.strip_suffix(DELETED)
}

/// `dev` in the kernel's own encoding (major above 20 bits of minor), as
/// CRIU records a ghost's device (the mount's s_dev, what inotify and
/// fanotify marks carry too).
fn kernel_dev(dev: u64) -> u32 {
    (libc::major(dev) << 20) | libc::minor(dev)
}

fn tv(sec: i64, nsec: i64) -> Timeval {
    Timeval { tv_sec: sec as u64, tv_usec: (nsec / 1000) as u64 }
}

impl Ghosts {
    /// Record that file id `orig_id` is the unlinked `file` (named `name`,
    /// tag stripped), carrying its contents if this inode is new. Refuses
    /// what is not a regular file and anything over `limit` bytes.
    pub fn record(&mut self, orig_id: u32, name: &str, file: &File, limit: u64) -> Result<()> {
        let md = file.metadata().with_context(|| format!("can't stat unlinked {name}"))?;
        use std::os::unix::fs::FileTypeExt;
        let ft = md.file_type();
        let node = ft.is_char_device() || ft.is_block_device();
        // Nothing to carry but the inode's own attributes.
        let fifo = ft.is_fifo() || ft.is_dir() || node || ft.is_symlink();
        if !ft.is_file() && !fifo {
            bail!("unlinked {name} is not a regular file, fifo, directory, symlink or device node: such ghosts are not supported yet");
        }
        // A symlink (held by an O_PATH fd) carries its target.
        let target = if ft.is_symlink() {
            let t = nix::fcntl::readlinkat(file, "").with_context(|| format!("can't read the target of unlinked symlink {name}"))?;
            Some(t.to_string_lossy().into_owned())
        } else {
            None
        };
        let used = md.blocks() * 512;
        if used > limit {
            bail!("can't dump ghost file {name} of {} bytes in use ({} bytes long): over --ghost-limit ({limit}); raise it", used, md.size());
        }
        let id = match self.found.iter().find(|g| g.dev == md.dev() && g.ino == md.ino()) {
            Some(g) => g.id,
            None => {
                self.next_id += 1;
                let id = self.next_id;
                let extents = if fifo { Vec::new() } else { data_extents(file, md.size()).with_context(|| format!("unlinked {name}"))? };
                let dense = extents.len() == 1 && extents[0] == (0, md.size());
                let chunked = md.size() >= CHUNKS_FROM || (md.size() > 0 && !dense);
                let mut parts = Vec::new();
                let parts_at = if chunked || fifo { extents } else { vec![(0, md.size())] };
                for (off, len) in parts_at {
                    let mut data = vec![0u8; len as usize];
                    file.read_exact_at(&mut data, off).with_context(|| format!("can't read unlinked {name}"))?;
                    parts.push((off, data));
                }
                let entry = GhostFileEntry {
                    uid: md.uid(),
                    gid: md.gid(),
                    mode: md.mode(),
                    dev: Some(kernel_dev(md.dev())),
                    ino: Some(md.ino()),
                    rdev: node.then(|| md.rdev() as u32),
                    atim: Some(tv(md.atime(), md.atime_nsec())),
                    mtim: Some(tv(md.mtime(), md.mtime_nsec())),
                    chunks: chunked.then_some(true),
                    size: chunked.then_some(md.size()),
                    symlnk_target: target,
                };
                info!("Dumping ghost file {name} ({} bytes) as {id:#x}", md.size());
                self.found.push(Ghost { id, dev: md.dev(), ino: md.ino(), entry, parts });
                id
            }
        };
        self.remaps.push(RemapFilePathEntry { orig_id, remap_id: id, remap_type: Some(RemapType::Ghost as i32) });
        Ok(())
    }

    /// Record that file `orig_id` is opened through the link_remap name
    /// recorded as file `remap_id` (`--link-remap`).
    pub fn linked(&mut self, orig_id: u32, remap_id: u32) {
        self.remaps.push(RemapFilePathEntry { orig_id, remap_id, remap_type: Some(RemapType::Linked as i32) });
    }

    /// Write remap-fpath.img and one ghost-file-N.img per ghost (nothing
    /// when there are none, as CRIU).
    pub fn write(&self, dir: &ImageDir) -> Result<()> {
        if self.remaps.is_empty() {
            return Ok(());
        }
        let mut w = ImageWriter::create(dir, "remap-fpath.img", kinds::remap_fpath())?;
        for r in &self.remaps {
            w.write(r)?;
        }
        w.finish()?;
        for g in &self.found {
            let kind = kinds::ghost_file();
            let mut w = ImageWriter::create(dir, &kind.file_name(g.id.into()), kind)?;
            w.write(&g.entry)?;
            for (off, data) in &g.parts {
                if g.entry.chunks == Some(true) {
                    w.chunk(&GhostChunkEntry { len: data.len() as u64, off: *off })?;
                }
                w.payload(data)?;
            }
            w.finish()?;
        }
        Ok(())
    }
}

/// The data extents of `file` (`size` bytes long) as (offset, length),
/// by SEEK_DATA/SEEK_HOLE: what lies between them are holes. A file
/// system that knows no SEEK_DATA gives the whole file as one extent.
fn data_extents(file: &File, size: u64) -> Result<Vec<(u64, u64)>> {
    use nix::unistd::{lseek, Whence};
    let mut out = Vec::new();
    let mut at: i64 = 0;
    while (at as u64) < size {
        let d = match lseek(file, at, Whence::SeekData) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(_) if at == 0 => return Ok(vec![(0, size)]),
            Err(e) => return Err(e).context("SEEK_DATA"),
        };
        let h = lseek(file, d, Whence::SeekHole).context("SEEK_HOLE")?;
        let h = h.min(size as i64);
        if h > d {
            out.push((d as u64, (h - d) as u64));
        }
        at = h;
    }
    Ok(out)
}

/// Ghosts recreated for a restore; unlinked on [`Recreated::unlink`] or drop.
#[derive(Debug, Default)]
pub struct Recreated {
    /// Behind a RefCell: unlinked through a shared restore plan. (path,
    /// a directory).
    paths: std::cell::RefCell<Vec<(PathBuf, bool)>>,
    /// Files opened through the dump's link_remap names.
    linked: super::link_remap::Restored,
}

impl Recreated {
    /// Recreate every ghost of remap-fpath.img and point the reg entries
    /// that use it at the recreated file. Other remap kinds are refused.
    pub fn create(dir: &ImageDir, files: &mut HashMap<u32, FileEntry>) -> Result<Recreated> {
        let mut made = Recreated::default();
        if !dir.exists("remap-fpath.img") {
            return Ok(made);
        }
        let remaps: Vec<RemapFilePathEntry> = ImageReader::open_kind(dir, "remap-fpath.img", kinds::remap_fpath())?.all()?;
        let mut by_id: HashMap<u32, String> = HashMap::new();
        for r in remaps {
            if r.remap_type == Some(RemapType::Linked as i32) {
                let remap = files
                    .get(&r.remap_id)
                    .and_then(|f| f.reg.as_ref())
                    .map(|e| e.name.clone())
                    .with_context(|| format!("remap-fpath.img: the link of file {} ({}) is not in files.img", r.orig_id, r.remap_id))?;
                let orig = files
                    .get_mut(&r.orig_id)
                    .and_then(|f| f.reg.as_mut())
                    .with_context(|| format!("remap-fpath.img: file {} is not a regular file in files.img", r.orig_id))?;
                made.linked.relink(orig, &remap)?;
                continue;
            }
            if r.remap_type != Some(RemapType::Ghost as i32) {
                bail!("remap-fpath.img: remap of file {} has type {:?}: only ghost and linked files are supported yet", r.orig_id, r.remap_type);
            }
            let reg = files
                .get_mut(&r.orig_id)
                .and_then(|f| f.reg.as_mut())
                .with_context(|| format!("remap-fpath.img: file {} is not a regular file in files.img", r.orig_id))?;
            let path = match by_id.get(&r.remap_id) {
                Some(p) => p.clone(),
                None => {
                    let p = made.recreate(dir, r.remap_id, &reg.name)?;
                    by_id.insert(r.remap_id, p.clone());
                    p
                }
            };
            reg.name = path;
        }
        Ok(made)
    }

    fn recreate(&mut self, dir: &ImageDir, id: u32, name: &str) -> Result<String> {
        let img = kinds::ghost_file().file_name(id.into());
        let mut r = ImageReader::open_kind(dir, &img, kinds::ghost_file())?;
        let g: GhostFileEntry = r.expect()?;
        let ty = g.mode & libc::S_IFMT;
        let (fifo, dir, node) = (ty == libc::S_IFIFO, ty == libc::S_IFDIR, ty == libc::S_IFCHR || ty == libc::S_IFBLK || ty == libc::S_IFLNK);
        if ty != libc::S_IFREG && !fifo && !dir && !node {
            bail!("{img}: ghost {name} has mode {:o}: only regular files, fifos, directories, symlinks and device nodes are supported yet", g.mode);
        }
        // The old name when it is free, so the task sees the same link.
        let path = if std::fs::symlink_metadata(name).is_err() { name.to_string() } else { format!("{name}.cr.{id:x}.ghost") };
        if fifo || dir || node {
            return self.recreate_node(&img, &g, path);
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("can't create ghost file {path}"))?;
        self.paths.get_mut().push((PathBuf::from(&path), false));
        if g.chunks == Some(true) {
            let size = g.size.with_context(|| format!("{img}: chunked ghost {name} has no size"))?;
            f.set_len(size).with_context(|| format!("can't size ghost file {path}"))?;
            while let Some(c) = r.next_chunk()? {
                let data = r.payload(c.len)?;
                f.write_all_at(&data, c.off).with_context(|| format!("can't write ghost file {path}"))?;
            }
        } else {
            f.write_all_at(&r.rest()?, 0).with_context(|| format!("can't write ghost file {path}"))?;
        }
        std::os::unix::fs::fchown(&f, Some(g.uid), Some(g.gid)).with_context(|| format!("can't chown ghost file {path}"))?;
        f.set_permissions(std::fs::Permissions::from_mode(g.mode & 0o7777))
            .with_context(|| format!("can't chmod ghost file {path}"))?;
        let t = |v: Option<Timeval>| match v {
            Some(v) => nix::sys::time::TimeSpec::new(v.tv_sec as i64, v.tv_usec as i64 * 1000),
            None => nix::sys::time::TimeSpec::UTIME_OMIT,
        };
        nix::sys::stat::futimens(&f, &t(g.atim), &t(g.mtim)).with_context(|| format!("can't set times of ghost file {path}"))?;
        info!("Recreated ghost file {path} from {img}");
        Ok(path)
    }

    /// A ghost without contents: a FIFO, directory or device node made
    /// again at `path` with the recorded mode, owner and times.
    fn recreate_node(&mut self, img: &str, g: &GhostFileEntry, path: String) -> Result<String> {
        use nix::sys::stat::{Mode, SFlag};
        let ty = g.mode & libc::S_IFMT;
        let perm = Mode::from_bits_truncate(g.mode & 0o7777);
        let made = match ty {
            libc::S_IFDIR => nix::unistd::mkdir(path.as_str(), Mode::from_bits_truncate(0o700)),
            libc::S_IFIFO => nix::unistd::mkfifo(path.as_str(), Mode::from_bits_truncate(0o600)),
            libc::S_IFLNK => {
                let target = g.symlnk_target.as_deref().with_context(|| format!("{img}: symlink ghost {path} has no target"))?;
                nix::unistd::symlinkat(target, nix::fcntl::AT_FDCWD, path.as_str())
            }
            _ => {
                let rdev = g.rdev.with_context(|| format!("{img}: device node ghost {path} has no rdev"))?;
                nix::sys::stat::mknod(path.as_str(), SFlag::from_bits_truncate(ty), Mode::from_bits_truncate(0o600), u64::from(rdev))
            }
        };
        made.with_context(|| format!("can't create ghost {path} (mode {:o})", g.mode))?;
        self.paths.get_mut().push((PathBuf::from(&path), ty == libc::S_IFDIR));
        nix::unistd::fchownat(nix::fcntl::AT_FDCWD, path.as_str(), Some(g.uid.into()), Some(g.gid.into()), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .with_context(|| format!("can't chown ghost {path}"))?;
        // A symlink has no mode of its own to set.
        if ty != libc::S_IFLNK {
            nix::sys::stat::fchmodat(nix::fcntl::AT_FDCWD, path.as_str(), perm, nix::sys::stat::FchmodatFlags::FollowSymlink)
                .with_context(|| format!("can't chmod ghost {path}"))?;
        }
        let t = |v: Option<Timeval>| match v {
            Some(v) => nix::sys::time::TimeSpec::new(v.tv_sec as i64, v.tv_usec as i64 * 1000),
            None => nix::sys::time::TimeSpec::UTIME_OMIT,
        };
        nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, path.as_str(), &t(g.atim), &t(g.mtim), nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            .with_context(|| format!("can't set times of ghost {path}"))?;
        info!("Recreated ghost {path} from {img}");
        Ok(path)
    }

    /// Unlink every recreated ghost and remove the link_remap names (the
    /// tasks hold their files by now).
    pub fn unlink(&self) {
        self.remove_ghosts();
        self.linked.settle();
    }

    fn remove_ghosts(&self) {
        for (p, dir) in self.paths.borrow_mut().drain(..) {
            let r = if dir { std::fs::remove_dir(&p) } else { std::fs::remove_file(&p) };
            if let Err(e) = r {
                warn!("can't unlink ghost {}: {e}", p.display());
            }
        }
    }
}

impl Drop for Recreated {
    /// A failed restore: the ghosts go (the images hold them); the
    /// link_remap names stay for the next attempt (`link_remap::Restored`).
    fn drop(&mut self) {
        self.remove_ghosts();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_follow_holes() {
        let tmp = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(tmp.path().join("s")).unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_all_at(&[1u8; 4096], 2 << 20).unwrap();
        f.write_all_at(&[2u8; 10], (8 << 20) - 10).unwrap();
        let e = data_extents(&f, 8 << 20).unwrap();
        if e.len() == 1 && e[0] == (0, 8 << 20) {
            eprintln!("skipped: {} keeps no holes", tmp.path().display());
            return;
        }
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].0 <= 2 << 20 && e[0].0 + e[0].1 >= (2 << 20) + 4096, "{e:?}");
        assert_eq!(e[1].0 + e[1].1, 8 << 20, "{e:?}");
    }

    /// Ghost `f` (unlinked `src`) dumped to `imgs` and recreated at `src`.
    fn dump_and_recreate(src: &std::path::Path, f: &File, imgs: &std::path::Path) -> (Ghost, Recreated) {
        let mut gs = Ghosts::default();
        gs.record(3, src.to_str().unwrap(), f, 1 << 30).unwrap();
        std::fs::create_dir(imgs).unwrap();
        let dir = ImageDir::open(imgs).unwrap();
        gs.write(&dir).unwrap();
        let mut files: HashMap<u32, FileEntry> = HashMap::new();
        let reg = crate::images::pb::RegFileEntry { id: 3, name: src.to_str().unwrap().into(), ..Default::default() };
        files.insert(3, FileEntry { id: 3, reg: Some(reg), ..Default::default() });
        let made = Recreated::create(&dir, &mut files).unwrap();
        (gs.found.pop().unwrap(), made)
    }

    #[test]
    fn ghost_dev_is_in_kernel_encoding() {
        // As /proc/PID/mountinfo's s_dev and inotify's sdev: 254:0 is 0xfe00000.
        assert_eq!(kernel_dev(libc::makedev(254, 0)), 0xfe0_0000);
        assert_eq!(kernel_dev(libc::makedev(8, 300)), (8 << 20) | 300);
        assert_eq!(kernel_dev(libc::makedev(0, 0x2a)), 0x2a);
    }

    #[test]
    fn small_ghosts_keep_their_holes_and_dense_ones_stay_raw() {
        let tmp = tempfile::tempdir().unwrap();
        let probe = tmp.path().join("probe");
        {
            let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&probe).unwrap();
            f.set_len(1 << 20).unwrap();
            f.write_all_at(&[1], 0).unwrap();
            if data_extents(&f, 1 << 20).unwrap() == vec![(0, 1 << 20)] {
                eprintln!("skipped: {} keeps no holes", tmp.path().display());
                return;
            }
        }
        /// (size, data islands as (offset, length), written chunked)
        type Case = (u64, &'static [(u64, usize)], bool);
        let cases: [Case; 5] = [
            (8192, &[(4096, 4096)], true),           // hole first, under CRIU's threshold
            (10000, &[(0, 4096)], true),             // hole past the last data
            (65536, &[], true),                      // all hole
            (100, &[(0, 100)], false),               // small and dense: raw, as CRIU
            (3 * 4096, &[(0, 3 * 4096)], true),      // dense at CRIU's threshold: chunked, as CRIU
        ];
        for (i, (size, islands, chunked)) in cases.into_iter().enumerate() {
            let src = tmp.path().join(format!("g{i}"));
            let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&src).unwrap();
            f.set_len(size).unwrap();
            for (off, len) in islands {
                f.write_all_at(&vec![0x5a; *len], *off).unwrap();
            }
            let before = data_extents(&f, size).unwrap();
            let blocks = f.metadata().unwrap().blocks();
            std::fs::remove_file(&src).unwrap();
            let (g, made) = dump_and_recreate(&src, &f, &tmp.path().join(format!("imgs{i}")));
            assert_eq!(g.entry.chunks == Some(true), chunked, "case {i}");
            assert_eq!(g.entry.size, chunked.then_some(size), "case {i}");
            assert_eq!(g.entry.dev, Some(kernel_dev(f.metadata().unwrap().dev())), "case {i}");
            let back = File::open(&src).unwrap();
            let md = back.metadata().unwrap();
            assert_eq!(md.size(), size, "case {i}");
            assert_eq!(md.blocks(), blocks, "case {i}: blocks in use");
            assert_eq!(data_extents(&back, size).unwrap(), before, "case {i}");
            let mut want = vec![0u8; size as usize];
            for (off, len) in islands {
                want[*off as usize..*off as usize + len].fill(0x5a);
            }
            assert_eq!(std::fs::read(&src).unwrap(), want, "case {i}");
            made.unlink();
        }
    }

    #[test]
    fn ghosts_round_trip_through_images() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("gone");
        let big: Vec<u8> = (0..(CHUNKS_FROM as usize + 8192)).map(|i| if i < 4096 * 2 { 0 } else { (i % 251) as u8 }).collect();
        for (i, content) in [b"small ghost".to_vec(), big].into_iter().enumerate() {
            std::fs::write(&src, &content).unwrap();
            let f = File::open(&src).unwrap();
            std::fs::remove_file(&src).unwrap();
            let mut gs = Ghosts::default();
            gs.record(7, src.to_str().unwrap(), &f, 4 << 20).unwrap();
            gs.record(8, src.to_str().unwrap(), &f, 4 << 20).unwrap();
            assert_eq!(gs.found.len(), 1, "one inode, one ghost");
            let imgs = tmp.path().join(format!("imgs{i}"));
            std::fs::create_dir(&imgs).unwrap();
            let dir = ImageDir::open(&imgs).unwrap();
            gs.write(&dir).unwrap();
            let mut files: HashMap<u32, FileEntry> = HashMap::new();
            for id in [7, 8] {
                let reg = crate::images::pb::RegFileEntry { id, name: src.to_str().unwrap().into(), ..Default::default() };
                files.insert(id, FileEntry { id, reg: Some(reg), ..Default::default() });
            }
            let made = Recreated::create(&dir, &mut files).unwrap();
            assert_eq!(files[&7].reg.as_ref().unwrap().name, src.to_str().unwrap());
            assert_eq!(std::fs::read(&src).unwrap(), content);
            made.unlink();
            assert!(!src.exists());
            let o = gs.record(9, "x", &f, 3);
            assert!(o.unwrap_err().to_string().contains("--ghost-limit"));
        }
    }
}
