//! One thread as the dump records it (`core-TID.img` but `tc`): registers
//! and FPU state, TLS, blocked mask, private pending signals, sigaltstack,
//! clear_tid address, rseq, robust list, comm, creds, scheduling, seccomp
//! mode and parent-death signal. The leader goes through the same code as
//! every other thread (CRIU's `dump_task_thread` / `dump_thread_core`);
//! what only the thread itself can tell comes from syscalls run in that
//! thread through a [`Remote`] over its own seized state ([`ask`]), or
//! for the leader from the parasite.

use anyhow::{bail, Context, Result};

use crate::compel::ThreadState;
use crate::images::pb::{RseqEntry, SeccompMode, SignalQueueEntry, ThreadCoreEntry, ThreadInfoX86, ThreadSasEntry};
use crate::proc;
use crate::task::remote::{self, Remote};

/// What the dump keeps of one thread.
#[derive(Clone, Debug)]
pub struct ThreadDump {
    pub tid: i32,
    pub info: ThreadInfoX86,
    pub core: ThreadCoreEntry,
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

/// Ask thread `tid` of `pid` through `r` (syscalls run in that thread).
pub fn ask(pid: i32, tid: i32, r: &mut dyn Remote) -> Result<Asked> {
    let what = |w: &str| format!("{w} of thread {tid} of {pid}");
    Ok(Asked {
        tid_addr: remote::tid_address(r).with_context(|| what("clear_tid address"))?,
        sas: remote::sigaltstack(r).with_context(|| what("sigaltstack"))?,
        secbits: remote::securebits(r).with_context(|| what("securebits"))?,
        pdeath: remote::pdeath_sig(r).with_context(|| what("parent-death signal"))?,
    })
}

/// Scheduling of a thread from its stat line: (nice, policy, rt priority).
fn sched(text: &str) -> Result<(i32, u32, u32)> {
    let st = proc::stat::parse(text)?;
    // Field 40 (rt_priority); field N is the (N-3)th word after the comm.
    let rt_prio = text
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().nth(40 - 3))
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    Ok((st.nice as i32, st.policy, rt_prio))
}

/// Dump thread `tid` of process `pid`, stopped with `state` (as seized),
/// with what it told ([`Asked`]). The leader's blocked mask lives in its
/// task core, so only other threads carry `blk_sigset` here (as CRIU
/// writes them).
pub fn dump(pid: i32, tid: i32, state: &ThreadState, asked: Asked, leader: bool) -> Result<ThreadDump> {
    let what = |w: &str| format!("{w} of thread {tid} of {pid}");
    let stat_text = proc::read(pid, &format!("task/{tid}/stat"))?;
    let stat = proc::stat::parse(&stat_text).with_context(|| what("parsing stat"))?;
    let (nice, policy, rt_prio) = sched(&stat_text)?;
    let status = proc::status::read_thread(pid, tid)?;
    if status.seccomp == 2 {
        bail!("thread {tid} of {pid} has seccomp filters: dumping them is not supported yet");
    }

    let status_text = proc::read(pid, &format!("task/{tid}/status"))?;
    let shstk = status_text
        .lines()
        .find_map(|l| l.strip_prefix("x86_Thread_features:"))
        .is_some_and(|v| v.split_whitespace().any(|f| f == "shstk"));
    if shstk {
        bail!("thread {tid} of {pid} uses a CET shadow stack: dumping shadow stacks is not supported");
    }

    let Asked { tid_addr, sas, secbits, pdeath } = asked;

    let rseq = crate::sys::kprobe::ptrace_get_rseq_conf(nix::unistd::Pid::from_raw(tid))
        .ok()
        .filter(|(_, c)| c.rseq_abi_pointer != 0)
        .map(|(_, c)| RseqEntry {
            rseq_abi_pointer: c.rseq_abi_pointer,
            rseq_abi_size: c.rseq_abi_size,
            signature: c.signature,
            rseq_cs_pointer: None,
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

    let rt = matches!(policy as i32, libc::SCHED_FIFO | libc::SCHED_RR);
    let core = ThreadCoreEntry {
        futex_rla,
        futex_rla_len: futex_rla_len as u32,
        sched_nice: Some(nice),
        sched_policy: Some(policy),
        sched_prio: rt.then_some(rt_prio),
        blk_sigset: (!leader).then_some(state.sigmask),
        sas: Some(sas),
        pdeath_sig: (pdeath != 0).then_some(pdeath),
        signals_p: Some(if signals.signals.is_empty() { SignalQueueEntry::default() } else { signals }),
        creds: Some(super::creds(&status, secbits)),
        seccomp_mode: (status.seccomp == 1).then_some(SeccompMode::Strict as i32),
        seccomp_filter: None,
        comm: Some(stat.comm),
        blk_sigset_extended: None,
        rseq_entry: rseq,
        cg_set: Some(1),
    };
    Ok(ThreadDump { tid, info, core })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sched_fields_of_a_stat_line() {
        let line = "42 (a b) S 1 42 42 0 -1 4194304 1 0 0 0 0 0 0 0 20 -5 1 0 5 1000 100 18446744073709551615 \
                    1 2 3 0 0 0 0 0 0 0 0 0 17 0 7 1 0 0 0 4 5 6 7 8 9 10 0";
        assert_eq!(super::sched(line).unwrap(), (-5, 1, 7));
    }

    #[test]
    fn our_own_threads_stat_parses() {
        let me = std::process::id() as i32;
        let t = crate::proc::read(me, &format!("task/{me}/stat")).unwrap();
        let (nice, policy, _) = super::sched(&t).unwrap();
        assert!((-20..20).contains(&nice));
        assert_eq!(policy, 0);
    }
}
