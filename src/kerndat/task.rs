//! Task probes: /proc files, ptrace, prctl, kcmp, pid namespaces, pidfds,
//! signals, rseq and timers.

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::{AccessFlags, Pid, access, getpid};

use super::{Ctx, Probe, ProbeError};
use crate::sys::probe::{self as k, Sleeper};
use crate::sys::ptrace::RseqConf;

/// /proc/PID/map_files is readable and its links resolve.
pub fn probe_map_files() -> Probe<()> {
    access("/proc/self/map_files", AccessFlags::R_OK).ctx("/proc/<pid>/map_files is inaccessible")?;
    let mut dir = std::fs::read_dir("/proc/self/map_files").ctx("/proc/<pid>/map_files is inaccessible")?;
    if let Some(ent) = dir.next() {
        let ent = ent.ctx("/proc/<pid>/map_files is inaccessible")?;
        std::fs::read_link(ent.path()).ctx("/proc/<pid>/map_files is inaccessible")?;
    }
    Ok(())
}

/// /proc/sys/kernel/ns_last_pid is writable (pid restore without clone3).
pub fn probe_ns_last_pid() -> Probe<()> {
    access("/proc/sys/kernel/ns_last_pid", AccessFlags::W_OK).ctx("sys/kernel/ns_last_pid sysctl is inaccessible")
}

/// kcmp(KCMP_FILE) tells a dup()ed fd from another file.
pub fn probe_kcmp() -> Probe<()> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("Can't create pipe")?;
    let dup = rd.try_clone().ctx("Can't dup pipe")?;
    let me = getpid();
    let same = crate::sys::kcmp::kcmp(me, me, crate::sys::kcmp::KCMP_FILE, rd.as_raw_fd() as u64, dup.as_raw_fd() as u64);
    let other = crate::sys::kcmp::kcmp(me, me, crate::sys::kcmp::KCMP_FILE, rd.as_raw_fd() as u64, wr.as_raw_fd() as u64);
    match (same, other) {
        (Err(Errno::ENOSYS), _) => Err(ProbeError::sys("System call kcmp is not supported", Errno::ENOSYS)),
        (Ok(0), Ok(o)) if o != 0 => Ok(()),
        (Err(e), _) | (_, Err(e)) => Err(ProbeError::sys("kcmp(KCMP_FILE) failed", e)),
        (s, o) => Err(ProbeError::msg(format!("kcmp(KCMP_FILE) gave wrong answers ({s:?}, {o:?})"))),
    }
}

