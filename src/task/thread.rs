//! One thread as the dump records it (`core-TID.img` but `tc`): registers
//! and FPU state, TLS, blocked mask, private pending signals, sigaltstack,
//! clear_tid address, rseq, robust list, comm, creds, scheduling, seccomp
//! mode and parent-death signal. The leader goes through the same code as
//! every other thread (CRIU's `dump_task_thread` / `dump_thread_core`);
//! what only the thread itself can tell comes from syscalls run in that
//! thread through a [`Remote`] over its own seized state ([`ask`]; the
//! clear_tid address has a fallback, [`super::tid_address`]), or
//! for the leader from the parasite. At restore, the same record becomes
//! the restorer's [`plan`] of a thread (scheduling, seccomp, rseq as the
//! restore reads them: [`sched_of`], [`seccomp_strict`], [`rseq_of`]).

use anyhow::{bail, Context, Result};

use crate::compel::ThreadState;
use crate::images::pb::{CoreEntry, RseqEntry, SeccompMode, SignalQueueEntry, ThreadCoreEntry, ThreadInfoX86, ThreadSasEntry};
use crate::proc;
use crate::task::remote::{self, Remote};

/// What the dump keeps of one thread.
#[derive(Clone, Debug)]
pub struct ThreadDump {
    pub tid: i32,
    pub info: ThreadInfoX86,
    pub core: ThreadCoreEntry,
    /// Its seccomp filters, oldest first (none unless in filter mode);
    /// their place in seccomp.img is given by `seccomp::image`.
    pub filters: Vec<super::seccomp::Filter>,
}

/// What only the thread itself can tell: from remote syscalls in it
/// ([`ask`]), or for the leader from the parasite's report.
#[derive(Clone, Debug, Default)]
pub struct Asked {
    pub tid_addr: u64,
    pub sas: ThreadSasEntry,
    pub secbits: u32,
    pub pdeath: u32,
}

/// Ask thread `tid` of `pid`, whose thread pointer is `tp`, through `r`
/// (syscalls run in that thread); `offset`: where the leader's clear_tid
/// lies in its thread descriptor ([`super::tid_address`]).
pub fn ask(pid: i32, tid: i32, tp: u64, offset: Option<u64>, r: &mut dyn Remote) -> Result<Asked> {
    let what = |w: &str| format!("{w} of thread {tid} of {pid}");
    Ok(Asked {
        tid_addr: super::tid_address::get(pid, tid, tp, offset, r)?,
        sas: remote::sigaltstack(r).with_context(|| what("sigaltstack"))?,
        secbits: remote::securebits(r).with_context(|| what("securebits"))?,
        pdeath: remote::pdeath_sig(r).with_context(|| what("parent-death signal"))?,
    })
}

/// A thread's scheduling as CRIU records it: (nice, policy, rt priority);
/// nice and policy always (CRIU 4.2's restore takes an absent policy
/// for "SCHED_OTHER, nice 0"), the priority for real-time policies. The policy is
/// sched_getscheduler's (SCHED_RESET_ON_FORK included); the priority is
/// kept for real-time policies only. SCHED_DEADLINE has no place in the
/// image (its runtime, deadline and period): refused.
fn sched(pid: i32, tid: i32) -> Result<(i32, u32, Option<u32>)> {
    use crate::sys::sched;
    let what = |w: &str| format!("{w} of thread {tid} of {pid}");
    let policy = sched::policy(tid).with_context(|| what("sched_getscheduler"))?;
    let base = policy & !(libc::SCHED_RESET_ON_FORK as u32);
    if base == SCHED_DEADLINE {
        bail!("thread {tid} of {pid} runs under SCHED_DEADLINE: dumping its parameters is not supported");
    }
    let rt = matches!(base as i32, libc::SCHED_FIFO | libc::SCHED_RR);
    let prio = if rt { Some(sched::rt_priority(tid).with_context(|| what("sched_getparam"))?) } else { None };
    let nice = sched::nice(tid).with_context(|| what("getpriority"))?;
    Ok((nice, policy, prio))
}

const SCHED_DEADLINE: u32 = 6;

