//! The caller of a `criu service` connection: its credentials as the
//! kernel gives them with the connection (SO_PEERCRED's uid and gid,
//! SO_PEERGROUPS), its capabilities, limits and audit/OOM settings read
//! from /proc/PID while SO_PEERPIDFD proves PID is still that process;
//! and [`Caller::confine`], which puts this worker under the caller's
//! filesystem credentials.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{getsockopt, sockopt};
use nix::unistd::{Gid, Uid};

use crate::proc::status::Status;

/// SECBIT_NO_SETUID_FIXUP.
const SECBIT_NO_SETUID_FIXUP: u32 = 1 << 2;

/// What a confined worker gives up: the capabilities that bypass file
/// permissions (those the kernel drops when the fsuid leaves 0: CAP_CHOWN,
/// CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID,
/// CAP_LINUX_IMMUTABLE, CAP_MKNOD, CAP_MAC_OVERRIDE), CAP_KILL and
/// CAP_SYS_PTRACE.
pub const DROPPED: [u32; 10] = [0, 1, 2, 3, 4, 5, 9, 19, 27, 32];

/// A non-root RPC caller.
pub struct Caller {
    /// SO_PEERCRED pid (the fd options name its descriptors).
    pub pid: i32,
    /// SO_PEERCRED uid and gid (the effective ones when it connected).
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups (SO_PEERGROUPS).
    pub groups: Vec<u32>,
    /// /proc/PID/status: capabilities, no_new_privs.
    pub status: Status,
    /// /proc/PID/limits: (soft, hard) in RLIMIT order.
    pub limits: Vec<(u64, u64)>,
    /// /proc/PID/loginuid (None: no audit here).
    pub loginuid: Option<u32>,
    /// /proc/PID/oom_score_adj.
    pub oom_score_adj: i32,
    /// Its nice value.
    pub nice: i64,
    /// Why its LSM label would not carry over to tasks criu restores (it
    /// is not the default nor criu's own), if it would not.
    pub lsm_label: Option<String>,
    /// Its pidfd: alive while `pid` is still the caller.
    pidfd: OwnedFd,
}