/// kcmp(KCMP_EPOLL_TFD) finds a file registered in an epoll.
pub fn probe_kcmp_epoll_tfd() -> Probe<bool> {
    let ep = k::epoll_create().ctx("Can't create epoll")?;
    let (rd, _wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("Can't create pipe")?;
    k::epoll_add(ep.as_fd(), rd.as_fd(), (libc::EPOLLIN | libc::EPOLLOUT) as u32, u64::MAX).ctx("Can't add event")?;
    let r = crate::sys::kcmp::kcmp_epoll_tfd(getpid(), rd.as_raw_fd(), ep.as_raw_fd(), rd.as_raw_fd(), 0);
    Ok(r == Ok(0))
}

/// prctl(PR_GET_TID_ADDRESS).
pub fn probe_tid_address() -> Probe<usize> {
    k::prctl_get_tid_address().ctx("prctl: PR_GET_TID_ADDRESS is not supported")
}

/// prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE): the size of struct prctl_mm_map
/// the kernel expects (the whole-mm restore interface, no CAP_SYS_RESOURCE
/// needed).
pub fn probe_mm_map_size() -> Probe<u32> {
    k::prctl_mm_map_size().ctx("prctl: PR_SET_MM_MAP_SIZE is not supported")
}

/// fcntl(F_GETOWNER_UIDS) on a /proc file of ours.
pub fn probe_fcntl_owner_uids() -> Probe<[u32; 2]> {
    let f = std::fs::File::open("/proc/self/comm").ctx("Can't open /proc/self/comm")?;
    k::fcntl_getowner_uids(f.as_fd()).ctx("Can't fetch file owner UIDs")
}

/// The fields after "(comm)" in /proc/PID/stat (CRIU reads up to
/// exit_code, the 52nd field).
pub fn stat_fields(text: &str) -> Option<usize> {
    let tail = &text[text.rfind(')')? + 1..];
    Some(tail.split_whitespace().count() + 2)
}

/// /proc/PID/stat has the extended fields (start_data ... exit_code).
pub fn probe_proc_stat() -> Probe<()> {
    let text = std::fs::read_to_string("/proc/self/stat").ctx("Can't read /proc/self/stat")?;
    match stat_fields(&text) {
        Some(n) if n >= 52 => Ok(()),
        _ => Err(ProbeError::msg("procfs: stat extension is not supported")),
    }
}

/// /proc/sys/kernel/sem_next_id is read-write (IPC object id restore).
pub fn probe_ipc() -> Probe<()> {
    access("/proc/sys/kernel/sem_next_id", AccessFlags::R_OK | AccessFlags::W_OK)
        .ctx("/proc/sys/kernel/sem_next_id is inaccessible")
}

/// Queue a signal with a positive si_code to ourselves (restoring pending
/// signals does that) and get the same si_code back.
pub fn probe_sigqueueinfo() -> Probe<()> {
    let what = "Unable to send siginfo with positive si_code to itself";
    match k::sigqueue_self_roundtrip(Signal::SIGUSR1, 1) {
        Ok(1) => Ok(()),
        Ok(c) => Err(ProbeError::msg(format!("{what}: got si_code {c} back"))),
        Err(e) => Err(ProbeError::sys(what, e)),
    }
}

/// A child of ours, seized with PTRACE_SEIZE and stopped with
/// PTRACE_INTERRUPT (how dump attaches to tasks). Killed on drop.
pub struct TracedChild {
    child: Sleeper,
}

impl TracedChild {
    pub fn new(with_seccomp_filter: bool) -> Probe<Self> {
        let child = Sleeper::spawn(with_seccomp_filter).ctx("Can't fork a test child")?;
        let pid = child.pid();
        ptrace::seize(pid, ptrace::Options::empty()).ctx("Unable to ptrace the child")?;
        ptrace::interrupt(pid).ctx("Unable to interrupt the child")?;
        let st = k::wait_for(pid).ctx("Unable to wait for the child")?;
        match st {
            WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..) => Ok(Self { child }),
            other => {
                if matches!(other, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                    child.forget_reaped();
                }
                Err(ProbeError::msg(format!("The traced child did not stop: {other:?}")))
            }
        }
    }

    pub fn pid(&self) -> Pid {
        self.child.pid()
    }
}

/// PTRACE_SEIZE + PTRACE_INTERRUPT bring a child to a ptrace stop.
pub fn probe_ptrace_seize() -> Probe<()> {
    TracedChild::new(false).map(|_| ())
}

/// PTRACE_PEEKSIGINFO and PTRACE_GETSIGMASK on a stopped tracee.
pub fn probe_ptrace_peeksiginfo() -> Probe<()> {
    let t = TracedChild::new(false)?;
    crate::sys::ptrace::peeksiginfo(t.pid(), false, 1).ctx("Unable to dump pending signals")?;
    crate::sys::ptrace::peeksiginfo(t.pid(), true, 1).ctx("Unable to dump pending signals")?;
    crate::sys::ptrace::get_sigmask(t.pid()).ctx("Unable to dump signal blocking mask")?;
    Ok(())
}

/// PTRACE_O_SUSPEND_SECCOMP (dump runs the parasite past seccomp filters).
pub fn probe_seccomp_suspend() -> Probe<()> {
    let t = TracedChild::new(false)?;
    match ptrace::setoptions(t.pid(), ptrace::Options::from_bits_retain(libc::PTRACE_O_SUSPEND_SECCOMP)) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => Err(ProbeError::msg("Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP")),
        Err(e) => Err(ProbeError::sys("couldn't suspend seccomp", e)),
    }
}