/// Dump thread `tid` of process `pid`, stopped with `state` (as seized),
/// with what it told ([`Asked`]). The leader's blocked mask lives in its
/// task core, so only other threads carry `blk_sigset` here (as CRIU
/// writes them).
pub fn dump(pid: i32, tid: i32, state: &ThreadState, asked: Asked, leader: bool) -> Result<ThreadDump> {
    let what = |w: &str| format!("{w} of thread {tid} of {pid}");
    let stat_text = proc::read(pid, &format!("task/{tid}/stat"))?;
    let stat = proc::stat::parse(&stat_text).with_context(|| what("parsing stat"))?;
    let (sched_nice, sched_policy, sched_prio) = sched(pid, tid)?;
    let status = proc::status::read_thread(pid, tid)?;
    let filters = if status.seccomp == 2 { super::seccomp::read_chain(pid, tid)? } else { Vec::new() };

    super::lsm::check(pid, tid)?;

    let status_text = proc::read(pid, &format!("task/{tid}/status"))?;
    let shstk = status_text
        .lines()
        .find_map(|l| l.strip_prefix("x86_Thread_features:"))
        .is_some_and(|v| v.split_whitespace().any(|f| f == "shstk"));
    if shstk {
        bail!("thread {tid} of {pid} uses a CET shadow stack: dumping shadow stacks is not supported");
    }

    let Asked { tid_addr, sas, secbits, pdeath } = asked;

    // A thread seized inside an rseq critical section (compel::rseq): an
    // abortable one was moved to its abort handler at seize; a
    // non-abortable one would need rseq->rseq_cs written back by the
    // restore, which ours does not do.
    if let Some(p) = &state.rseq.problem {
        bail!("thread {tid} of {pid}: {p}: dumping its rseq state is not supported");
    }
    if state.rseq.in_kept_cs {
        bail!("thread {tid} of {pid} is stopped inside a non-abortable rseq critical section (RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL): restoring it is not supported");
    }
    let rseq = crate::sys::ptrace::get_rseq_conf(nix::unistd::Pid::from_raw(tid))
        .ok()
        .filter(|(_, c)| c.rseq_abi_pointer != 0)
        .map(|(_, c)| RseqEntry {
            rseq_abi_pointer: c.rseq_abi_pointer,
            rseq_abi_size: c.rseq_abi_size,
            signature: c.signature,
            rseq_cs_pointer: state.rseq.cs_pointer,
        });
    let (futex_rla, futex_rla_len) = crate::sys::signals::robust_list(tid).with_context(|| what("get_robust_list"))?;
    let tls: Vec<_> = (12..=14)
        .map(|e| crate::sys::x86::get_thread_area(tid, e))
        .collect::<Result<_, _>>()
        .with_context(|| what("PTRACE_GET_THREAD_AREA"))?;
    let info = super::thread_info::thread_info(&state.regs.as_dumped(), &state.fpu.0, tid_addr, &tls);
    if let Some(p) = crate::ops::cpuinfo::fpu_problem(&info.fpregs, crate::arch::cpu::xcr0()) {
        bail!("thread {tid} of {pid}: {p} (CRIU's image format has no place for it): dumping it is not supported");
    }
    let signals = super::pending(tid, false).with_context(|| what("private pending signals"))?;

    let core = ThreadCoreEntry {
        futex_rla,
        futex_rla_len: futex_rla_len as u32,
        sched_nice: Some(sched_nice),
        sched_policy: Some(sched_policy),
        sched_prio,
        blk_sigset: (!leader).then_some(state.sigmask),
        sas: Some(sas),
        pdeath_sig: (pdeath != 0).then_some(pdeath),
        signals_p: Some(if signals.signals.is_empty() { SignalQueueEntry::default() } else { signals }),
        creds: Some(super::creds::dump(&status, secbits)),
        // Filter mode and its index: set by `seccomp::image`.
        seccomp_mode: (status.seccomp == 1).then_some(SeccompMode::Strict as i32),
        seccomp_filter: None,
        comm: Some(stat.comm),
        blk_sigset_extended: None,
        rseq_entry: rseq,
        cg_set: Some(1),
    };
    Ok(ThreadDump { tid, info, core, filters })
}

