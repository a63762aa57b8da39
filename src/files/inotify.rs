//! inotify instances: each watch's descriptor number, event mask, the
//! file handle of its inode (padded to CRIU's 16 words) and its path, from
//! /proc/PID/fdinfo; on restore the handle is opened again (same filesystem;
//! else the recorded path, if it is still that inode), the watch added to
//! its path, and its number kept with INOTIFY_IOC_SETNEXTWD.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{FdTypes, FhEntry, FileEntry, InotifyFileEntry, InotifyWdEntry};
use crate::proc::fdinfo::FdInfo;

/// The inotify kind (FD_TYPES INOTIFY).
pub struct Inotify;

impl FdKind for Inotify {
    fn name(&self) -> &'static str {
        "inotify"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Inotify
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.link == "anon_inode:inotify"
    }

    fn dump(&self, p: &mut FdProbe, id: u32, _cx: &mut DumpCx) -> Result<FileEntry> {
        let e = entry(id, p.flags, p.info).with_context(|| p.who())?;
        Ok(FileEntry { r#type: FdTypes::Inotify as i32, id, ify: Some(e), ..Default::default() })
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.ify.as_ref().map(|e| e.flags)
    }

    fn open(&self, fe: &FileEntry, _fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.ify.as_ref().with_context(|| format!("file {} has no inotify entry", fe.id))?;
        restore(e).map(Some)
    }
}

fn kv<'a>(words: &'a [&'a str], key: &str) -> Option<&'a str> {
    words.iter().find_map(|w| w.strip_prefix(key))
}

/// How many words of handle CRIU's images carry at least.
const HANDLE_WORDS: usize = 16;

/// Parse the `inotify wd:` lines of an inotify fdinfo.
pub fn entry(id: u32, flags: u32, info: &FdInfo) -> Result<InotifyFileEntry> {
    let mut wds = Vec::new();
    for (k, v) in &info.extra {
        if k != "inotify wd" {
            continue;
        }
        let line = format!("wd:{v}");
        let words: Vec<&str> = line.split_whitespace().collect();
        let hex = |key: &str| kv(&words, key).and_then(|x| u64::from_str_radix(x, 16).ok());
        let mut wd = InotifyWdEntry {
            id,
            i_ino: hex("ino:").context("no ino")?,
            mask: hex("mask:").context("no mask")? as u32,
            ignored_mask: hex("ignored_mask:").unwrap_or(0) as u32,
            s_dev: hex("sdev:").context("no sdev")? as u32,
            wd: hex("wd:").context("no wd")? as u32,
            f_handle: fh_entry(&words, &line)?,
        };
        // The path too, as CRIU records it (its restore opens the watch by
        // path); an inode no longer reachable by name keeps only its handle.
        wd.f_handle.path = path_of(&wd).ok().filter(|p| !p.ends_with(" (deleted)"));
        wds.push(wd);
    }
    Ok(InotifyFileEntry { id, flags, fown: Default::default(), wd: wds })
}

/// The file handle of an fdinfo watch or mark line (split in `words`),
/// as CRIU records it: at least 16 words, no path yet.
pub(super) fn fh_entry(words: &[&str], line: &str) -> Result<FhEntry> {
    let handle_hex = kv(words, "f_handle:").with_context(|| format!("no f_handle in {line:?}"))?;
    let bytes: Vec<u8> = (0..handle_hex.len() / 2)
        .map(|i| u8::from_str_radix(&handle_hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad f_handle in {line:?}"))?;
    let words64 = bytes.chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    });
    Ok(FhEntry {
        bytes: kv(words, "fhandle-bytes:").and_then(|x| u32::from_str_radix(x, 16).ok()).unwrap_or(bytes.len() as u32),
        r#type: kv(words, "fhandle-type:").and_then(|x| u32::from_str_radix(x, 16).ok()).context("no fhandle-type")?,
        // CRIU writes at least 16 words (its FH_ENTRY_SIZES).
        handle: words64.chain(std::iter::repeat(0)).take(HANDLE_WORDS.max(bytes.len().div_ceil(8))).collect(),
        path: None,
        mnt_id: None,
    })
}

/// A mount point of the filesystem `s_dev` (kernel encoding), from our
/// mountinfo.
fn mount_of(s_dev: u32) -> Result<String> {
    let (maj, min) = (s_dev >> 20, s_dev & 0xfffff);
    let mi = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    mi.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&format!("{maj}:{min}").as_str())).then(|| f.get(4).map(|s| s.to_string())).flatten()
        })
        .with_context(|| format!("no mount of device {maj}:{min} for an inotify watch"))
}