/// PTRACE_SECCOMP_GET_FILTER reads back the filter a child installed.
pub fn probe_seccomp_filters() -> Probe<()> {
    let t = TracedChild::new(true)?;
    let n = crate::sys::ptrace::seccomp_filter_len(t.pid(), 0).ctx("Dumping seccomp filters not supported")?;
    if n != 4 {
        return Err(ProbeError::msg(format!("Dumping seccomp filters returned {n} instructions, want 4")));
    }
    Ok(())
}

/// PTRACE_GET_RSEQ_CONFIGURATION on a child (which inherits our libc's
/// rseq registration). None when the request is not supported.
pub fn probe_ptrace_get_rseq_conf() -> Probe<Option<RseqConf>> {
    let t = TracedChild::new(false)?;
    match crate::sys::ptrace::get_rseq_conf(t.pid()) {
        Ok((n, conf)) if n == std::mem::size_of::<RseqConf>() => {
            if conf.flags != 0 {
                return Err(ProbeError::msg("ptrace(PTRACE_GET_RSEQ_CONFIGURATION): rseq.flags != 0"));
            }
            Ok(Some(conf))
        }
        Ok(_) | Err(Errno::EIO | Errno::EINVAL) => Ok(None),
        Err(e) => Err(ProbeError::sys("ptrace(PTRACE_GET_RSEQ_CONFIGURATION) failed", e)),
    }
}

pub fn probe_ptrace_get_rseq_conf_supported() -> Probe<bool> {
    Ok(probe_ptrace_get_rseq_conf()?.is_some())
}

/// clone3() with set_tid: CRIU's errno probe, then a real clone3 into a
/// new pid namespace asking for pid 1 there.
pub fn probe_clone3_set_tid() -> Probe<bool> {
    match k::clone3_set_tid_errno() {
        Errno::EINVAL => {}
        Errno::ENOSYS | Errno::E2BIG => return Ok(false),
        e => {
            tracing::warn!("Unexpected error from clone3: {}", e.desc());
            return Ok(false);
        }
    }
    match k::clone3_newpid_set_tid(1) {
        Ok((_, WaitStatus::Exited(_, 0))) => Ok(true),
        Ok((_, st)) => Err(ProbeError::msg(format!("clone3() child with set_tid got the wrong pid ({st:?})"))),
        Err(Errno::EPERM) => Ok(false),
        Err(e) => Err(ProbeError::sys("clone3() with set_tid failed", e)),
    }
}

/// clone(CLONE_NEWPID | CLONE_PARENT) works.
pub fn probe_clone_parent_vs_pid() -> Probe<bool> {
    k::clone_parent_newpid().ctx("Unable to fork")
}

/// pidfd_open() on ourselves.
pub fn probe_pidfd_open() -> Probe<bool> {
    Ok(crate::sys::pidfd::open(getpid()).is_ok())
}

/// pidfd_getfd(): steal our own socket end through a pidfd and read
/// through the copy what was sent to the original.
pub fn probe_pidfd_getfd() -> Probe<bool> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_CLOEXEC)
        .ctx("Can't open unix socket pair")?;
    let val: i32 = 1984;
    nix::unistd::write(&a, &val.to_ne_bytes()).ctx("Can't write to socket")?;
    let Ok(pidfd) = crate::sys::pidfd::open(getpid()) else { return Ok(false) };
    let Ok(stolen) = crate::sys::pidfd::getfd(pidfd.as_fd(), b.as_raw_fd()) else { return Ok(false) };
    let mut buf = [0u8; 4];
    let n = nix::unistd::read(&stolen, &mut buf).ctx("Can't read from socket")?;
    if n != 4 || i32::from_ne_bytes(buf) != val {
        return Err(ProbeError::msg("Unexpected value read from socket"));
    }
    Ok(true)
}

/// "NSpid:" in /proc/PID/status.
pub fn probe_nspid() -> Probe<bool> {
    let text = std::fs::read_to_string("/proc/self/status").ctx("Can't open /proc/self/status")?;
    Ok(text.lines().any(|l| l.starts_with("NSpid:")))
}

