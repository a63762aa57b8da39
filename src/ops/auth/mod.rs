//! Who may ask `criu service` for what (issue 18). The service runs as
//! root on a socket anyone can connect to; a connection whose peer
//! (SO_PEERCRED) is not root is confined to what that user could do
//! without criu:
//! - [`peer`]: the caller's credentials, read once when the worker starts;
//!   before any request is read the worker takes the caller's groups, uid
//!   and gid as all its ids and drops the capabilities that bypass file
//!   permissions, CAP_SYS_PTRACE and CAP_KILL, so the kernel checks every
//!   path criu opens, creates or lists for that caller (images dir, work
//!   dir, log, config file, the restored tasks' files) against the
//!   caller's rights, and criu reaches the caller's tasks as their owner.
//!   The options that would run programs or reach beyond the caller are
//!   refused ([`opts`]);
//! - [`dump`]: every task of the tree must be one the caller could ptrace
//!   (its uids and gids, dumpable, capabilities within the caller's),
//!   checked before the root is seized and again once the tree is frozen;
//! - [`restore`]: every credential in the images (ids, groups,
//!   capabilities, securebits, the executables' file capabilities) and the
//!   other privileged settings (rlimits, loginuid, oom_score_adj,
//!   scheduling, privileged sockets) must be ones the caller holds;
//! - WAIT_PID waits only for the caller's own tasks.
//!
//! A refusal is [`Denied`]: an RPC error with cr_errno EPERM whose message
//! (also the log line) names the caller's uid and what was refused. A root
//! caller, and `criu swrk` (run by the caller itself), are not confined.

pub mod dump;
pub mod opts;
pub mod peer;
pub mod restore;

use std::sync::OnceLock;

pub use peer::Caller;

/// A request refused because the caller lacks a right.
#[derive(Debug, thiserror::Error)]
#[error("RPC client uid {uid} (pid {pid}) may not {what}")]
pub struct Denied {
    pub uid: u32,
    pub pid: i32,
    pub what: String,
}

impl Denied {
    pub fn errno(&self) -> i32 {
        libc::EPERM
    }
}

static CALLER: OnceLock<Caller> = OnceLock::new();

/// The confined caller this process serves, if any (none for a root
/// caller, `criu swrk`, the command line).
pub fn caller() -> Option<&'static Caller> {
    CALLER.get()
}

/// Confine this process to `c`'s rights for good (a service worker serves
/// one connection).
pub fn install(c: Caller) -> anyhow::Result<()> {
    c.confine()?;
    CALLER.set(c).map_err(|_| anyhow::anyhow!("a confined RPC caller is already set"))
}

impl Caller {
    /// The refusal of `what`.
    pub fn deny(&self, what: impl Into<String>) -> Denied {
        Denied { uid: self.uid, pid: self.pid, what: what.into() }
    }
}

/// Caps of `have` that are not in `within`, as a CAP_* list for messages.
pub fn extra_caps(have: u64, within: u64) -> Option<String> {
    let extra = have & !within;
    (extra != 0).then(|| {
        (0..64).filter(|b| extra & (1u64 << b) != 0).map(cap_name).collect::<Vec<_>>().join(", ")
    })
}

fn cap_name(bit: u32) -> String {
    const NAMES: [&str; 41] = [
        "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
        "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
        "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
        "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
        "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
        "checkpoint_restore",
    ];
    match NAMES.get(bit as usize) {
        Some(n) => format!("CAP_{}", n.to_uppercase()),
        None => format!("capability {bit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_caps_name_what_is_beyond() {
        assert_eq!(extra_caps(0, 0), None);
        assert_eq!(extra_caps(1 << 21, 1 << 21), None);
        assert_eq!(extra_caps((1 << 21) | (1 << 7) | 1, 1).as_deref(), Some("CAP_SETUID, CAP_SYS_ADMIN"));
        assert_eq!(extra_caps(1 << 45, 0).as_deref(), Some("capability 45"));
    }

    #[test]
    fn denied_names_the_uid_and_is_eperm() {
        let d = Denied { uid: 65534, pid: 7, what: "dump task 1: its uids are 0 0 0".into() };
        assert_eq!(d.to_string(), "RPC client uid 65534 (pid 7) may not dump task 1: its uids are 0 0 0");
        assert_eq!(d.errno(), libc::EPERM);
    }
}