/// The path of a watched inode, from its file handle.
pub fn path_of(w: &InotifyWdEntry) -> Result<String> {
    let fd = open_handle(w.s_dev, &w.f_handle).with_context(|| format!("the inode {} of inotify watch {} is gone", w.i_ino, w.wd))?;
    let p = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)))?;
    Ok(p.to_string_lossy().into_owned())
}

/// The inode file handle `fh` names on filesystem `s_dev`, opened O_PATH.
pub(super) fn open_handle(s_dev: u32, fh: &FhEntry) -> Result<OwnedFd> {
    let mnt = mount_of(s_dev)?;
    let mfd = std::fs::File::open(&mnt).with_context(|| format!("opening mount {mnt}"))?;
    let bytes: Vec<u8> = fh.handle.iter().flat_map(|x| x.to_le_bytes()).take(fh.bytes as usize).collect();
    Ok(crate::sys::fhandle::open_by_handle(mfd.as_fd(), fh.r#type as i32, &bytes)?)
}

/// Recreate an inotify instance with its watches under their numbers.
pub fn restore(e: &InotifyFileEntry) -> Result<OwnedFd> {
    let fd = crate::sys::inotify::init().context("inotify_init1")?;
    let mut wds = e.wd.clone();
    wds.sort_by_key(|w| w.wd);
    for w in &wds {
        let path = match (path_of(w), &w.f_handle.path) {
            (Ok(p), _) => p,
            // Not openable by handle here (another filesystem instance):
            // the recorded path, if it still names the same inode.
            (Err(e), Some(p)) => {
                let ino = std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok();
                if ino != Some(w.i_ino) {
                    return Err(e.context(format!("and {p} is not inode {} any more", w.i_ino)));
                }
                p.clone()
            }
            (Err(e), None) => return Err(e),
        };
        crate::sys::inotify::set_next_wd(fd.as_fd(), w.wd as i32).context("INOTIFY_IOC_SETNEXTWD")?;
        let c = std::ffi::CString::new(path.clone())?;
        let got = crate::sys::inotify::add_watch(fd.as_fd(), &c, w.mask).with_context(|| format!("watching {path}"))?;
        if got != w.wd as i32 {
            bail!("inotify watch on {path} got number {got}, not {}", w.wd);
        }
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_watches() {
        let i = crate::proc::fdinfo::parse(
            "pos:\t0\nflags:\t00\nmnt_id:\t17\nino:\t1038\n\
             inotify wd:1 ino:3c4a7 sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a7c4030000000000\n",
        )
        .unwrap();
        let e = super::entry(3, 0, &i).unwrap();
        let w = &e.wd[0];
        assert_eq!((w.wd, w.i_ino, w.s_dev, w.mask), (1, 0x3c4a7, 0xfe00000, 2));
        assert_eq!((w.f_handle.bytes, w.f_handle.r#type, w.f_handle.handle[0]), (8, 1, 0x3c4a7));
        assert_eq!(w.f_handle.handle.len(), 16, "padded to CRIU's 16 words");
    }

    #[test]
    fn round_trip() {
        use std::os::fd::{AsFd, AsRawFd};
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"y").unwrap();
        let fd = crate::sys::inotify::init().unwrap();
        for (p, mask) in [(&a, libc::IN_MODIFY), (&b, libc::IN_OPEN | libc::IN_CLOSE_WRITE)] {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            crate::sys::inotify::add_watch(fd.as_fd(), &c, mask).unwrap();
        }
        let (before, _back, after) = super::super::round_trip::run(&[fd.as_raw_fd()]);
        let w = |e: &crate::images::pb::FileEntry| e.ify.as_ref().unwrap().wd.iter().map(|w| (w.wd, w.i_ino, w.mask)).collect::<Vec<_>>();
        assert_eq!(w(&before.entries[0]).len(), 2);
        assert_eq!(w(&after.entries[0]), w(&before.entries[0]));
    }
}