/// Time namespaces (/proc/PID/timens_offsets).
pub fn probe_timens() -> Probe<bool> {
    match std::fs::read_to_string("/proc/self/timens_offsets") {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).ctx("Unable to access /proc/self/timens_offsets"),
    }
}

/// prctl(PR_TIMER_CREATE_RESTORE_IDS, GET).
pub fn probe_timer_cr_ids() -> Probe<bool> {
    match k::prctl_timer_restore_ids_get() {
        Ok(_) => Ok(true),
        Err(Errno::EINVAL) => Ok(false),
        Err(e) => Err(ProbeError::sys("prctl returned unexpected error code", e)),
    }
}

/// /proc/PID/timers (posix timers dump).
pub fn probe_posix_timers() -> Probe<()> {
    access("/proc/self/timers", AccessFlags::R_OK).map_err(|_| ProbeError::msg("/proc/<pid>/timers file is missing."))
}

/// Cgroup namespaces.
pub fn probe_cgroupns() -> Probe<()> {
    access("/proc/self/ns/cgroup", AccessFlags::F_OK)
        .map_err(|_| ProbeError::msg("cgroupns not supported. This is not fatal."))
}

/// User namespaces and the prctl_mm_map interface restore in them needs.
pub fn probe_userns() -> Probe<()> {
    access("/proc/self/ns/user", AccessFlags::F_OK).ctx("No userns proc file")?;
    probe_mm_map_size().map(|_| ())
}

/// How much of the audit loginuid restore can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loginuid {
    /// No /proc/PID/loginuid (CONFIG_AUDITSYSCALL off).
    None,
    /// Readable, but it can't be unset and set again.
    Read,
    /// Readable and settable.
    Full,
}

pub fn probe_loginuid() -> Probe<Loginuid> {
    let saved = match std::fs::read_to_string("/proc/self/loginuid") {
        Ok(s) => s.trim().to_string(),
        Err(_) => return Ok(Loginuid::None),
    };
    let st = k::loginuid_child(saved.as_bytes()).ctx("Can't fork the loginuid test child")?;
    Ok(if k::exit_code(&st) == Some(0) { Loginuid::Full } else { Loginuid::Read })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_field_count() {
        let line = "1234 (a b) c) S 1 2 3 4 5";
        assert_eq!(stat_fields(line), Some(8));
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(stat_fields(&me).unwrap() >= 52);
        assert_eq!(stat_fields("no paren"), None);
    }

    #[test]
    fn category_one_task_probes_pass() {
        probe_map_files().unwrap();
        probe_ns_last_pid().unwrap();
        probe_kcmp().unwrap();
        probe_tid_address().unwrap();
        assert_eq!(probe_mm_map_size().unwrap(), 104);
        probe_fcntl_owner_uids().unwrap();
        probe_proc_stat().unwrap();
        probe_ipc().unwrap();
        probe_sigqueueinfo().unwrap();
    }

    #[test]
    fn ptrace_probes_pass() {
        probe_ptrace_seize().unwrap();
        probe_ptrace_peeksiginfo().unwrap();
        probe_seccomp_suspend().unwrap();
        probe_seccomp_filters().unwrap();
        assert!(probe_ptrace_get_rseq_conf_supported().unwrap());
    }

    #[test]
    fn pid_probes_match_this_kernel() {
        assert!(probe_clone3_set_tid().unwrap());
        assert!(probe_clone_parent_vs_pid().unwrap());
        assert!(probe_pidfd_open().unwrap());
        assert!(probe_pidfd_getfd().unwrap());
        assert!(probe_nspid().unwrap());
        assert!(probe_timens().unwrap());
        assert!(probe_kcmp_epoll_tfd().unwrap());
    }

    #[test]
    fn misc_task_probes_answer() {
        probe_timer_cr_ids().unwrap();
        probe_posix_timers().unwrap();
        probe_cgroupns().unwrap();
        probe_userns().unwrap();
        probe_loginuid().unwrap();
    }
}
