//! Seccomp filters both ways: seccomp.img and each thread's
//! `seccomp_mode` / `seccomp_filter` in its core, laid out as CRIU 4.2 does.
//!
//! Dump: each filtered thread's filters are read with
//! PTRACE_SECCOMP_GET_FILTER (and their flags with
//! PTRACE_SECCOMP_GET_METADATA) on the seized thread ([`read_chain`]).
//! When every thread of a process holds the same filters as its leader, only
//! the leader keeps them, flagged SECCOMP_FILTER_FLAG_TSYNC, and the others
//! record no mode (the restored leader syncs them; CRIU's `try_use_tsync`).
//! [`image`] then lists the chains thread by thread in ascending tid order,
//! each newest first; in CRIU 4.2's layout a filter's `prev` is the entry
//! of the filter installed after it, and the thread's `seccomp_filter` is
//! the index of its oldest one.
//!
//! Restore: [`chain_of`] follows a thread's index back into the filters in
//! installation order (checked: indices in range, whole instructions, no
//! loop); the restorer blob installs them as its last step (see
//! `restorer::plan::Seccomp`).

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::unistd::Pid;

use crate::images::pb::{CoreEntry, SeccompEntry, SeccompFilter, SeccompMode};
use crate::sys::ptrace;

/// SECCOMP_FILTER_FLAG_TSYNC.
pub const FLAG_TSYNC: u32 = 1;
/// Bytes of one `struct sock_filter` instruction.
pub const INSN: usize = 8;
/// The kernel's bound on instructions along one filter path (every filter
/// of a thread costs its length plus 4): more filters than this is corrupt.
const MAX_FILTERS: usize = 32768 / 5;

/// One installed filter: its instructions (raw `sock_filter`s) and the
/// flags it was installed with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub insns: Vec<u8>,
    pub flags: u32,
}

/// The filters of seized (stopped) thread `tid` of `pid`, oldest first.
pub fn read_chain(pid: i32, tid: i32) -> Result<Vec<Filter>> {
    let p = Pid::from_raw(tid);
    let mut out = Vec::new();
    let mut metadata = true;
    for i in 0..=MAX_FILTERS {
        let insns = match ptrace::seccomp_filter(p, i) {
            Ok(b) => b,
            Err(Errno::ENOENT) => break,
            Err(e) => bail!("thread {tid} of {pid}: PTRACE_SECCOMP_GET_FILTER of its filter {i}: {e}"),
        };
        let flags = if metadata {
            match ptrace::seccomp_filter_flags(p, i) {
                Ok(f) => f as u32,
                // A kernel without PTRACE_SECCOMP_GET_METADATA: no flags (as CRIU).
                Err(Errno::EIO) => {
                    metadata = false;
                    0
                }
                Err(e) => bail!("thread {tid} of {pid}: PTRACE_SECCOMP_GET_METADATA of its filter {i}: {e}"),
            }
        } else {
            0
        };
        out.push(Filter { insns, flags });
    }
    if out.is_empty() {
        bail!("thread {tid} of {pid} is in seccomp filter mode but PTRACE_SECCOMP_GET_FILTER finds no filter");
    }
    Ok(out)
}

/// One dumped thread's filters and its core, for [`image`].
pub struct ThreadFilters<'a> {
    pub tid: i32,
    pub core: &'a mut CoreEntry,
    /// Oldest first; empty when the thread has none.
    pub chain: Vec<Filter>,
}

/// One task's threads' filters as read at dump: (pid, [(tid, chain)]).
pub type TaskChains = (i32, Vec<(i32, Vec<Filter>)>);

/// seccomp.img for the dumped tasks (`chains`, as read per task), with
/// each filtered thread's core set to its mode and index ([`use_tsync`]
/// per task, then [`image`]).
pub fn dump_image(tasks: &mut [crate::task::images::TaskImages], chains: Vec<TaskChains>) -> SeccompEntry {
    let mut chains: std::collections::HashMap<i32, std::collections::HashMap<i32, Vec<Filter>>> =
        chains.into_iter().map(|(pid, c)| (pid, c.into_iter().collect())).collect();
    let mut all = Vec::new();
    for t in tasks.iter_mut() {
        let mut mine = chains.remove(&t.pid).unwrap_or_default();
        let mut threads = vec![ThreadFilters { tid: t.pid, chain: mine.remove(&t.pid).unwrap_or_default(), core: &mut t.core }];
        for (tid, core) in &mut t.threads {
            threads.push(ThreadFilters { tid: *tid, chain: mine.remove(tid).unwrap_or_default(), core });
        }
        use_tsync(&mut threads);
        all.extend(threads);
    }
    image(all)
}

