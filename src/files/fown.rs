//! File owners: who gets a description's I/O signals (F_SETOWN_EX: a
//! thread, a process or a process group) and which signal (F_SETSIG),
//! recorded in the fown_entry every file kind's record carries (CRIU's
//! fields: signum always, the owner with the uids that set it). The
//! restorer sets them back once the task's threads and credentials are in
//! place (an owner may be one of its threads), as the task's own creds.

use anyhow::{bail, Context, Result};

use crate::images::pb::{FileEntry, FownEntry};

/// The owner record of the description behind `fd` (a copy of fd `n` of
/// task `pid`); O_PATH files have none.
pub fn read(pid: i32, n: i32, fd: std::os::fd::BorrowedFd<'_>, file_flags: u32) -> Result<FownEntry> {
    if file_flags & libc::O_PATH as u32 != 0 {
        return Ok(FownEntry::default());
    }
    let (signum, pid_type, owner, uid, euid) =
        crate::sys::fd::owner(fd).with_context(|| format!("F_GETOWN_EX/F_GETSIG on fd {n} of task {pid}"))?;
    if owner == 0 {
        return Ok(FownEntry { signum, ..Default::default() });
    }
    // The restorer sets the owner as the task: other uids can't be set back.
    let task = crate::proc::status::read(pid)?.uids;
    if (uid, euid) != (task[0], task[1]) {
        bail!(
            "fd {n} of task {pid}: its owner (F_SETOWN) was set with uid {uid}/euid {euid}, not the task's {}/{}: not supported yet",
            task[0],
            task[1]
        );
    }
    Ok(FownEntry { uid, euid, signum, pid_type, pid: owner as u32 })
}

/// The owner record inside a files.img entry, whatever its kind.
pub fn of_mut(e: &mut FileEntry) -> Option<&mut FownEntry> {
    macro_rules! first {
        ($($k:ident),*) => {
            $( if let Some(x) = e.$k.as_mut() { return Some(&mut x.fown); } )*
        };
    }
    first!(reg, isk, psk, nlsk, efd, epfd, sgfd, tfd, ify, ffy, ext, usk, pipe, tty, memfd, bpf, pidfd);
    None
}

/// The owner record of a files.img entry (None: a kind without one).
pub fn of(e: &FileEntry) -> Option<&FownEntry> {
    macro_rules! first {
        ($($k:ident),*) => {
            $( if let Some(x) = e.$k.as_ref() { return Some(&x.fown); } )*
        };
    }
    first!(reg, isk, psk, nlsk, efd, epfd, sgfd, tfd, ify, ffy, ext, usk, pipe, tty, memfd, bpf, pidfd);
    None
}

/// Whether the record says anything to restore.
pub fn is_set(f: &FownEntry) -> bool {
    f.signum != 0 || f.pid != 0
}

/// The task's fds whose records have an owner or I/O signal, for the
/// restorer. The owner is set as the task (`creds`: its leader's), so its
/// uids must be the task's.
pub fn restore_list(
    fdinfo: &[crate::images::pb::FdinfoEntry],
    files: &std::collections::HashMap<u32, FileEntry>,
    creds: Option<&crate::images::pb::CredsEntry>,
    pid: i32,
) -> Result<Vec<(i32, FownEntry)>> {
    let mut out = Vec::new();
    for fi in fdinfo {
        let Some(f) = files.get(&fi.id).and_then(of).filter(|f| is_set(f)) else { continue };
        if let Some(c) = creds.filter(|_| f.pid != 0) {
            if (f.uid, f.euid) != (c.uid, c.euid) {
                bail!(
                    "fd {} of task {pid}: its owner was set with uid {}/euid {}, not the task's {}/{}: not supported yet",
                    fi.fd,
                    f.uid,
                    f.euid,
                    c.uid,
                    c.euid
                );
            }
        }
        out.push((fi.fd as i32, f.clone()));
    }
    Ok(out)
}
