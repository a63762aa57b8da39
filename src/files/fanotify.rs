//! fanotify groups: as CRIU 4.2 records them in files.img, a
//! fanotify_file_entry with the group's init flags and event flags and
//! each mark from /proc/PID/fdinfo: inode marks by file handle (and path),
//! mount marks by mount id and mount point, each with its mark flags, mask
//! and ignored mask. On restore the group is made again with
//! fanotify_init and every mark added back. Events queued in the group
//! can't be carried (CRIU 4.2 drops them): the dump refuses them, as it
//! refuses filesystem marks and marks of other kinds (no place in the
//! image).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{
    FanotifyFileEntry, FanotifyInodeMarkEntry, FanotifyMarkEntry, FanotifyMountMarkEntry, FdTypes, FileEntry, MarkType,
};
use crate::proc::fdinfo::FdInfo;

/// The fanotify kind (FD_TYPES FANOTIFY).
pub struct Fanotify;

const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_MOUNT: u32 = 0x10;
const FAN_MARK_IGNORED_MASK: u32 = 0x20;
/// The ignore mask set the newer way (Linux 6.0), kept as a mark flag.
const FAN_MARK_IGNORE: u32 = 0x400;

impl FdKind for Fanotify {
    fn name(&self) -> &'static str {
        "fanotify"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Fanotify
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.link == "anon_inode:[fanotify]"
    }

    fn dump(&self, p: &mut FdProbe, id: u32, _cx: &mut DumpCx) -> Result<FileEntry> {
        let f = p.dup()?;
        let queued = crate::sys::fanotify::queued(f.as_fd()).with_context(|| format!("FIONREAD on {}", p.who()))?;
        if queued > 0 {
            bail!("{} is a fanotify group with {queued} bytes of events queued: they would be lost (not supported)", p.who());
        }
        let e = entry(id, p.flags, p.info, p.pid).with_context(|| format!("{} (fanotify)", p.who()))?;
        Ok(FileEntry { r#type: FdTypes::Fanotify as i32, id, ffy: Some(e), ..Default::default() })
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.ffy.as_ref().map(|e| e.flags)
    }

    fn open(&self, fe: &FileEntry, fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.ffy.as_ref().with_context(|| format!("file {} has no fanotify entry", fe.id))?;
        restore(e).with_context(|| format!("fanotify group of fd {fd}")).map(Some)
    }
}

fn kv<'a>(words: &'a [&'a str], key: &str) -> Option<&'a str> {
    words.iter().find_map(|w| w.strip_prefix(key))
}

fn hex(words: &[&str], key: &str, line: &str) -> Result<u64> {
    kv(words, key).and_then(|x| u64::from_str_radix(x, 16).ok()).with_context(|| format!("no {key} in {line:?}"))
}

/// The group of a fanotify fd whose fdinfo is `info` (of task `pid`).
fn entry(id: u32, flags: u32, info: &FdInfo, pid: i32) -> Result<FanotifyFileEntry> {
    let mut e = FanotifyFileEntry { id, flags, ..Default::default() };
    for (k, v) in &info.extra {
        let Some(what) = k.strip_prefix("fanotify ") else { continue };
        let line = format!("{what}:{v}");
        let words: Vec<&str> = line.split_whitespace().collect();
        match what {
            "flags" => {
                e.faflags = hex(&words, "flags:", &line)? as u32;
                e.evflags = hex(&words, "event-flags:", &line)? as u32;
            }
            "ino" => {
                let mut fh = super::inotify::fh_entry(&words, &line)?;
                let s_dev = hex(&words, "sdev:", &line)? as u32;
                // The path too, as CRIU records it (its restore opens the
                // mark by path); an inode no longer reachable by name keeps
                // only its handle.
                fh.path = super::inotify::open_handle(s_dev, &fh)
                    .ok()
                    .and_then(|f| std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok())
                    .map(|p| p.to_string_lossy().into_owned())
                    .filter(|p| !p.ends_with(" (deleted)"));
                e.mark.push(FanotifyMarkEntry {
                    id: 0,
                    r#type: MarkType::Inode as i32,
                    mflags: hex(&words, "mflags:", &line)? as u32,
                    mask: hex(&words, "mask:", &line)? as u32,
                    ignored_mask: hex(&words, "ignored_mask:", &line)? as u32,
                    s_dev,
                    ie: Some(FanotifyInodeMarkEntry { i_ino: hex(&words, "ino:", &line)?, f_handle: fh }),
                    me: None,
                });
            }
            "mnt_id" => {
                let mnt_id = hex(&words, "mnt_id:", &line)? as u32;
                let (s_dev, path) = mount(pid, mnt_id)?;
                e.mark.push(FanotifyMarkEntry {
                    id: 0,
                    r#type: MarkType::Mount as i32,
                    mflags: hex(&words, "mflags:", &line)? as u32,
                    mask: hex(&words, "mask:", &line)? as u32,
                    ignored_mask: hex(&words, "ignored_mask:", &line)? as u32,
                    s_dev,
                    ie: None,
                    me: Some(FanotifyMountMarkEntry { mnt_id, path: Some(path) }),
                });
            }
            "sdev" => bail!("a filesystem mark (FAN_MARK_FILESYSTEM, {line:?}): not supported (CRIU's image has no place for it)"),
            _ => bail!("a fanotify mark of an unknown kind ({line:?}): not supported"),
        }
    }
    Ok(e)
}

/// Kernel encoding of a device number (what fdinfo's sdev shows).
fn kdev(major: u32, minor: u32) -> u32 {
    (major << 20) | minor
}

/// (device, mount point) of mount `mnt_id` of task `pid`.
fn mount(pid: i32, mnt_id: u32) -> Result<(u32, String)> {
    let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).with_context(|| format!("reading mountinfo of {pid}"))?;
    for l in mi.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.first().and_then(|x| x.parse::<u32>().ok()) != Some(mnt_id) {
            continue;
        }
        let (maj, min) = f.get(2).and_then(|d| d.split_once(':')).with_context(|| format!("bad mountinfo line {l:?}"))?;
        let dev = kdev(maj.parse()?, min.parse()?);
        return Ok((dev, f.get(4).context("no mount point")?.to_string()));
    }
    bail!("mount {mnt_id} of a fanotify mark is not in the mountinfo of task {pid}")
}

