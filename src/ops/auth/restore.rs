//! What a confined caller may restore: images that give their tasks
//! nothing the caller does not hold. Checked on the images as the restore
//! read them (the caller owns the images dir and could change the files
//! afterwards), before any task exists:
//! - each thread's credentials: every uid the caller's uid, every gid its
//!   gid, supplementary groups among its groups, capability sets within
//!   its permitted set (the bounding set within its bounding set), no
//!   securebits without CAP_SETPCAP, no_new_privs kept if the caller has
//!   it, no LSM label; a thread without credentials would keep criu's;
//! - the executables' file capabilities (security.capability) within the
//!   caller's permitted set;
//! - what root could set and the caller could not: hard rlimits above
//!   its own, another loginuid, an oom_score_adj below its own, realtime
//!   scheduling or a lower nice value than its limits allow, alarm clocks;
//! - descriptions that need a capability to make: raw and packet sockets
//!   (CAP_NET_RAW), ports below ip_unprivileged_port_start
//!   (CAP_NET_BIND_SERVICE), TCP connections through repair mode, tun
//!   files (CAP_NET_ADMIN), fanotify groups (CAP_SYS_ADMIN), BPF maps
//!   (CAP_BPF);
//! - an LSM label of the caller's that criu's (given to restored tasks)
//!   is not, or seccomp filters on the caller (its restored tasks would
//!   escape them).
//!
//! Files the tasks open are the kernel's to check (the worker works with
//! the caller's filesystem credentials, [`super::peer`]).

use anyhow::Result;

use super::{extra_caps, Caller};
use crate::images::pb::{CoreEntry, CredsEntry, FdTypes, FileEntry};
use crate::restorer::tree::{Body, Tree};
use crate::task::creds::caps;

const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SETPCAP: u32 = 8;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_NICE: u32 = 23;
const CAP_SYS_RESOURCE: u32 = 24;
const CAP_AUDIT_CONTROL: u32 = 30;
const CAP_WAKE_ALARM: u32 = 35;
const CAP_BPF: u32 = 39;

const RLIMIT_NICE: usize = 13;
const RLIMIT_RTPRIO: usize = 14;
/// TCP_LISTEN and TCP_CLOSE: the states made without repair mode.
const TCP_CLOSE: u32 = 7;
const TCP_LISTEN: u32 = 10;

impl Caller {
    fn has(&self, cap: u32) -> bool {
        self.caps() & (1u64 << cap) != 0
    }

    /// `what` needs capability `cap`, which the caller lacks.
    fn need(&self, cap: u32, what: impl std::fmt::Display) -> Result<()> {
        if self.has(cap) {
            return Ok(());
        }
        let name = extra_caps(1u64 << cap, 0).unwrap_or_default();
        Err(self.deny(format!("restore {what} (that needs {name})")).into())
    }
}

/// One thread's credentials (`who` names it and its image).
pub fn check_creds(c: &Caller, who: &str, cr: Option<&CredsEntry>) -> Result<()> {
    let Some(cr) = cr else {
        return Err(c.deny(format!("restore {who}: its image has no credentials (it would run as criu's root)")).into());
    };
    let uids = [cr.uid, cr.euid, cr.suid, cr.fsuid];
    if uids != [c.uid; 4] {
        return Err(c.deny(format!("restore {who}: it claims uids {uids:?}")).into());
    }
    let gids = [cr.gid, cr.egid, cr.sgid, cr.fsgid];
    if gids != [c.gid; 4] {
        return Err(c.deny(format!("restore {who}: it claims gids {gids:?}")).into());
    }
    if let Some(g) = cr.groups.iter().find(|g| !c.groups.contains(g)) {
        return Err(c.deny(format!("restore {who}: it claims supplementary group {g}")).into());
    }
    for (set, v) in [("inheritable", &cr.cap_inh), ("permitted", &cr.cap_prm), ("effective", &cr.cap_eff), ("ambient", &cr.cap_amb)] {
        if let Some(extra) = extra_caps(caps(v), c.caps()) {
            return Err(c.deny(format!("restore {who}: its {set} capabilities hold {extra}")).into());
        }
    }
    if let Some(extra) = extra_caps(caps(&cr.cap_bnd), c.status.cap_bnd) {
        return Err(c.deny(format!("restore {who}: its bounding set holds {extra}, the client's does not")).into());
    }
    if cr.secbits != 0 {
        c.need(CAP_SETPCAP, format_args!("{who} with securebits {:#x}", cr.secbits))?;
    }
    if c.status.no_new_privs && cr.no_new_privs.unwrap_or(0) == 0 {
        return Err(c.deny(format!("restore {who} without no_new_privs: the client runs with it")).into());
    }
    if let Some(l) = cr.lsm_profile.as_ref().or(cr.lsm_sockcreate.as_ref()) {
        return Err(c.deny(format!("restore {who} with LSM label {l:?}")).into());
    }
    Ok(())
}

