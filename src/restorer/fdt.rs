//! The restoring tasks of one shared fd table (CLONE_FILES; the groups are
//! `task::fdt::Tables`) meeting twice. Their table is one: a close or dup2
//! by one is seen by all. First, once every task of it forked its
//! children ([`Meeting::owner_forked`]): until then nobody closes a stage
//! pipe end in it, so each child forked from the table gets the copies
//! its memory names. Then around the install: only the owner installs the
//! table (closing what no task keeps, putting every fd at its number), and
//! only while every other task of the group waits, having told it the fds
//! it keeps (its service fds). The meeting's pipes are made by the owner
//! before it forks the group: every task of the group has them at the
//! same numbers; each member closes its own pipes once the table is
//! installed. Nobody waits on an EOF (a dead task's fds stay open in the
//! table): each side also watches the other's pidfd.

use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use crate::task::fdt::Tables;

/// An fd of the shared table: never closed by dropping its holder.
type Shared = ManuallyDrop<OwnedFd>;

/// One member's pipes with the owner: `up` carries its word that its
/// children are forked and then the fds it keeps, `down` the owner's words
/// that every task forked its children and that the table is installed.
struct Link {
    member: usize,
    pid: i32,
    up: (Shared, Shared),
    down: (Shared, Shared),
}

/// The meeting of one group (a copy in each task's memory, one set of fds).
pub struct Meeting {
    owner_pid: i32,
    links: Vec<Link>,
}

/// A member: its children are forked.
const FORKED: u8 = b'f';
/// The owner: every task of the table forked its children.
const ALL_FORKED: u8 = b'c';
/// The owner: the table is installed.
const INSTALLED: u8 = b'i';

/// A pipe at `base` or above (out of the way of the table's fds).
fn pipe(base: RawFd) -> Result<(Shared, Shared)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2 for a shared fd table")?;
    let lift = |fd: OwnedFd| crate::sys::fd::dup_cloexec_from(fd, base).context("F_DUPFD_CLOEXEC");
    Ok((ManuallyDrop::new(lift(r)?), ManuallyDrop::new(lift(w)?)))
}

/// Wait until `fd` is readable; fail if process `pidfd` (task `peer`)
/// exits first.
fn wait_readable(fd: BorrowedFd<'_>, pidfd: BorrowedFd<'_>, peer: i32) -> Result<()> {
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN), PollFd::new(pidfd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.context("poll")?,
        };
        let ready = |f: &PollFd| f.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP));
        if ready(&fds[0]) {
            return Ok(());
        }
        if ready(&fds[1]) {
            bail!("task {peer}, which shares this task's fd table, exited before the table was installed");
        }
    }
}

fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match nix::unistd::read(fd, &mut buf[at..]) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(0) => bail!("short read"),
            Ok(n) => at += n,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(n) => buf = &buf[n..],
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn pidfd(pid: i32) -> Result<OwnedFd> {
    crate::sys::pidfd::open(Pid::from_raw(pid)).with_context(|| format!("pidfd_open of task {pid}"))
}

impl Meeting {
    /// The meeting of the group task `owner` installs (None: it has none),
    /// made before it forks any of them, its fds at `base` or above;
    /// `pids` of every node.
    pub fn new(tables: &Tables, owner: usize, pids: &[i32], base: RawFd) -> Result<Option<Meeting>> {
        let Some(group) = tables.group(owner).filter(|g| g[0] == owner) else { return Ok(None) };
        let mut links = Vec::new();
        for &m in &group[1..] {
            links.push(Link { member: m, pid: pids[m], up: pipe(base)?, down: pipe(base)? });
        }
        Ok(Some(Meeting { owner_pid: pids[owner], links }))
    }

    /// Every fd of the meeting (the owner keeps them through its install).
    pub fn fds(&self) -> Vec<RawFd> {
        self.links.iter().flat_map(|l| [&l.up.0, &l.up.1, &l.down.0, &l.down.1]).map(|f| f.as_raw_fd()).collect()
    }

    /// The owner: wait until every member forked its children (failing if
    /// one exits first), then tell them. Until then no task of the table
    /// closes a stage pipe end in it: each task forked from the table
    /// takes a copy that matches what its memory says is there.
    pub fn owner_forked(&self) -> Result<()> {
        for l in &self.links {
            let pidfd = pidfd(l.pid)?;
            wait_readable(l.up.0.as_fd(), pidfd.as_fd(), l.pid)?;
            let mut b = [0u8; 1];
            read_exact(l.up.0.as_fd(), &mut b).with_context(|| format!("task {}'s word on its children", l.pid))?;
            if b[0] != FORKED {
                bail!("task {} sent {:?} where its children's fork was due", l.pid, b[0] as char);
            }
        }
        for l in &self.links {
            write_all(l.down.1.as_fd(), &[ALL_FORKED]).with_context(|| format!("telling task {} every child is forked", l.pid))?;
        }
        Ok(())
    }

    /// Member task `idx`: its children are forked; wait until every task of
    /// the table forked its own (failing if the owner exits first).
    pub fn member_forked(&self, idx: usize) -> Result<()> {
        let owner = self.owner_pid;
        let l = self.links.iter().find(|l| l.member == idx).with_context(|| format!("task {idx} is no member of this fd table's group"))?;
        write_all(l.up.1.as_fd(), &[FORKED]).with_context(|| format!("telling task {owner} our children are forked"))?;
        let pidfd = pidfd(owner)?;
        wait_readable(l.down.0.as_fd(), pidfd.as_fd(), owner)?;
        let mut b = [0u8; 1];
        read_exact(l.down.0.as_fd(), &mut b).with_context(|| format!("task {owner}'s word on the forks"))?;
        if b[0] != ALL_FORKED {
            bail!("task {owner} sent {:?} where the end of the forks was due", b[0] as char);
        }
        Ok(())
    }