/// CRIU's TSYNC rule for one process (`threads[0]` its leader): when the
/// leader has filters and every other thread has the same instructions,
/// the leader's filters get SECCOMP_FILTER_FLAG_TSYNC and the others drop
/// theirs and their mode (they get them back from the leader).
pub fn use_tsync(threads: &mut [ThreadFilters<'_>]) {
    let Some((leader, others)) = threads.split_first_mut() else { return };
    if leader.chain.is_empty() {
        return;
    }
    let same = |t: &ThreadFilters<'_>| {
        t.chain.len() == leader.chain.len() && t.chain.iter().zip(&leader.chain).all(|(a, b)| a.insns == b.insns)
    };
    if !others.iter().all(same) {
        return;
    }
    for f in &mut leader.chain {
        f.flags |= FLAG_TSYNC;
    }
    for t in others {
        t.chain.clear();
        if let Some(tc) = t.core.thread_core.as_mut() {
            tc.seccomp_mode = None;
            tc.seccomp_filter = None;
        }
    }
}

/// seccomp.img of every thread (all processes, after [`use_tsync`]): the
/// chains in ascending tid order, each newest first, each filter's `prev`
/// the one listed before it in its chain; each filtered thread's core gets
/// mode FILTER and the index of its oldest filter.
pub fn image(mut threads: Vec<ThreadFilters<'_>>) -> SeccompEntry {
    threads.sort_by_key(|t| t.tid);
    let mut se = SeccompEntry::default();
    for t in threads.iter_mut().filter(|t| !t.chain.is_empty()) {
        let first = se.seccomp_filters.len() as u32;
        for (k, f) in t.chain.iter().rev().enumerate() {
            se.seccomp_filters.push(SeccompFilter {
                filter: f.insns.clone(),
                prev: (k > 0).then(|| first + k as u32 - 1),
                flags: Some(f.flags),
            });
        }
        if let Some(tc) = t.core.thread_core.as_mut() {
            tc.seccomp_mode = Some(SeccompMode::Filter as i32);
            tc.seccomp_filter = Some(se.seccomp_filters.len() as u32 - 1);
        }
    }
    se
}