/// vfs_cap_data's permitted set (revisions 2 and 3: two 32-bit halves
/// after the magic; revision 1: one).
fn file_caps(raw: &[u8]) -> u64 {
    let w = |i: usize| raw.get(4 * i..4 * i + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    u64::from(w(1)) | (u64::from(w(3)) << 32)
}

/// The file capabilities of executable `path` (task `pid`'s).
pub fn check_exe(c: &Caller, pid: i32, path: &str) -> Result<()> {
    let raw = crate::sys::xattr::get(std::path::Path::new(path), c"security.capability")
        .map_err(|e| anyhow::anyhow!("reading the file capabilities of {path} (task {pid}'s executable): {e}"))?;
    if let Some(extra) = raw.and_then(|r| extra_caps(file_caps(&r), c.caps())) {
        return Err(c.deny(format!("restore task {pid}: its executable {path} has file capabilities {extra}")).into());
    }
    Ok(())
}

/// The task-wide settings of task `pid` (its leader's core).
fn check_task_core(c: &Caller, pid: i32, core: &CoreEntry) -> Result<()> {
    let Some(tc) = core.tc.as_ref() else { return Ok(()) };
    let rl = tc.rlimits.as_ref().map(|r| r.rlimits.as_slice()).unwrap_or(&[]);
    for (res, l) in rl.iter().enumerate() {
        let mine = c.limits.get(res).map_or(u64::MAX, |m| m.1);
        if l.max > mine {
            let name = crate::proc::limits::NAMES.get(res).copied().unwrap_or("rlimit");
            c.need(CAP_SYS_RESOURCE, format_args!("task {pid} with \"{name}\" hard limit {} (the client's is {mine})", l.max))?;
        }
    }
    if let Some(uid) = tc.loginuid
        && Some(uid) != c.loginuid
        && !(c.loginuid.is_none() && uid == u32::MAX)
    {
        c.need(CAP_AUDIT_CONTROL, format_args!("task {pid} with loginuid {uid}"))?;
    }
    if let Some(adj) = tc.oom_score_adj.filter(|&a| a < c.oom_score_adj) {
        c.need(CAP_SYS_RESOURCE, format_args!("task {pid} with oom_score_adj {adj} (the client's is {})", c.oom_score_adj))?;
    }
    for t in tc.timers.iter().flat_map(|t| t.posix.iter()) {
        if alarm_clock(t.clock_id) {
            c.need(CAP_WAKE_ALARM, format_args!("task {pid} with a POSIX timer on alarm clock {}", t.clock_id))?;
        }
    }
    Ok(())
}

fn alarm_clock(id: u32) -> bool {
    [libc::CLOCK_REALTIME_ALARM, libc::CLOCK_BOOTTIME_ALARM].contains(&(id as i32))
}

/// One thread's scheduling (`tid` of `pid`).
fn check_sched(c: &Caller, who: &str, core: &CoreEntry) -> Result<()> {
    let Some(th) = core.thread_core.as_ref() else { return Ok(()) };
    let policy = th.sched_policy.unwrap_or(0) as i32 & !libc::SCHED_RESET_ON_FORK;
    if [libc::SCHED_FIFO, libc::SCHED_RR, 6].contains(&policy) {
        let prio = u64::from(th.sched_prio.unwrap_or(0));
        let rtprio = c.limits.get(RLIMIT_RTPRIO).map_or(0, |l| l.1);
        if policy == 6 || prio > rtprio {
            c.need(CAP_SYS_NICE, format_args!("{who} with realtime policy {policy}, priority {prio}"))?;
        }
    }
    if let Some(nice) = th.sched_nice {
        // Lowering nice below the client's own needs RLIMIT_NICE (20 - nice).
        let floor = 20 - c.limits.get(RLIMIT_NICE).map_or(0, |l| l.1.min(40) as i64);
        if i64::from(nice) < c.nice.min(floor) {
            c.need(CAP_SYS_NICE, format_args!("{who} with nice {nice} (the client's is {})", c.nice))?;
        }
    }
    Ok(())
}

/// Descriptions that take a capability to make.
fn check_file(c: &Caller, fe: &FileEntry, port_start: u32) -> Result<()> {
    let id = fe.id;
    match FdTypes::try_from(fe.r#type).ok() {
        Some(FdTypes::Inetsk) => {
            let Some(sk) = fe.isk.as_ref() else { return Ok(()) };
            if sk.r#type == libc::SOCK_RAW as u32 {
                c.need(CAP_NET_RAW, format_args!("raw socket {id:#x}"))?;
            }
            if sk.src_port != 0 && sk.src_port < port_start {
                c.need(CAP_NET_BIND_SERVICE, format_args!("socket {id:#x} bound to port {}", sk.src_port))?;
            }
            if sk.proto == libc::IPPROTO_TCP as u32 && sk.r#type == libc::SOCK_STREAM as u32 && ![TCP_CLOSE, TCP_LISTEN].contains(&sk.state) {
                c.need(CAP_NET_ADMIN, format_args!("TCP connection {id:#x} (state {}) through repair mode", sk.state))?;
            }
        }
        Some(FdTypes::Packetsk) => c.need(CAP_NET_RAW, format_args!("packet socket {id:#x}"))?,
        Some(FdTypes::Tunf) => c.need(CAP_NET_ADMIN, format_args!("tun file {id:#x}"))?,
        Some(FdTypes::Fanotify) => c.need(CAP_SYS_ADMIN, format_args!("fanotify group {id:#x}"))?,
        Some(FdTypes::Bpfmap) => c.need(CAP_BPF, format_args!("BPF map {id:#x}"))?,
        Some(FdTypes::Timerfd) => {
            if let Some(t) = fe.tfd.as_ref().filter(|t| alarm_clock(t.clockid)) {
                c.need(CAP_WAKE_ALARM, format_args!("timerfd {id:#x} on alarm clock {}", t.clockid))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn unprivileged_port_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1024)
}

/// Every task, thread and description of `tree`, when the caller is
/// confined.
pub fn check_tree(tree: &Tree) -> Result<()> {
    let Some(c) = super::caller() else { return Ok(()) };
    if c.status.seccomp != 0 {
        return Err(c.deny(format!("restore: the client runs under seccomp (mode {}), which restored tasks would not keep", c.status.seccomp)).into());
    }
    if let Some(why) = &c.lsm_label {
        return Err(c.deny(format!("restore: restored tasks would not keep the client's LSM label ({why})")).into());
    }
    for n in &tree.nodes {
        let Body::Alive(t) = &n.body else { continue };
        let pid = n.pid;
        check_creds(c, &format!("task {pid} (core-{pid}.img)"), t.core.thread_core.as_ref().and_then(|th| th.creds.as_ref()))?;
        check_sched(c, &format!("task {pid}"), &t.core)?;
        for (tid, core) in &t.threads {
            let who = format!("thread {tid} of task {pid} (core-{tid}.img)");
            check_creds(c, &who, core.thread_core.as_ref().and_then(|th| th.creds.as_ref()))?;
            check_sched(c, &who, core)?;
        }
        check_task_core(c, pid, &t.core)?;
        if let Some(reg) = tree.files.get(&t.mm.exe_file_id).and_then(|f| f.reg.as_ref()) {
            check_exe(c, pid, &reg.name)?;
        }
    }
    let port_start = unprivileged_port_start();
    let mut ids: Vec<&u32> = tree.files.keys().collect();
    ids.sort_unstable();
    ids.into_iter().try_for_each(|id| check_file(c, &tree.files[id], port_start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::pb::{InetSkEntry, RlimitEntry, TaskCoreEntry, TaskRlimitsEntry};

    fn nobody() -> Caller {
        Caller::for_tests(65534, 65534, vec![65534, 100], 0)
    }

    fn own() -> CredsEntry {
        CredsEntry {
            uid: 65534,
            euid: 65534,
            suid: 65534,
            fsuid: 65534,
            gid: 65534,
            egid: 65534,
            sgid: 65534,
            fsgid: 65534,
            cap_inh: vec![0, 0],
            cap_prm: vec![0, 0],
            cap_eff: vec![0, 0],
            cap_bnd: vec![0, 0],
            cap_amb: vec![0, 0],
            groups: vec![100],
            ..Default::default()
        }
    }

    fn refusal(r: Result<()>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.downcast_ref::<super::super::Denied>().map(|d| d.errno()), Some(libc::EPERM), "{e:#}");
        e.to_string()
    }

    #[test]
    fn credentials_must_be_the_callers() {
        let c = nobody();
        check_creds(&c, "task 9", Some(&own())).unwrap();
        let e = refusal(check_creds(&c, "task 9", Some(&CredsEntry { suid: 0, ..own() })));
        assert_eq!(e, "RPC client uid 65534 (pid ".to_string() + &c.pid.to_string() + ") may not restore task 9: it claims uids [65534, 65534, 0, 65534]");
        assert!(refusal(check_creds(&c, "task 9", Some(&CredsEntry { fsgid: 0, ..own() }))).contains("claims gids"));
        assert!(refusal(check_creds(&c, "task 9", Some(&CredsEntry { groups: vec![0], ..own() }))).contains("supplementary group 0"));
        assert!(refusal(check_creds(&c, "task 9", Some(&CredsEntry { cap_prm: vec![0, 1], ..own() }))).contains("permitted capabilities hold CAP_MAC_OVERRIDE"));
        assert!(refusal(check_creds(&c, "task 9", Some(&CredsEntry { cap_amb: vec![1 << 12, 0], ..own() }))).contains("ambient capabilities hold CAP_NET_ADMIN"));
        assert!(refusal(check_creds(&c, "task 9", Some(&CredsEntry { secbits: 1, ..own() }))).contains("needs CAP_SETPCAP"));
        assert!(refusal(check_creds(&c, "task 9", None)).contains("no credentials"));
        // A caller holding a capability may give it.
        let admin = Caller::for_tests(65534, 65534, vec![], 1 << 12);
        check_creds(&admin, "task 9", Some(&CredsEntry { cap_eff: vec![1 << 12, 0], groups: vec![], ..own() })).unwrap();
        // no_new_privs stays when the caller has it.
        let mut nnp = nobody();
        nnp.status.no_new_privs = true;
        assert!(refusal(check_creds(&nnp, "task 9", Some(&own()))).contains("without no_new_privs"));
        check_creds(&nnp, "task 9", Some(&CredsEntry { no_new_privs: Some(1), ..own() })).unwrap();
    }

    #[test]
    fn task_settings_within_the_callers() {
        let c = nobody();
        let core = |tc: TaskCoreEntry| CoreEntry { tc: Some(tc), ..Default::default() };
        let mine: Vec<RlimitEntry> = c.limits.iter().map(|&(cur, max)| RlimitEntry { cur, max }).collect();
        let tc = TaskCoreEntry { rlimits: Some(TaskRlimitsEntry { rlimits: mine.clone() }), loginuid: c.loginuid, oom_score_adj: Some(5), ..Default::default() };
        check_task_core(&c, 9, &core(tc.clone())).unwrap();
        // A hard limit above the caller's (ours: the first finite one).
        let mut more = mine.clone();
        match more.iter().position(|l| l.max != u64::MAX) {
            Some(res) => {
                more[res].max += 1;
                let e = refusal(check_task_core(&c, 9, &core(TaskCoreEntry { rlimits: Some(TaskRlimitsEntry { rlimits: more }), ..tc.clone() })));
                let name = crate::proc::limits::NAMES[res];
                assert!(e.contains(&format!("\"{name}\" hard limit")) && e.contains("CAP_SYS_RESOURCE"), "{e}");
            }
            None => println!("skipping the rlimit case: every hard limit of this process is unlimited"),
        }
        let e = refusal(check_task_core(&c, 9, &core(TaskCoreEntry { oom_score_adj: Some(-1), ..tc.clone() })));
        assert!(e.contains("oom_score_adj -1"), "{e}");
        let e = refusal(check_task_core(&c, 9, &core(TaskCoreEntry { loginuid: Some(c.loginuid.unwrap_or(0).wrapping_add(1)), ..tc })));
        assert!(e.contains("CAP_AUDIT_CONTROL"), "{e}");
    }

    #[test]
    fn privileged_descriptions_are_refused() {
        let c = nobody();
        let inet = |ty: i32, proto: i32, state: u32, port: u32| FileEntry {
            r#type: FdTypes::Inetsk as i32,
            id: 3,
            isk: Some(InetSkEntry { r#type: ty as u32, proto: proto as u32, state, src_port: port, ..Default::default() }),
            ..Default::default()
        };
        check_file(&c, &inet(libc::SOCK_STREAM, libc::IPPROTO_TCP, TCP_LISTEN, 8080), 1024).unwrap();
        check_file(&c, &inet(libc::SOCK_DGRAM, libc::IPPROTO_UDP, TCP_CLOSE, 0), 1024).unwrap();
        assert!(refusal(check_file(&c, &inet(libc::SOCK_STREAM, libc::IPPROTO_TCP, TCP_LISTEN, 80), 1024)).contains("port 80"));
        assert!(refusal(check_file(&c, &inet(libc::SOCK_STREAM, libc::IPPROTO_TCP, 1, 8080), 1024)).contains("repair mode"));
        assert!(refusal(check_file(&c, &inet(libc::SOCK_RAW, libc::IPPROTO_ICMP, TCP_CLOSE, 0), 1024)).contains("CAP_NET_RAW"));
        let packet = FileEntry { r#type: FdTypes::Packetsk as i32, id: 4, ..Default::default() };
        assert!(refusal(check_file(&c, &packet, 1024)).contains("packet socket 0x4"));
        // The sysctl moves the line.
        check_file(&c, &inet(libc::SOCK_STREAM, libc::IPPROTO_TCP, TCP_LISTEN, 80), 0).unwrap();
    }

    #[test]
    fn file_caps_join_the_permitted_halves() {
        // VFS_CAP_REVISION_2, permitted {CAP_NET_RAW}, inheritable 0, high words 0/1.
        let mut raw = Vec::new();
        for w in [0x0200_0001u32, 1 << 13, 0, 1, 0] {
            raw.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(file_caps(&raw), (1 << 13) | (1 << 32));
        assert_eq!(file_caps(&raw[..12]), 1 << 13, "revision 1: one word");
    }
}