fn groups_of(sk: &OwnedFd) -> Result<Vec<u32>> {
    // At most NGROUPS_MAX (65536) gids.
    let raw = crate::sys::sockopt_raw::get_bytes(sk.as_fd(), libc::SOL_SOCKET, libc::SO_PEERGROUPS, 65536 * 4)
        .context("SO_PEERGROUPS of the RPC socket")?;
    Ok(raw.chunks_exact(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect())
}

impl Caller {
    /// The peer of service connection `sk`; None for a root peer (it may
    /// do everything).
    pub fn of_socket(sk: &OwnedFd) -> Result<Option<Caller>> {
        let cred = getsockopt(sk, sockopt::PeerCredentials).context("SO_PEERCRED of the RPC socket")?;
        if cred.uid() == 0 {
            return Ok(None);
        }
        let (pid, uid, gid) = (cred.pid(), cred.uid(), cred.gid());
        let pidfd = getsockopt(sk, sockopt::PeerPidfd).context("SO_PEERPIDFD of the RPC socket")?;
        let groups = groups_of(sk)?;
        let status = crate::proc::status::read(pid).with_context(|| format!("reading the RPC client's (uid {uid}, pid {pid}) status"))?;
        let limits = crate::proc::limits::read(pid)?;
        let loginuid = crate::task::settings::loginuid(pid)?;
        let oom: i32 = crate::proc::read(pid, "oom_score_adj")?.trim().parse().context("oom_score_adj of the RPC client")?;
        let nice = crate::proc::stat::read(pid)?.nice;
        let lsm_label = crate::task::lsm::check(pid, pid).err().map(|e| format!("{e:#}"));
        // What was read is the caller's only if its pid was not reused meanwhile.
        crate::sys::pidfd::send_signal(pidfd.as_fd(), 0)
            .with_context(|| format!("the RPC client (uid {uid}, pid {pid}) went away"))?;
        Ok(Some(Caller { pid, uid, gid, groups, status, limits, loginuid, oom_score_adj: oom, nice, lsm_label, pidfd }))
    }

    /// Whether the caller (the process that connected) still lives.
    pub fn alive(&self) -> bool {
        crate::sys::pidfd::send_signal(self.pidfd.as_fd(), 0).is_ok()
    }

    /// The caller's permitted capabilities (what it could ptrace or grant).
    pub fn caps(&self) -> u64 {
        self.status.cap_prm
    }

    /// This process becomes the caller's: its groups, its uid and gid as
    /// real, effective, saved and filesystem ids; it keeps the
    /// capabilities a dump or restore needs (SECBIT_NO_SETUID_FIXUP keeps
    /// them across the uid change) but not [`DROPPED`]: those that bypass
    /// file permissions, CAP_SYS_PTRACE (the caller's tasks are ptraced as
    /// their owner; without it /proc/PID/fd and /proc/PID/root of other
    /// users' tasks stay closed) and CAP_KILL. The bounding set stays whole
    /// (restored tasks take theirs from it). From then on the kernel checks
    /// every path criu opens, creates or lists for the request against the
    /// caller's rights, and criu's own /proc/PID is the caller's uid's, as
    /// a restored task's (it is made dumpable again); the caller can still
    /// not ptrace it (its capabilities are not within the caller's).
    /// Done before any thread exists: threads and children inherit it.
    pub fn confine(&self) -> Result<()> {
        let fail = |what: &str, e: nix::errno::Errno| anyhow::anyhow!("can't take RPC client uid {}'s credentials: {what}: {e}", self.uid);
        let groups: Vec<Gid> = self.groups.iter().map(|&g| Gid::from_raw(g)).collect();
        nix::unistd::setgroups(&groups).map_err(|e| fail("setgroups", e))?;
        // The uid change keeps the capabilities (they are dropped below, selectively).
        crate::sys::caps::set_securebits(SECBIT_NO_SETUID_FIXUP).map_err(|e| fail("securebits", e))?;
        let (g, u) = (Gid::from_raw(self.gid), Uid::from_raw(self.uid));
        nix::unistd::setresgid(g, g, g).map_err(|e| fail("setresgid", e))?;
        nix::unistd::setresuid(u, u, u).map_err(|e| fail("setresuid", e))?;
        let (eff, prm, inh) = crate::sys::caps::get().map_err(|e| fail("capget", e))?;
        let mask = DROPPED.iter().fold(0u64, |m, c| m | (1 << c));
        crate::sys::caps::set(eff & !mask, prm & !mask, inh & !mask).map_err(|e| fail("capset", e))?;
        nix::sys::prctl::set_dumpable(true).map_err(|e| fail("PR_SET_DUMPABLE", e))?;
        let me = crate::proc::status::read(std::process::id() as i32)?;
        if me.uids != [self.uid; 4] || me.gids != [self.gid; 4] || me.cap_prm & mask != 0 {
            bail!("can't take RPC client uid {}'s credentials: criu has uids {:?}, gids {:?}, CapPrm {:#x}", self.uid, me.uids, me.gids, me.cap_prm);
        }
        tracing::info!("RPC client uid {} gid {} (pid {}): confined to its credentials", self.uid, self.gid, self.pid);
        Ok(())
    }
}

#[cfg(test)]
impl Caller {
    /// A caller with these ids and permitted capabilities, this process's
    /// limits and settings otherwise (for the checks' unit tests).
    pub fn for_tests(uid: u32, gid: u32, groups: Vec<u32>, cap_prm: u64) -> Caller {
        let me = std::process::id() as i32;
        let mut status = crate::proc::status::read(me).unwrap();
        status.cap_prm = cap_prm;
        status.no_new_privs = false;
        status.seccomp = 0;
        Caller {
            pid: me,
            uid,
            gid,
            groups,
            status,
            limits: crate::proc::limits::read(me).unwrap(),
            loginuid: crate::task::settings::loginuid(me).unwrap(),
            oom_score_adj: 0,
            nice: 0,
            lsm_label: None,
            pidfd: crate::sys::pidfd::open(nix::unistd::Pid::from_raw(me)).unwrap(),
        }
    }
}