/// The filters of thread `tid` whose core names entry `index` of `se`, in
/// the order they are to be installed (oldest first).
pub fn chain_of(tid: i32, se: Option<&SeccompEntry>, index: Option<u32>) -> Result<Vec<Filter>> {
    let index = index.with_context(|| format!("thread {tid} is in seccomp filter mode but its core names no filter"))?;
    let se = se.with_context(|| format!("thread {tid} is in seccomp filter mode but seccomp.img has no filters"))?;
    let n = se.seccomp_filters.len();
    let mut out = Vec::new();
    let mut at = Some(index);
    while let Some(i) = at {
        let f = se
            .seccomp_filters
            .get(i as usize)
            .with_context(|| format!("thread {tid}: seccomp filter index {i} out of seccomp.img's {n}"))?;
        if f.filter.is_empty() || f.filter.len() % INSN != 0 || f.filter.len() / INSN > u16::MAX as usize {
            bail!("thread {tid}: seccomp.img filter {i} is {} bytes, not whole instructions", f.filter.len());
        }
        if out.len() >= n.min(MAX_FILTERS) {
            bail!("thread {tid}: the seccomp filters of seccomp.img loop through entry {i}");
        }
        out.push(Filter { insns: f.filter.clone(), flags: f.flags.unwrap_or(0) });
        at = f.prev;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::pb::ThreadCoreEntry;

    fn f(b: u8, flags: u32) -> Filter {
        Filter { insns: vec![b; INSN], flags }
    }

    fn core() -> CoreEntry {
        CoreEntry { thread_core: Some(ThreadCoreEntry::default()), ..Default::default() }
    }

    #[test]
    fn image_lists_chains_newest_first_and_restore_reads_them_back_oldest_first() {
        let (mut a, mut b) = (core(), core());
        let se = image(vec![
            ThreadFilters { tid: 20, core: &mut a, chain: vec![f(1, 0), f(2, 2)] },
            ThreadFilters { tid: 10, core: &mut b, chain: vec![f(3, 0)] },
        ]);
        // tid 10 first: [3]; then tid 20 newest first: [2, 1].
        let bytes: Vec<u8> = se.seccomp_filters.iter().map(|x| x.filter[0]).collect();
        assert_eq!(bytes, [3, 2, 1]);
        assert_eq!(se.seccomp_filters.iter().map(|x| x.prev).collect::<Vec<_>>(), [None, None, Some(1)]);
        assert_eq!(se.seccomp_filters.iter().map(|x| x.flags).collect::<Vec<_>>(), [Some(0), Some(2), Some(0)]);
        let tc = a.thread_core.as_ref().unwrap();
        assert_eq!((tc.seccomp_mode, tc.seccomp_filter), (Some(SeccompMode::Filter as i32), Some(2)));
        assert_eq!(b.thread_core.as_ref().unwrap().seccomp_filter, Some(0));
        assert_eq!(chain_of(20, Some(&se), Some(2)).unwrap(), vec![f(1, 0), f(2, 2)]);
        assert_eq!(chain_of(10, Some(&se), Some(0)).unwrap(), vec![f(3, 0)]);
    }

    #[test]
    fn tsync_only_when_every_thread_has_the_leaders_filters() {
        let (mut l, mut t) = (core(), core());
        let mut th = vec![
            ThreadFilters { tid: 1, core: &mut l, chain: vec![f(1, 0), f(2, 0)] },
            ThreadFilters { tid: 2, core: &mut t, chain: vec![f(1, 0), f(2, 0)] },
        ];
        use_tsync(&mut th);
        assert!(th[0].chain.iter().all(|x| x.flags == FLAG_TSYNC));
        assert!(th[1].chain.is_empty());
        let (mut l, mut t) = (core(), core());
        let mut th = vec![
            ThreadFilters { tid: 1, core: &mut l, chain: vec![f(1, 0)] },
            ThreadFilters { tid: 2, core: &mut t, chain: vec![f(1, 0), f(2, 0)] },
        ];
        use_tsync(&mut th);
        assert_eq!((th[0].chain[0].flags, th[1].chain.len()), (0, 2));
        // A lone leader: TSYNC too (as CRIU).
        let mut l = core();
        let mut th = vec![ThreadFilters { tid: 1, core: &mut l, chain: vec![f(1, 0)] }];
        use_tsync(&mut th);
        assert_eq!(th[0].chain[0].flags, FLAG_TSYNC);
    }

    #[test]
    fn corrupt_chains_are_refused() {
        let sf = |prev: Option<u32>, len: usize| SeccompFilter { filter: vec![0; len], prev, flags: None };
        let looped = SeccompEntry { seccomp_filters: vec![sf(Some(1), 8), sf(Some(0), 8)] };
        assert!(chain_of(1, Some(&looped), Some(0)).is_err());
        let ragged = SeccompEntry { seccomp_filters: vec![sf(None, 12)] };
        assert!(chain_of(1, Some(&ragged), Some(0)).is_err());
        let ok = SeccompEntry { seccomp_filters: vec![sf(None, 8)] };
        assert!(chain_of(1, Some(&ok), Some(1)).is_err());
        assert!(chain_of(1, None, Some(0)).is_err());
        assert_eq!(chain_of(1, Some(&ok), Some(0)).unwrap().len(), 1);
    }

    /// A seized child with one filter (the probe's, 4 instructions), read
    /// as the dump does.
    #[test]
    fn a_seized_childs_filter_reads_back() {
        let t = match crate::kerndat::task::TracedChild::new(true) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("skipped: no filtered traced child here ({e:?})");
                return;
            }
        };
        let pid = t.pid().as_raw();
        let chain = read_chain(pid, pid).unwrap();
        let want: Vec<u8> = crate::sys::probe::ptrace_kill_filter()
            .iter()
            .flat_map(|f| [f.code.to_le_bytes().as_slice(), &[f.jt, f.jf], &f.k.to_le_bytes()].concat())
            .collect();
        assert_eq!(chain, vec![Filter { insns: want, flags: 0 }]);
    }
}