/// Every thread of live task `pid`: the leader with what its parasite
/// told (`report`), the others asked with syscalls run in each of them
/// (through a scratch page of the task, unmapped again).
pub fn dump_all(pid: i32, ctl: &mut remote::Ctl, threads: &mut [crate::compel::Seized], report: &remote::ParasiteReport) -> Result<(ThreadDump, Vec<ThreadDump>)> {
    let asked = Asked {
        tid_addr: report.tid_address,
        sas: report.sigaltstack,
        secbits: report.securebits,
        pdeath: report.pdeath_sig,
    };
    let leader = dump(pid, pid, ctl.seized.state(), asked, true)?;
    let mut others = Vec::with_capacity(threads.len());
    if !threads.is_empty() {
        let offset = super::tid_address::descriptor_offset(report.tid_address, ctl.seized.state().regs.thread_pointer());
        let page = ctl.scratch()?;
        for t in threads.iter_mut() {
            let tid = t.pid().as_raw();
            let tp = t.state().regs.thread_pointer();
            let asked = ask(pid, tid, tp, offset, &mut remote::ThreadRemote { seized: t, scratch: page })?;
            others.push(dump(pid, tid, t.state(), asked, false)?);
        }
        ctl.drop_scratch()?;
    }
    Ok((leader, others))
}

/// A thread's scheduling from its core: without a policy, SCHED_OTHER at
/// nice 0 (as CRIU 4.2 reads it); an absent priority is 0.
pub fn sched_of(thc: &crate::images::pb::ThreadCoreEntry) -> Option<crate::restorer::plan::Sched> {
    Some(crate::restorer::plan::Sched {
        nice: thc.sched_policy.and(thc.sched_nice).unwrap_or(0),
        policy: thc.sched_policy.unwrap_or(0),
        prio: thc.sched_prio.unwrap_or(0),
    })
}

/// A thread's seccomp state from its core: strict mode, or filter mode
/// with its filters out of seccomp.img (`se`).
pub fn seccomp_of(tid: i32, mode: Option<i32>, filter: Option<u32>, se: Option<&crate::images::pb::SeccompEntry>) -> Result<crate::restorer::plan::Seccomp> {
    use crate::restorer::plan::Seccomp;
    match mode.map(SeccompMode::try_from) {
        None | Some(Ok(SeccompMode::Disabled)) => Ok(Seccomp::Off),
        Some(Ok(SeccompMode::Strict)) => Ok(Seccomp::Strict),
        Some(Ok(SeccompMode::Filter)) => Ok(Seccomp::Filters(super::seccomp::chain_of(tid, se, filter)?)),
        Some(Err(_)) => bail!("thread {tid}: unknown seccomp mode {mode:?} in its core image"),
    }
}

/// The leader's seccomp state: its thread core's, or, in images of CRIU
/// before per-thread seccomp, the task core's old fields, whose filters
/// went to every thread: installed with TSYNC (as CRIU 4.2 does).
pub fn leader_seccomp_of(pid: i32, thc: &ThreadCoreEntry, tc: &crate::images::pb::TaskCoreEntry, se: Option<&crate::images::pb::SeccompEntry>) -> Result<crate::restorer::plan::Seccomp> {
    use crate::restorer::plan::Seccomp;
    if thc.seccomp_mode.is_some() || tc.old_seccomp_mode.is_none() {
        return seccomp_of(pid, thc.seccomp_mode, thc.seccomp_filter, se);
    }
    Ok(match seccomp_of(pid, tc.old_seccomp_mode, tc.old_seccomp_filter, se)? {
        Seccomp::Filters(mut chain) => {
            chain.iter_mut().for_each(|f| f.flags |= super::seccomp::FLAG_TSYNC);
            Seccomp::Filters(chain)
        }
        other => other,
    })
}

/// A thread's rseq registration. A recorded `rseq_cs_pointer` (a section
/// flagged RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL) would have to be written back
/// into `rseq->rseq_cs` once the restorer is gone, which ours does not do.
pub fn rseq_of(tid: i32, r: Option<crate::images::pb::RseqEntry>) -> Result<Option<crate::images::pb::RseqEntry>> {
    if let Some(p) = r.and_then(|r| r.rseq_cs_pointer).filter(|p| *p != 0) {
        bail!("thread {tid}: its core image records an rseq critical section ({p:#x}, non-abortable): restoring it is not supported");
    }
    Ok(r)
}

