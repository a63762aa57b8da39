//! The address of a unix socket: at dump, where its path name lives (the
//! directory a relative name was bound through, whether the file was
//! unlinked or replaced since, its owner and mode); at restore, binding it
//! there again (and connecting to it), the file given its owner and mode.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, UnixAddr};

use crate::images::pb::{FilePermsEntry, UnixSkEntry};

/// What the dump learns of a path name beyond its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// For a relative name: the directory it was bound in.
    pub name_dir: Option<String>,
    /// The socket's file was unlinked (or another file took its path).
    pub deleted: bool,
    pub perms: Option<FilePermsEntry>,
}

/// A path name's bytes without the trailing NUL the kernel keeps; None
/// for no name or an abstract one.
pub fn path_of(name: &[u8]) -> Option<&[u8]> {
    if name.is_empty() || name[0] == 0 {
        return None;
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(&name[..end])
}

/// Where the file of socket `fd` (our copy), bound to `name`, lives.
pub fn resolve(fd: BorrowedFd<'_>, ino: u32, name: &[u8]) -> Result<Resolved> {
    let Some(path) = path_of(name) else { return Ok(Resolved::default()) };
    let shown = String::from_utf8_lossy(path).into_owned();
    let file = crate::sys::sockopt::unix_file(fd).with_context(|| format!("SIOCUNIXFILE on unix socket {ino} ({shown})"))?;
    let md = nix::sys::stat::fstat(file.as_fd()).with_context(|| format!("fstat of the file of unix socket {ino} ({shown})"))?;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .with_context(|| format!("the path of unix socket {ino} ({shown})"))?;
    let mut link = link.as_os_str().as_bytes().to_vec();
    let deleted = link.ends_with(b" (deleted)");
    if deleted {
        link.truncate(link.len() - b" (deleted)".len());
    }
    let name_dir = if path[0] == b'/' {
        None
    } else {
        let cut = link.len().checked_sub(path.len() + 1).filter(|&n| link.ends_with(path) && link[n] == b'/');
        let Some(n) = cut else {
            bail!("unix socket {ino} is bound to the relative name {shown}, which {} does not end with", String::from_utf8_lossy(&link));
        };
        Some(String::from_utf8_lossy(&link[..n.max(1)]).into_owned())
    };
    let perms = Some(FilePermsEntry { mode: md.st_mode, uid: md.st_uid, gid: md.st_gid });
    Ok(Resolved { name_dir, deleted, perms })
}

/// The socket address of a name as the image holds it.
pub fn addr(name: &[u8]) -> Result<UnixAddr> {
    match path_of(name) {
        Some(p) => UnixAddr::new(OsStr::from_bytes(p)).with_context(|| format!("the unix address {}", String::from_utf8_lossy(p))),
        None if name.is_empty() => bail!("an unnamed unix socket has no address"),
        None => UnixAddr::new_abstract(&name[1..]).context("an abstract unix address"),
    }
}

/// How a record's name reads in errors: `@abstract` or the path.
pub fn shown(e: &UnixSkEntry) -> String {
    match path_of(&e.name) {
        Some(p) => String::from_utf8_lossy(p).into_owned(),
        None if e.name.is_empty() => "(no name)".into(),
        None => format!("@{}", String::from_utf8_lossy(&e.name[1..])),
    }
}

/// The full path of a record's path name (its directory joined).
pub fn full_path(e: &UnixSkEntry) -> Option<PathBuf> {
    let p = Path::new(OsStr::from_bytes(path_of(&e.name)?));
    Some(match &e.name_dir {
        Some(d) if p.is_relative() => Path::new(d).join(p),
        _ => p.to_path_buf(),
    })
}

/// Run `f` with the cwd at the record's name_dir (a relative name is
/// bound and connected to through it), then come back.
fn in_name_dir<T>(e: &UnixSkEntry, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let Some(dir) = e.name_dir.as_deref().filter(|_| path_of(&e.name).is_some_and(|p| p[0] != b'/')) else { return f() };
    let back = std::fs::File::open(".").context("opening the cwd")?;
    nix::unistd::chdir(dir).with_context(|| format!("chdir to {dir}, where unix socket {} was bound", e.ino))?;
    let r = f();
    nix::unistd::fchdir(back.as_fd()).context("back to the cwd")?;
    r
}

/// Remove a socket file left at the record's path (by the dumped socket,
/// whose task is gone); any other kind of file stays.
pub fn unlink_stale(e: &UnixSkEntry) -> Result<()> {
    let Some(p) = full_path(e) else { return Ok(()) };
    match std::fs::symlink_metadata(&p) {
        Ok(md) if md.file_type().is_socket() => {
            std::fs::remove_file(&p).with_context(|| format!("removing the stale socket file {}", p.display()))
        }
        _ => Ok(()),
    }
}

/// Bind `fd` to the record's name, its file given the owner and mode it had.
pub fn bind(fd: BorrowedFd<'_>, e: &UnixSkEntry) -> Result<()> {
    let a = addr(&e.name)?;
    in_name_dir(e, || {
        socket::bind(fd.as_raw_fd(), &a).with_context(|| format!("binding unix socket {} to {}", e.ino, shown(e)))?;
        let (Some(perms), Some(p)) = (&e.file_perms, path_of(&e.name)) else { return Ok(()) };
        let p = Path::new(OsStr::from_bytes(p));
        std::os::unix::fs::chown(p, Some(perms.uid), Some(perms.gid)).with_context(|| format!("chown of {}", p.display()))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(perms.mode & 0o7777))
            .with_context(|| format!("chmod of {}", p.display()))?;
        Ok(())
    })
}

