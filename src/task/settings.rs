//! Per-task settings the images carry outside the thread state: the OOM
//! score adjustment and audit login uid (task core), transparent huge
//! pages disabled (mm), and membarrier() registrations (task core). The
//! dump reads them (membarrier ones by a syscall run in the task); the
//! restoring process applies them to itself before the restorer (all are
//! per process or per mm, which the restorer keeps), failing the restore
//! where the kernel refuses one.

use anyhow::{bail, Context, Result};

use crate::images::pb::{MmEntry, TaskCoreEntry};
use crate::task::remote::Remote;

/// The audit "unset" login uid.
pub const LOGINUID_UNSET: u32 = u32::MAX;

/// membarrier() commands (uapi enum membarrier_cmd).
mod cmd {
    pub const PRIVATE_EXPEDITED: u32 = 1 << 3;
    pub const PRIVATE_EXPEDITED_SYNC_CORE: u32 = 1 << 5;
    pub const PRIVATE_EXPEDITED_RSEQ: u32 = 1 << 7;
    pub const GET_REGISTRATIONS: u32 = 1 << 9;
}

/// /proc/PID/loginuid, or None on a kernel without it (no audit syscalls).
pub fn loginuid(pid: i32) -> Result<Option<u32>> {
    match std::fs::read_to_string(format!("/proc/{pid}/loginuid")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading loginuid of {pid}")),
        Ok(t) => Ok(Some(t.trim().parse().with_context(|| format!("bad loginuid {t:?} of {pid}"))?)),
    }
}

/// PR_GET_THP_DISABLE as the task answered it: disabled or not. The
/// "disabled except where advised" mode (PR_THP_DISABLE_EXCEPT_ADVISED)
/// has no place in the image (mm_entry.thp_disabled is a bool): refused.
pub fn thp_disabled(pid: i32, raw: i32) -> Result<bool> {
    match raw {
        0 => Ok(false),
        1 => Ok(true),
        3 => bail!(
            "task {pid} disabled transparent huge pages except where advised (PR_THP_DISABLE_EXCEPT_ADVISED): \
             the image has no place for that mode, dumping it is not supported"
        ),
        r => bail!("task {pid}: PR_GET_THP_DISABLE says {r}, which this criu does not know"),
    }
}

/// The membarrier() registrations of the task's mm, as a mask of
/// MEMBARRIER_CMD_REGISTER_* commands: MEMBARRIER_CMD_GET_REGISTRATIONS
/// where the kernel has it, else (as CRIU does) each private expedited
/// barrier tried, which works only once registered.
pub fn membarrier_mask(pid: i32, r: &mut dyn Remote) -> Result<u32> {
    let ask = |r: &mut dyn Remote, c: u32| r.syscall(libc::SYS_membarrier, [u64::from(c), 0, 0, 0, 0, 0]);
    let got = ask(r, cmd::GET_REGISTRATIONS).with_context(|| format!("membarrier registrations of {pid}"))?;
    if got >= 0 {
        return Ok(got as u32);
    }
    if got != -i64::from(libc::EINVAL) && got != -i64::from(libc::ENOSYS) {
        bail!("membarrier(GET_REGISTRATIONS) in task {pid}: {}", nix::errno::Errno::from_raw(-got as i32));
    }
    let mut mask = 0;
    for c in [cmd::PRIVATE_EXPEDITED, cmd::PRIVATE_EXPEDITED_SYNC_CORE, cmd::PRIVATE_EXPEDITED_RSEQ] {
        match ask(r, c).with_context(|| format!("membarrier({c:#x}) in task {pid}"))? {
            // Registering for a barrier is the command one bit up.
            0 => mask |= c << 1,
            e if [libc::EPERM, libc::EINVAL, libc::ENOSYS].map(|n| -i64::from(n)).contains(&e) => {}
            e => bail!("membarrier({c:#x}) in task {pid}: {}", nix::errno::Errno::from_raw(-e as i32)),
        }
    }
    Ok(mask)
}

fn read_own(name: &str) -> Result<String> {
    Ok(std::fs::read_to_string(format!("/proc/self/{name}")).with_context(|| format!("reading /proc/self/{name}"))?.trim().to_string())
}

fn write_own(pid: i32, name: &str, value: &str, why: &str) -> Result<()> {
    std::fs::write(format!("/proc/self/{name}"), value)
        .with_context(|| format!("can't set {name} {value} of task {pid}{why}"))
}

/// Apply the task's settings to the restoring process (which becomes
/// task `pid`).
pub fn restore(pid: i32, tc: &TaskCoreEntry, mm: &MmEntry) -> Result<()> {
    // Ours is inherited from criu: the image's value replaces it, 0 included.
    if let Some(adj) = tc.oom_score_adj
        && read_own("oom_score_adj")? != adj.to_string()
    {
        write_own(pid, "oom_score_adj", &adj.to_string(), " (lowering it below criu's needs CAP_SYS_RESOURCE)")?;
    }
    if let Some(uid) = tc.loginuid {
        match read_own("loginuid") {
            Ok(cur) if cur == uid.to_string() => {}
            Ok(_) => write_own(pid, "loginuid", &uid.to_string(), " (changing a set one needs CAP_AUDIT_CONTROL)")?,
            // No audit syscalls here: only "unset" is what the task has.
            Err(_) if uid == LOGINUID_UNSET => {}
            Err(e) => return Err(e.context(format!("task {pid} has loginuid {uid}, this kernel has no /proc/self/loginuid"))),
        }
    }
    let thp = mm.thp_disabled.unwrap_or(false);
    let cur = nix::sys::prctl::get_thp_disable().context("PR_GET_THP_DISABLE")?;
    if thp != cur {
        nix::sys::prctl::set_thp_disable(thp).with_context(|| format!("PR_SET_THP_DISABLE {thp} for task {pid}"))?;
    }
    let mask = tc.membarrier_registration_mask.unwrap_or(0);
    for bit in (0..32).filter(|b| mask & (1 << b) != 0) {
        crate::sys::sched::membarrier(1 << bit)
            .with_context(|| format!("can't restore membarrier registration {:#x} of task {pid}", 1u32 << bit))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thp_modes() {
        assert!(!super::thp_disabled(1, 0).unwrap());
        assert!(super::thp_disabled(1, 1).unwrap());
        let e = super::thp_disabled(7, 3).unwrap_err().to_string();
        assert!(e.contains("task 7") && e.contains("EXCEPT_ADVISED"), "{e}");
        assert!(super::thp_disabled(1, 5).is_err());
    }

    #[test]
    fn our_loginuid_reads() {
        let me = std::process::id() as i32;
        match super::loginuid(me).unwrap() {
            None => assert!(!std::path::Path::new("/proc/self/loginuid").exists()),
            Some(u) => assert_eq!(std::fs::read_to_string("/proc/self/loginuid").unwrap().trim(), u.to_string()),
        }
    }
}