/// What the restorer needs of a thread but the leader.
pub fn plan(tid: i32, core: &CoreEntry, leader_tls: &[crate::images::pb::UserDescT], se: Option<&crate::images::pb::SeccompEntry>) -> Result<crate::restorer::plan::ThreadPlan> {
    let ti = core.thread_info.as_ref().with_context(|| format!("core-{tid}.img has no registers"))?;
    let thc = core.thread_core.as_ref().with_context(|| format!("core-{tid}.img has no thread core"))?;
    Ok(crate::restorer::plan::ThreadPlan {
        tid,
        regs: super::thread_info::regs_from_image(&ti.gpregs),
        fpu: super::thread_info::fpu_from_image(&ti.fpregs),
        sigmask: thc.blk_sigset.unwrap_or(0),
        sigaltstack: thc.sas,
        clear_tid_addr: ti.clear_tid_addr,
        rseq: rseq_of(tid, thc.rseq_entry)?,
        tls: super::thread_info::tls_words(&ti.tls, leader_tls),
        robust_list: (thc.futex_rla, thc.futex_rla_len),
        comm: thc.comm.clone(),
        creds: thc.creds.clone(),
        pdeath_sig: thc.pdeath_sig.unwrap_or(0),
        sched: sched_of(thc),
        seccomp: seccomp_of(tid, thc.seccomp_mode, thc.seccomp_filter, se)?,
        pending: thc.signals_p.as_ref().map(|q| q.signals.iter().map(|s| s.siginfo.clone()).collect()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_own_scheduling_reads() {
        let me = std::process::id() as i32;
        let stat = crate::proc::stat::read(me).unwrap();
        let (nice, policy, prio) = super::sched(me, me).unwrap();
        assert_eq!(nice, stat.nice as i32);
        assert_eq!(policy & !(libc::SCHED_RESET_ON_FORK as u32), stat.policy);
        assert_eq!(prio.is_some(), matches!(stat.policy as i32, libc::SCHED_FIFO | libc::SCHED_RR));
    }

    #[test]
    fn restore_reads_scheduling_seccomp_and_rseq_as_dumped() {
        use crate::images::pb::{RseqEntry, SeccompMode, ThreadCoreEntry};
        let thc = ThreadCoreEntry { sched_nice: Some(5), sched_policy: Some(0), sched_prio: None, ..Default::default() };
        let s = super::sched_of(&thc).unwrap();
        assert_eq!((s.nice, s.policy, s.prio), (5, 0, 0));
        // No policy: SCHED_OTHER at nice 0, whatever nice says.
        let s = super::sched_of(&ThreadCoreEntry { sched_nice: Some(5), ..Default::default() }).unwrap();
        assert_eq!((s.nice, s.policy, s.prio), (0, 0, 0));
        use crate::restorer::plan::Seccomp;
        assert_eq!(super::seccomp_of(1, None, None, None).unwrap(), Seccomp::Off);
        assert_eq!(super::seccomp_of(1, Some(SeccompMode::Strict as i32), None, None).unwrap(), Seccomp::Strict);
        // Filter mode without seccomp.img's filters: refused.
        assert!(super::seccomp_of(1, Some(SeccompMode::Filter as i32), Some(0), None).is_err());
        assert!(super::seccomp_of(1, Some(7), None, None).is_err());
        // Old images: the task core's filters, synced to every thread.
        let se = crate::images::pb::SeccompEntry {
            seccomp_filters: vec![crate::images::pb::SeccompFilter { filter: vec![0; 8], prev: None, flags: None }],
        };
        let tc = crate::images::pb::TaskCoreEntry { old_seccomp_mode: Some(SeccompMode::Filter as i32), old_seccomp_filter: Some(0), ..Default::default() };
        match super::leader_seccomp_of(1, &ThreadCoreEntry::default(), &tc, Some(&se)).unwrap() {
            Seccomp::Filters(c) => assert_eq!(c.iter().map(|f| f.flags).collect::<Vec<_>>(), [crate::task::seccomp::FLAG_TSYNC]),
            other => panic!("{other:?}"),
        }
        let r = RseqEntry { rseq_abi_pointer: 0x1000, rseq_abi_size: 32, signature: 7, rseq_cs_pointer: Some(0) };
        assert_eq!(super::rseq_of(1, Some(r)).unwrap(), Some(r));
        assert!(super::rseq_of(1, Some(RseqEntry { rseq_cs_pointer: Some(0x2000), ..r })).is_err());
    }
}