/// Make the group of `e` again, with its marks.
pub fn restore(e: &FanotifyFileEntry) -> Result<OwnedFd> {
    // The group's flags as they were (fdinfo shows FAN_CLOEXEC and
    // FAN_NONBLOCK as given to fanotify_init; the file's O_NONBLOCK is
    // set after, from its status flags).
    let flags = e.faflags;
    let g = crate::sys::fanotify::init(flags, e.evflags).with_context(|| format!("fanotify_init({flags:#x}, {:#x})", e.evflags))?;
    // fdinfo lists the newest mark first: added oldest first, they come
    // back in the same order (as CRIU adds them).
    for m in e.mark.iter().rev() {
        add_mark(g.as_fd(), m)?;
    }
    Ok(g)
}

/// Add mark `m` to group `g`: its mask, then its ignored mask.
fn add_mark(g: BorrowedFd<'_>, m: &FanotifyMarkEntry) -> Result<()> {
    let (target, what, kind) = match (MarkType::try_from(m.r#type), &m.ie, &m.me) {
        (Ok(MarkType::Inode), Some(ie), _) => (open_inode(m.s_dev, ie)?, format!("inode {}", ie.i_ino), 0),
        (Ok(MarkType::Mount), _, Some(me)) => {
            let path = me.path.as_deref().with_context(|| format!("mount mark of mount {} has no path", me.mnt_id))?;
            let f = open_path(path).with_context(|| format!("opening mount point {path}"))?;
            let md = f.metadata()?;
            if kdev(libc::major(md.dev()), libc::minor(md.dev())) != m.s_dev {
                bail!("{path} is not on the filesystem of the mount mark ({:#x}) any more", m.s_dev);
            }
            (OwnedFd::from(f), format!("mount {path}"), FAN_MARK_MOUNT)
        }
        _ => bail!("a fanotify mark of type {} without its record", m.r#type),
    };
    let path = CString::new(format!("/proc/self/fd/{}", target.as_raw_fd()))?;
    let base = FAN_MARK_ADD | kind | (m.mflags & !FAN_MARK_IGNORE);
    if m.mask != 0 {
        crate::sys::fanotify::mark(g, base, u64::from(m.mask), &path).with_context(|| format!("marking {what} with {:#x}", m.mask))?;
    }
    if m.ignored_mask != 0 {
        let how = if m.mflags & FAN_MARK_IGNORE != 0 { FAN_MARK_IGNORE } else { FAN_MARK_IGNORED_MASK };
        crate::sys::fanotify::mark(g, base | how, u64::from(m.ignored_mask), &path)
            .with_context(|| format!("ignoring {:#x} on {what}", m.ignored_mask))?;
    }
    Ok(())
}

/// The marked inode: by its handle, else by its recorded path if that is
/// still the inode.
fn open_inode(s_dev: u32, ie: &FanotifyInodeMarkEntry) -> Result<OwnedFd> {
    match (super::inotify::open_handle(s_dev, &ie.f_handle), &ie.f_handle.path) {
        (Ok(f), _) => Ok(f),
        (Err(e), Some(p)) => {
            let f = open_path(p).with_context(|| format!("opening {p}"))?;
            if f.metadata()?.ino() != ie.i_ino {
                return Err(e.context(format!("and {p} is not inode {} any more", ie.i_ino)));
            }
            Ok(f.into())
        }
        (Err(e), None) => Err(e.context(format!("the inode {} of a fanotify mark is gone", ie.i_ino))),
    }
}

/// `path` opened O_PATH.
fn open_path(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options().read(true).custom_flags(libc::O_PATH | libc::O_CLOEXEC).open(path)
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::os::fd::{AsFd, AsRawFd};

    fn fanotify_lines(fd: i32) -> Vec<String> {
        let t = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let mut v: Vec<String> = t.lines().filter(|l| l.starts_with("fanotify")).map(str::to_string).collect();
        v.sort();
        v
    }

    #[test]
    fn parses_marks() {
        let i = crate::proc::fdinfo::parse(
            "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1039\nfanotify flags:12 event-flags:8000\n\
             fanotify ino:98c148 sdev:fe00000 mflags:40 mask:a ignored_mask:20 fhandle-bytes:8 fhandle-type:1 f_handle:48c19800040d91ae\n",
        )
        .unwrap();
        let e = super::entry(3, 0o4002, &i, std::process::id() as i32).unwrap();
        assert_eq!((e.faflags, e.evflags), (0x12, 0x8000));
        let m = &e.mark[0];
        assert_eq!((m.mflags, m.mask, m.ignored_mask, m.s_dev), (0x40, 0xa, 0x20, 0xfe00000));
        let ie = m.ie.as_ref().unwrap();
        assert_eq!((ie.i_ino, ie.f_handle.bytes, ie.f_handle.r#type, ie.f_handle.handle.len()), (0x98c148, 8, 1, 16));
        let sb = crate::proc::fdinfo::parse("fanotify flags:0 event-flags:0\nfanotify sdev:fe00000 mflags:0 mask:2 ignored_mask:0\n").unwrap();
        assert!(super::entry(3, 0, &sb, 1).unwrap_err().to_string().contains("filesystem mark"));
    }

    #[test]
    fn round_trip() {
        // Needs CAP_SYS_ADMIN (mount marks) and fanotify in the kernel.
        let g = match crate::sys::fanotify::init(libc::FAN_NONBLOCK | libc::FAN_CLOEXEC, libc::O_RDONLY as u32) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skipped: fanotify_init: {e}");
                return;
            }
        };
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let c = |p: &std::path::Path| CString::new(p.to_str().unwrap()).unwrap();
        crate::sys::fanotify::mark(g.as_fd(), 1, libc::FAN_MODIFY | libc::FAN_CLOSE_WRITE, &c(&f)).unwrap();
        crate::sys::fanotify::mark(g.as_fd(), 1 | 0x20 | 0x40, libc::FAN_OPEN, &c(&f)).unwrap();
        crate::sys::fanotify::mark(g.as_fd(), 1, libc::FAN_OPEN | libc::FAN_EVENT_ON_CHILD, &c(tmp.path())).unwrap();
        crate::sys::fanotify::mark(g.as_fd(), 1 | 0x10 | 0x20 | 0x40, libc::FAN_OPEN, &c(tmp.path())).unwrap();
        let (before, back, after) = super::super::round_trip::run(&[g.as_raw_fd()]);
        let b = before.entries[0].ffy.clone().unwrap();
        assert_eq!(b.mark.len(), 3);
        assert_eq!(after.entries[0].ffy.clone().unwrap().mark, b.mark);
        assert_eq!(fanotify_lines(back[0].as_raw_fd()), fanotify_lines(g.as_raw_fd()));
        let fl = nix::fcntl::fcntl(&back[0], nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_ne!(fl & libc::O_NONBLOCK, 0);
    }
}
