//! File owners: who gets a description's I/O signals (F_SETOWN_EX: a
//! thread, a process or a process group) and which signal (F_SETSIG),
//! recorded in the fown_entry every file kind's record carries (CRIU's
//! fields: signum always, the owner with the uids that set it). The
//! restorer sets them back once the task's threads and credentials are in
//! place (an owner may be one of its threads), as the task's own creds.

use anyhow::{bail, Context, Result};

use crate::images::pb::{FileEntry, FownEntry};

/// The owner record of the description behind `fd` (a copy of fd `n` of
/// task `pid`; O_PATH files have none: not asked).
pub fn read(pid: i32, n: i32, fd: std::os::fd::BorrowedFd<'_>) -> Result<FownEntry> {
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
        if let Some(c) = creds.filter(|c| f.pid != 0 && (f.uid, f.euid) != (c.uid, c.euid)) {
            bail!(
                "fd {} of task {pid}: its owner was set with uid {}/euid {}, not the task's {}/{}: not supported yet",
                fi.fd,
                f.uid,
                f.euid,
                c.uid,
                c.euid
            );
        }
        out.push((fi.fd as i32, *f));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::pb::{CredsEntry, FdinfoEntry, PipeEntry};

    fn pipe_file(id: u32, fown: FownEntry) -> FileEntry {
        FileEntry { id, pipe: Some(PipeEntry { id, pipe_id: 9, flags: 0, fown }), ..Default::default() }
    }

    #[test]
    fn owners_go_to_the_restorer_as_the_task() {
        let owned = FownEntry { uid: 5, euid: 6, signum: 35, pid_type: 1, pid: 77 };
        let files = [(1, pipe_file(1, owned)), (2, pipe_file(2, FownEntry::default()))].into_iter().collect();
        let fdinfo = [1, 2].map(|id| FdinfoEntry { id, fd: id + 10, ..Default::default() });
        let creds = CredsEntry { uid: 5, euid: 6, ..Default::default() };
        let l = restore_list(&fdinfo, &files, Some(&creds), 77).unwrap();
        assert_eq!(l, vec![(11, owned)]);
        let other = CredsEntry { uid: 0, euid: 0, ..Default::default() };
        assert!(restore_list(&fdinfo, &files, Some(&other), 77).is_err());
        // A signal alone names no uids.
        let sig_only = FownEntry { signum: 12, ..Default::default() };
        let files = [(1, pipe_file(1, sig_only))].into_iter().collect();
        assert_eq!(restore_list(&fdinfo[..1], &files, Some(&other), 77).unwrap(), vec![(11, sig_only)]);
    }

    #[test]
    fn every_kind_with_a_record_has_its_owner_found() {
        let mut e = pipe_file(3, FownEntry::default());
        of_mut(&mut e).unwrap().signum = 29;
        assert_eq!(of(&e).map(|f| f.signum), Some(29));
        assert!(of(&FileEntry::default()).is_none());
    }
}