/// Connect `fd` (unix socket `ino`) to the address of record `peer`, or
/// when its file is gone from its path, through `ghost` (an O_PATH fd of
/// that file).
pub fn connect(fd: BorrowedFd<'_>, ino: u32, peer: &UnixSkEntry, ghost: Option<BorrowedFd<'_>>) -> Result<()> {
    let what = || format!("connecting unix socket {ino} to {} (socket {})", shown(peer), peer.ino);
    if let Some(g) = ghost {
        let a = UnixAddr::new(format!("/proc/self/fd/{}", g.as_raw_fd()).as_str())?;
        return socket::connect(fd.as_raw_fd(), &a).with_context(what);
    }
    let a = addr(&peer.name)?;
    in_name_dir(peer, || socket::connect(fd.as_raw_fd(), &a).with_context(what))
}

/// Bind `fd` to the record's path, whose file was deleted (or replaced)
/// before the dump: the socket file is made there for a moment (what
/// stands at the path moved aside, missing directories made), kept as an
/// O_PATH fd (returned: peers connect through it), and removed again,
/// the path given back as it was.
pub fn bind_ghost(fd: BorrowedFd<'_>, e: &UnixSkEntry) -> Result<OwnedFd> {
    let p = full_path(e).with_context(|| format!("unix socket {} was bound to a deleted file but has no path", e.ino))?;
    let mut made = Vec::new();
    let mut dir = p.parent().map(Path::to_path_buf);
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err()) {
        made.push(d.clone());
        dir = d.parent().map(Path::to_path_buf);
    }
    for d in made.iter().rev() {
        std::fs::create_dir(d).with_context(|| format!("making {} for the deleted socket file of unix socket {}", d.display(), e.ino))?;
    }
    let mut parked = p.clone().into_os_string();
    parked.push(".criu-sk-ghost");
    let parked = PathBuf::from(parked);
    let moved = std::fs::symlink_metadata(&p).is_ok();
    if moved {
        std::fs::rename(&p, &parked).with_context(|| format!("moving {} aside", p.display()))?;
    }
    let r = bind(fd, e).and_then(|()| {
        nix::fcntl::open(&p, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .with_context(|| format!("O_PATH of the socket file {}", p.display()))
    });
    let _ = std::fs::remove_file(&p);
    if moved {
        std::fs::rename(&parked, &p).with_context(|| format!("moving {} back", p.display()))?;
    }
    for d in &made {
        let _ = std::fs::remove_dir(d);
    }
    r
}