    /// The owner: every member's kept fds, once each has sent them (failing
    /// if one exits first).
    pub fn gather(&self) -> Result<Vec<RawFd>> {
        let mut all = Vec::new();
        for l in &self.links {
            let pidfd = pidfd(l.pid)?;
            wait_readable(l.up.0.as_fd(), pidfd.as_fd(), l.pid)?;
            let mut n = [0u8; 4];
            read_exact(l.up.0.as_fd(), &mut n).with_context(|| format!("the fds task {} keeps", l.pid))?;
            let mut buf = vec![0u8; 4 * u32::from_le_bytes(n) as usize];
            read_exact(l.up.0.as_fd(), &mut buf).with_context(|| format!("the fds task {} keeps", l.pid))?;
            all.extend(buf.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        }
        Ok(all)
    }

    /// The owner: tell each member its table is installed. The pipes are
    /// the members' to close.
    pub fn installed(&self) -> Result<()> {
        for l in &self.links {
            write_all(l.down.1.as_fd(), &[INSTALLED]).with_context(|| format!("telling task {} its fd table is installed", l.pid))?;
        }
        Ok(())
    }

    /// Member task `idx`: give the owner the fds it keeps (`keep`, all at
    /// `base` or above, out of the table's way), wait until the owner
    /// installed the table (failing if it exits first), then close its own
    /// pipes (and nothing else of the group's).
    pub fn member(&self, idx: usize, keep: &[RawFd], base: RawFd) -> Result<()> {
        let owner = self.owner_pid;
        let Some(at) = self.links.iter().position(|l| l.member == idx) else { bail!("task {idx} is no member of this fd table's group") };
        let pidfd = crate::sys::fd::dup_cloexec_from(pidfd(owner)?.as_fd(), base).context("F_DUPFD_CLOEXEC")?;
        let mut msg = Vec::with_capacity(4 * (keep.len() + 2));
        msg.extend_from_slice(&(keep.len() as u32 + 1).to_le_bytes());
        for fd in keep.iter().chain([&pidfd.as_raw_fd()]) {
            msg.extend_from_slice(&fd.to_le_bytes());
        }
        let l = &self.links[at];
        write_all(l.up.1.as_fd(), &msg).with_context(|| format!("telling task {owner} the fds this task keeps"))?;
        wait_readable(l.down.0.as_fd(), pidfd.as_fd(), owner)?;
        let mut b = [0u8; 1];
        read_exact(l.down.0.as_fd(), &mut b).with_context(|| format!("task {owner}'s word on the fd table"))?;
        if b[0] != INSTALLED {
            bail!("task {owner} sent {:?} where its fd table install was due", b[0] as char);
        }
        drop(pidfd);
        for fd in [&l.up.0, &l.up.1, &l.down.0, &l.down.1] {
            nix::unistd::close(fd.as_raw_fd()).context("closing a pipe of the fd table's meeting")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_open(fd: RawFd) -> bool {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok()
    }

    #[test]
    fn the_owner_installs_once_each_member_forked_and_sent_its_fds() {
        let me = std::process::id() as i32;
        let tables = Tables::new(&[None, Some(0)], &[(me, Some(2)), (me, Some(2))]);
        assert!(Meeting::new(&tables, 1, &[me, me], 100).unwrap().is_none(), "a member makes no meeting");
        let m = Meeting::new(&tables, 0, &[me, me], 100).unwrap().expect("the owner's meeting");
        let fds = m.fds();
        assert_eq!(fds.len(), 4);
        assert!(fds.iter().all(|&f| f >= 100), "{fds:?}");
        let kept = std::thread::scope(|s| {
            let member = s.spawn(|| -> Result<()> {
                m.member_forked(1)?;
                m.member(1, &[201, 202], 100)
            });
            m.owner_forked().unwrap();
            let kept = m.gather().unwrap();
            m.installed().unwrap();
            member.join().unwrap().unwrap();
            kept
        });
        // The member's fds, then its pidfd of the owner (closed by now).
        assert_eq!((&kept[..2], kept.len()), (&[201, 202][..], 3), "{kept:?}");
        assert!(kept[2] >= 100, "{kept:?}");
        // The member closed its pipes; dropping the meeting closes nothing.
        assert!(fds.iter().all(|&f| !is_open(f)), "{fds:?}");
    }

    #[test]
    fn the_owner_fails_naming_a_member_that_exited() {
        let me = std::process::id() as i32;
        let mut kid = std::process::Command::new("true").spawn().unwrap();
        let dead = kid.id() as i32;
        // Exited, not reaped: its pid stays its own.
        let _ = nix::sys::wait::waitid(nix::sys::wait::Id::Pid(Pid::from_raw(dead)), nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT);
        let tables = Tables::new(&[None, Some(0)], &[(me, Some(2)), (dead, Some(2))]);
        let m = Meeting::new(&tables, 0, &[me, dead], 100).unwrap().unwrap();
        let e = m.owner_forked().unwrap_err().to_string();
        let _ = kid.wait();
        assert!(e.contains(&format!("task {dead}, which shares this task's fd table, exited")), "{e}");
        for fd in m.fds() {
            let _ = nix::unistd::close(fd);
        }
    }
}
