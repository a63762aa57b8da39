//! The restorer: the last stage of a restore, run from a no_std blob placed
//! where no VMA of the task lies. It drops criu's own mappings, moves the
//! premapped memory into place, restores the state only the task can set
//! for itself, and jumps into the saved registers with rt_sigreturn.
//!
//! [`jump`] lays the stage out in one free region of the restoring process:
//! the relocated blob (`parasite/src/restorer.rs`, built by
//! `build/restorer.rs`), a parking spot for our vDSO, the argument area
//! ([`args`], layout in `proto`: plain words, offsets instead of pointers)
//! with the leader's rt_sigframe after it, the leader's stack, then per
//! other thread a stack and its own rt_sigframe (the blob creates those
//! threads with their tids; each loads its own frame). It starts the
//! [`cleaner`] (which unmaps that region once every thread has left it,
//! and reports readiness), switches to the blob's stack and calls it
//! (`sys::restorer::enter`); from then on the blob reports through the
//! ready fd. Failure codes are `thread << 48 | step << 32 | -errno`
//! ([`step_name`]; thread 0 is the leader, n the n-th of `Plan::threads`).
//!
//! Host side, before the blob: [`tree`] the images of the tree, read and
//! checked; [`stages`] the protocol between criu and the restoring tasks;
//! [`task`] what each restoring task does until it jumps ([`plan`]).

mod args;
mod cleaner;
pub mod fdt;
pub mod plan;
pub mod stages;
pub mod task;
pub mod tree;
#[path = "../../parasite/src/restorer_proto.rs"]
pub mod proto;

use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use tracing::{info, warn};

use crate::arch::sigframe;
use crate::images::pb::{CredsEntry, ThreadSasEntry};
use crate::mem::premap::find_hole;
use plan::Plan;

/// The blob built by build/restorer.rs (TRAP: reached only if its main
/// returned, which it does not).
#[allow(dead_code)]
mod blob {
    include!(concat!(env!("OUT_DIR"), "/restorer_blob.rs"));
}

const PAGE: u64 = 4096;
const STACK: u64 = 64 * 1024;
/// The stack of each other thread while it runs the blob.
const THREAD_STACK: u64 = 32 * 1024;
/// Signals with a sigaction record: 1..=64 but SIGKILL and SIGSTOP.
const SIGNALS: usize = 62;

/// Tests: `CRIU_RESTORER_FAULT=STEP` makes the restorer (or, for
/// `step::CLEANER`, the cleaner) fail at that step; `step::NO_CLEANER`
/// runs without a cleaner.
fn injected_fault_step() -> u64 {
    std::env::var("CRIU_RESTORER_FAULT").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn page_up(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// Hand the process over to the restorer. Returns only if that could not
/// start, with the fd to report through (the restorer itself reports
/// through `plan.ready_fd`).
pub fn jump(plan: Plan) -> (anyhow::Error, OwnedFd) {
    let l = match launch(&plan) {
        Ok(l) => l,
        Err(e) => return (e, plan.ready_fd),
    };
    if let Some(root) = &plan.chroot
        && let Err(e) = nix::unistd::chroot(root.as_str())
    {
        return (anyhow::Error::from(e).context(format!("task {}: chroot {root}", plan.pid)), plan.ready_fd);
    }
    go(plan, l)
}

/// A laid-out restorer, ready to enter.
struct Launch {
    entry: u64,
    sp: u64,
    args: u64,
}

fn go(plan: Plan, l: Launch) -> ! {
    // The blob uses these fds by number and closes them itself.
    let Plan { exe_fd, mem, ready_fd, go_fd, .. } = plan;
    let _ = go_fd.map(std::os::fd::IntoRawFd::into_raw_fd);
    let _ = exe_fd.map(IntoRawFd::into_raw_fd);
    for m in mem.file_maps {
        let _ = m.fd.into_raw_fd();
    }
    let _ = mem.aio_null.map(IntoRawFd::into_raw_fd);
    let _ = ready_fd.into_raw_fd();
    crate::sys::restorer::enter(l.entry, l.sp, l.args)
}

/// Where things go in the restorer region.
#[derive(Clone, Debug)]
struct Layout {
    base: u64,
    len: u64,
    park: u64,
    args: u64,
    /// Offset of the leader's frame from `args`.
    frame: u64,
    /// The top of the leader's stack.
    stack_top: u64,
    /// Per other thread: its stack's lowest address and its frame's address.
    threads: Vec<(u64, u64)>,
}

/// One of our vDSO areas: where it is, where it waits, where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VdsoPiece {
    start: u64,
    len: u64,
    /// Offset inside the parking spot.
    park_off: u64,
    to: u64,
}

/// Our [vvar]/[vvar_vclock]/[vdso] areas and their targets (the image's
/// addresses, or the proxy's hole), moved as one block: the vDSO finds its
/// data at a fixed distance.
fn vdso_pieces(plan: &Plan, own: &[crate::proc::maps::MapEntry]) -> Result<(Vec<VdsoPiece>, u64)> {
    let Some(v) = &plan.mem.vdso else { return Ok((Vec::new(), 0)) };
    let areas: Vec<_> =
        own.iter().filter(|m| matches!(m.name.as_str(), "[vvar]" | "[vvar_vclock]" | "[vdso]")).collect();
    if !areas.iter().any(|m| m.start == v.vdso_from.0) {
        bail!("our vDSO moved since the memory was premapped");
    }
    let lo = areas.iter().map(|m| m.start).min().unwrap_or(v.vdso_from.0);
    let hi = areas.iter().map(|m| m.end).max().unwrap_or(v.vdso_from.0 + v.vdso_from.1);
    let shift = |a: u64| v.vdso_to.wrapping_add(a).wrapping_sub(v.vdso_from.0);
    if let (Some(to), Some((from, _))) = (v.vvar_to, v.vvar_from)
        && shift(from) != to
    {
        bail!(
            "our vvar would go {:#x} bytes from our vDSO, not {:#x} as now: the vDSO moves are inconsistent",
            v.vdso_to.wrapping_sub(to),
            v.vdso_from.0 - from
        );
    }
    let pieces = areas
        .iter()
        .map(|m| VdsoPiece { start: m.start, len: m.end - m.start, park_off: m.start - lo, to: shift(m.start) })
        .collect();
    Ok((pieces, hi - lo))
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

/// Sorted, merged ranges (start, len).
fn merged(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.retain(|x| x.1 > 0);
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, l) in r {
        match out.last_mut() {
            Some(last) if s <= last.0 + last.1 => last.1 = last.1.max(s + l - last.0),
            _ => out.push((s, l)),
        }
    }
    out
}

fn launch(plan: &Plan) -> Result<Launch> {
    if !blob::SUPPORTED {
        bail!("restoring is not supported on this architecture (no restorer blob)");
    }
    let own = crate::proc::maps::read(std::process::id() as i32).context("reading our own mappings")?;
    let (pieces, park_len) = vdso_pieces(plan, &own)?;

    // Everything the region must not touch: us, the premap, the task.
    let mut targets: Vec<(u64, u64)> = plan.mem.moves.iter().map(|m| (m.to, m.len)).collect();
    targets.extend(plan.mem.file_maps.iter().map(|f| (f.to, f.len)));
    for p in &pieces {
        if targets.iter().any(|t| overlaps(*t, (p.to, p.len))) {
            bail!("the vDSO would land on a VMA of the image at {:#x}: the image's layout differs from this kernel's", p.to);
        }
    }
    targets.extend(pieces.iter().map(|p| (p.to, p.len)));
    let mut avoid: Vec<(u64, u64)> = own.iter().map(|m| (m.start, m.end)).collect();
    avoid.push((plan.mem.region.0, plan.mem.region.0 + plan.mem.region.1));
    avoid.extend(targets.iter().map(|(s, l)| (*s, s + l)));

    // Size it (the argument area's size does not depend on the base).
    let blob_len = page_up(blob::MEMSZ);
    let frame_len = sigframe::size(&plan.fpu);
    let dry = Layout {
        base: 0,
        len: 0,
        park: blob_len,
        args: blob_len + page_up(park_len),
        frame: 0,
        stack_top: 0,
        threads: vec![(0, 0); plan.threads.len()],
    };
    let args_len = build_args(plan, &dry, &pieces, &[], false, &[])?.len() as u64;
    let frame_off = args_len.div_ceil(64) * 64;
    let stack_top = dry.args + page_up(frame_off + frame_len) + STACK;
    let mut len = stack_top;
    let mut threads = Vec::with_capacity(plan.threads.len());
    for t in &plan.threads {
        threads.push((len, len + THREAD_STACK));
        len += THREAD_STACK + page_up(sigframe::size(&t.fpu));
    }
    let base = find_hole(len, &avoid).context("no room in the address space for the restorer")?;
    let lay = Layout {
        base,
        len,
        park: base + dry.park,
        args: base + dry.args,
        frame: frame_off,
        stack_top: base + stack_top,
        threads: threads.into_iter().map(|(s, f)| (base + s, base + f)).collect(),
    };

    let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
    crate::sys::mm::map(base, len, rwx, flags, None, 0).with_context(|| format!("mapping the restorer at {base:#x}"))?;
    let r = fill(plan, &lay, &pieces, &targets);
    if r.is_err() {
        let _ = crate::sys::mm::unmap(base, len);
    }
    r
}

fn fill(plan: &Plan, lay: &Layout, pieces: &[VdsoPiece], targets: &[(u64, u64)]) -> Result<Launch> {
    let region = (lay.base, lay.len);
    let job = cleaner::Job {
        task: nix::unistd::getpid(),
        region,
        sync_ip: lay.base + blob::SYNC + 1,
        syscall_ip: lay.base + blob::SYSCALL,
        sigmask: plan.sigmask,
        threads: plan.threads.iter().map(|t| (nix::unistd::Pid::from_raw(t.tid), t.sigmask)).collect(),
        fault: injected_fault_step() == proto::step::CLEANER,
        go: plan.go_fd.as_ref().map(AsFd::as_fd),
        detach_sig: if plan.leave_stopped { libc::SIGSTOP } else { 0 },
        suspend_seccomp: plan.seccomp != plan::Seccomp::Off || plan.threads.iter().any(|t| t.seccomp != plan::Seccomp::Off),
        stop_sig: plan.stop_signo,
        subreaper: plan.child_subreaper,
    };
    let started = if injected_fault_step() == proto::step::NO_CLEANER { Ok(false) } else { cleaner::start(&job, plan.ready_fd.as_fd()) };
    let cleaner = match started {
        Ok(true) => true,
        Ok(false) => {
            warn!("can't trace the restored task to unmap the restorer: its region {:#x}+{:#x} stays mapped", lay.base, lay.len);
            false
        }
        Err(e) => {
            warn!("no cleaner ({e:#}): the restorer region {:#x}+{:#x} stays mapped", lay.base, lay.len);
            false
        }
    };
    if !cleaner && plan.leave_stopped {
        anyhow::bail!("task {}: -s needs the cleaner to let the task go stopped, and it could not start", plan.pid);
    }
    if !cleaner && plan.child_subreaper {
        // No cleaner to do it after the go-ahead: now, then.
        nix::sys::prctl::set_child_subreaper(true)
            .with_context(|| format!("task {}: PR_SET_CHILD_SUBREAPER", plan.pid))?;
    }

    // Service fds (all above the task's) go; the ready fd goes last.
    let ready = plan.ready_fd.as_raw_fd();
    let lowest = plan
        .mem
        .file_maps
        .iter()
        .map(|m| m.fd.as_raw_fd())
        .chain(plan.exe_fd.as_ref().map(AsRawFd::as_raw_fd))
        .chain(plan.mem.aio_null.as_ref().map(AsRawFd::as_raw_fd))
        .chain([ready])
        .min()
        .unwrap_or(ready);
    let mut close: Vec<u32> = match &plan.own_fds {
        // A shared table: other tasks' service fds are there too.
        Some(own) => own.iter().copied().filter(|&fd| fd != ready).map(|fd| fd as u32).collect(),
        None => std::fs::read_dir("/proc/self/fd")
            .context("listing our fds")?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&fd| fd >= lowest && fd != ready)
            .map(|fd| fd as u32)
            .collect(),
    };
    close.sort_unstable();

    let mut keep: Vec<(u64, u64)> = plan.mem.moves.iter().map(|m| (m.from, m.len)).collect();
    keep.push(region);
    let keep = merged(keep);
    if let Some(k) = keep.iter().find(|k| targets.iter().any(|t| overlaps(**k, *t))) {
        bail!("premapped memory at {:#x}+{:#x} overlaps a VMA of the image", k.0, k.1);
    }
    let bytes = build_args(plan, lay, pieces, &keep, cleaner, &close)?;
    if bytes.len() as u64 > lay.frame {
        bail!("the restorer's argument area outgrew its room ({} > {} bytes)", bytes.len(), lay.frame);
    }

    // With a cleaner every signal stays blocked until it lets go (it sets
    // each thread's mask then).
    let frame_of = |regs: &crate::arch::Regs, fpu, mask: u64, sas: Option<&ThreadSasEntry>, at: u64| {
        let mut frame = sigframe::build(&regs.rewound_for_sigreturn(), fpu, if cleaner { !0u64 } else { mask }, at);
        if let Some(sas) = sas {
            let o = sigframe::UC_STACK_OFFSET as usize;
            frame[o..o + 8].copy_from_slice(&sas.ss_sp.to_le_bytes());
            frame[o + 8..o + 12].copy_from_slice(&sas.ss_flags.to_le_bytes());
            frame[o + 16..o + 24].copy_from_slice(&sas.ss_size.to_le_bytes());
        }
        frame
    };
    let frame_addr = lay.args + lay.frame;
    let frame = frame_of(&plan.regs, &plan.fpu, plan.sigmask, plan.sigaltstack.as_ref(), frame_addr);

    let w = |addr: u64, b: &[u8]| crate::sys::restorer::write_region(addr, b, region);
    w(lay.base, &relocated(lay.base));
    w(lay.args, &bytes);
    w(frame_addr, &frame);
    for (t, &(_, at)) in plan.threads.iter().zip(&lay.threads) {
        w(at, &frame_of(&t.regs, &t.fpu, t.sigmask, t.sigaltstack.as_ref(), at));
    }
    info!(
        "restorer at {:#x}+{:#x}: {} areas to move, {} file mappings, {} fds to close, {} more threads, cleaner {}",
        lay.base,
        lay.len,
        plan.mem.moves.len(),
        plan.mem.file_maps.len(),
        close.len(),
        plan.threads.len(),
        if cleaner { "on" } else { "off" }
    );
    Ok(Launch { entry: lay.base + blob::ENTRY, sp: lay.stack_top, args: lay.args })
}

/// The blob's memory image for `base`: relocated, .bss zeroed.
fn relocated(base: u64) -> Vec<u8> {
    let mut img = blob::BYTES.to_vec();
    img.resize(blob::MEMSZ as usize, 0);
    for &(off, addend) in blob::RELOCS {
        let off = off as usize;
        img[off..off + 8].copy_from_slice(&base.wrapping_add_signed(addend).to_le_bytes());
    }
    img
}

fn itimer(which: u64, e: &crate::images::pb::ItimerEntry) -> proto::Itimer {
    let mut t = proto::Itimer {
        which,
        interval_sec: e.isec,
        interval_usec: e.iusec,
        value_sec: e.vsec,
        value_usec: e.vusec,
    };
    // A periodic timer caught at the instant it fired: keep it armed.
    if t.value_sec == 0 && t.value_usec == 0 && (t.interval_sec != 0 || t.interval_usec != 0) {
        t.value_usec = 1;
    }
    t
}

fn cap_last_cap() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// The argument area for layout `lay`. Measuring (`lay.frame` 0, `keep`
/// and `close` empty) sizes the lists for the most entries they can have;
/// `fill` checks the real area fits below the frame.
fn build_args(
    plan: &Plan,
    lay: &Layout,
    pieces: &[VdsoPiece],
    keep: &[(u64, u64)],
    cleaner: bool,
    close: &[u32],
) -> Result<Vec<u8>> {
    let mut b = args::Builder::new();
    let mut a = proto::Args { magic: proto::MAGIC, ready_fd: plan.ready_fd.as_raw_fd() as u64, ..Default::default() };
    if cleaner {
        a.flags |= proto::flag::CLEANER;
    }
    if let Some((p, l, s)) = crate::sys::restorer::glibc_rseq() {
        a.old_rseq = [p, u64::from(l), u64::from(s)];
    }

    let park: Vec<proto::Move> = pieces
        .iter()
        .map(|p| proto::Move { from: p.start, to: lay.park + p.park_off, len: p.len, ..Default::default() })
        .collect();
    let unpark: Vec<proto::Move> = pieces
        .iter()
        .map(|p| proto::Move { from: lay.park + p.park_off, to: p.to, len: p.len, ..Default::default() })
        .collect();
    a.park = b.push(&park);
    a.unpark = b.push(&unpark);
    // The real keep list has one entry per premapped area plus the region
    // at most; measure with that many.
    let keep: Vec<proto::Range> = if keep.is_empty() {
        vec![proto::Range::default(); plan.mem.moves.len() + 1]
    } else {
        keep.iter().map(|&(start, len)| proto::Range { start, len }).collect()
    };
    a.keep = b.push(&keep);
    a.task_size = crate::mem::TASK_SIZE;

    let moves: Vec<proto::Move> = plan
        .mem
        .moves
        .iter()
        .map(|m| proto::Move { from: m.from, to: m.to, len: m.len, prot: m.prot as u64, madv: m.madv })
        .collect();
    a.moves = b.push(&moves);
    let mut maps: Vec<proto::FileMap> = Vec::with_capacity(plan.mem.file_maps.len());
    for f in &plan.mem.file_maps {
        let guards: Vec<proto::Range> = f.guards.iter().map(|&(start, len)| proto::Range { start, len }).collect();
        maps.push(proto::FileMap {
            to: f.to,
            len: f.len,
            prot: f.prot as u64,
            flags: f.flags as u64,
            fd: f.fd.as_raw_fd() as u64,
            pgoff: f.pgoff,
            madv: f.madv,
            guards: b.push(&guards),
        });
    }
    a.file_maps = b.push(&maps);

    a.mm = plan.mm.map;
    a.auxv = b.push(&plan.mm.auxv);
    a.exe_fd = plan.exe_fd.as_ref().map_or(u64::from(u32::MAX), |f| f.as_raw_fd() as u64);

    if plan.sigactions.len() != SIGNALS {
        bail!("the image has {} signal actions, not {SIGNALS}", plan.sigactions.len());
    }
    let signos = (1..=64u64).filter(|s| *s != libc::SIGKILL as u64 && *s != libc::SIGSTOP as u64);
    let acts: Vec<proto::Sigaction> = signos
        .zip(&plan.sigactions)
        .map(|(signo, s)| proto::Sigaction { signo, handler: s.sigaction, flags: s.flags, restorer: s.restorer, mask: s.mask })
        .collect();
    a.sigactions = b.push(&acts);
    if let Some(t) = &plan.itimers {
        a.itimers = b.push(&[itimer(0, &t.real), itimer(1, &t.virt), itimer(2, &t.prof)]);
    }

    a.clear_tid_addr = plan.clear_tid_addr;
    if let Some(r) = &plan.rseq {
        a.rseq = [r.rseq_abi_pointer, u64::from(r.rseq_abi_size), u64::from(r.signature)];
    }
    a.fs_base = plan.regs.fs_base;
    a.gs_base = plan.regs.gs_base;
    a.tls = plan.tls;
    a.personality = u64::from(plan.personality);

    let cur = crate::task::creds::current();
    if let Some((flags, creds)) = creds_args(&mut b, plan.creds.as_ref(), cur.as_ref()) {
        a.flags |= flags;
        a.creds = creds;
    }
    if let Some(s) = plan.sched {
        a.flags |= proto::flag::SCHED;
        a.sched = sched_words(s);
    }
    let (flags, filters) = seccomp_args(&mut b, &plan.seccomp, plan.creds.as_ref().or(cur.as_ref()));
    a.flags |= flags;
    a.seccomp = filters;

    // The other threads: their tails (pending signals, groups) first.
    let mut threads = Vec::with_capacity(plan.threads.len());
    for (t, &(stack, frame)) in plan.threads.iter().zip(&lay.threads) {
        let mut r = proto::Thread {
            tid: t.tid as u64,
            stack,
            stack_size: THREAD_STACK,
            frame,
            clear_tid_addr: t.clear_tid_addr,
            robust_list: [t.robust_list.0, u64::from(t.robust_list.1)],
            fs_base: t.regs.fs_base,
            gs_base: t.regs.gs_base,
            tls: t.tls,
            pdeath_sig: u64::from(t.pdeath_sig),
            ..Default::default()
        };
        if let Some(q) = &t.rseq {
            r.rseq = [q.rseq_abi_pointer, u64::from(q.rseq_abi_size), u64::from(q.signature)];
        }
        if let Some(c) = &t.comm {
            r.comm = comm_words(c);
        }
        if let Some(s) = t.sched {
            r.flags |= proto::flag::SCHED;
            r.sched = sched_words(s);
        }
        let (flags, filters) = seccomp_args(&mut b, &t.seccomp, t.creds.as_ref().or(cur.as_ref()));
        r.flags |= flags;
        r.seccomp = filters;
        if let Some((flags, creds)) = creds_args(&mut b, t.creds.as_ref(), cur.as_ref()) {
            r.flags |= flags;
            r.creds = creds;
        }
        let pending = pending_words(t.pending.iter().map(|i| (false, i.as_slice())))?;
        r.pending = b.push(&pending);
        threads.push(r);
    }
    a.threads = b.push(&threads);
    a.sync = b.push(&[0u64, 0u64]).off;

    // Not in the plan yet: the kernel's own value after the creds stands.
    a.dumpable = plan.dumpable.map_or(u64::MAX, |d| d as u64);
    a.robust_list = [plan.robust_list.0, u64::from(plan.robust_list.1)];

    let pending = pending_words(plan.pending.iter().map(|(s, i)| (*s, i.as_slice())))?;
    a.pending = b.push(&pending);
    // Made in id order: /proc lists a process's timers newest first, and a
    // task numbering its own timers made them in that order.
    let mut timers: Vec<_> = plan.posix_timers.iter().map(crate::task::posix_timers::words).collect();
    timers.sort_by_key(|t| t.id);
    a.posix_timers = b.push(&timers);
    let at_dump = |clk| crate::ns::timens::clock_at_dump(clk).and_then(|v| u64::try_from(v).ok()).unwrap_or(u64::MAX);
    a.dump_clocks = [at_dump(libc::CLOCK_MONOTONIC), at_dump(libc::CLOCK_BOOTTIME)];
    let fowns: Vec<proto::Fown> = plan
        .fowns
        .iter()
        .map(|(fd, f)| proto::Fown { fd: *fd as u64, signum: u64::from(f.signum), pid_type: u64::from(f.pid_type), pid: u64::from(f.pid) })
        .collect();
    a.fowns = b.push(&fowns);
    a.pdeath_sig = u64::from(plan.pdeath_sig);
    // Measuring: room for every fd we have.
    let close = if close.is_empty() { vec![0u32; 1024.max(plan.mem.file_maps.len() + 8)] } else { close.to_vec() };
    a.close_fds = b.push_u32(&close);
    a.fault = injected_fault_step();
    let rings: Vec<proto::AioRing> = plan.mem.aio_rings.iter().map(|r| proto::AioRing { addr: r.addr, len: r.len, nr_req: u64::from(r.nr_req) }).collect();
    a.aio_rings = b.push(&rings);
    a.aio_null_fd = plan.mem.aio_null.as_ref().map_or(u64::MAX, |f| f.as_raw_fd() as u64);
    a.frame = if lay.frame != 0 { lay.frame } else { b.size().div_ceil(64) * 64 };
    Ok(b.finish(&a))
}

/// Pending signals as the blob queues them.
fn pending_words<'a>(sigs: impl Iterator<Item = (bool, &'a [u8])>) -> Result<Vec<proto::Pending>> {
    let mut pending = Vec::new();
    for (shared, info) in sigs {
        if info.len() != proto::SIGINFO_WORDS * 8 {
            bail!("a pending signal's siginfo is {} bytes, not 128", info.len());
        }
        let mut p = proto::Pending { shared: u64::from(shared), ..Default::default() };
        for (w, c) in p.info.iter_mut().zip(info.chunks_exact(8)) {
            *w = u64::from_le_bytes(c.try_into().unwrap_or_default());
        }
        pending.push(p);
    }
    Ok(pending)
}

/// The blob's seccomp flags and filter records for a thread whose
/// credentials end up as `creds`. Installing a filter takes CAP_SYS_ADMIN
/// or no_new_privs: when the restored credentials have neither, the
/// filters go in before the creds change (`flag::SECCOMP_EARLY`), else
/// last.
fn seccomp_args(b: &mut args::Builder, s: &plan::Seccomp, creds: Option<&CredsEntry>) -> (u64, proto::Slice) {
    const CAP_SYS_ADMIN: u32 = 21;
    match s {
        plan::Seccomp::Off => (0, proto::Slice::default()),
        plan::Seccomp::Strict => (proto::flag::SECCOMP_STRICT, proto::Slice::default()),
        plan::Seccomp::Filters(chain) => {
            let recs: Vec<proto::SeccompFilter> = chain
                .iter()
                .map(|f| {
                    let words: Vec<u64> =
                        f.insns.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default())).collect();
                    proto::SeccompFilter { flags: u64::from(f.flags), insns: b.push(&words) }
                })
                .collect();
            let can_late = creds.is_none_or(|c| {
                c.no_new_privs.unwrap_or(0) != 0 || crate::task::creds::caps(&c.cap_eff) & (1 << CAP_SYS_ADMIN) != 0
            });
            (if can_late { 0 } else { proto::flag::SECCOMP_EARLY }, b.push(&recs))
        }
    }
}

/// A comm as the blob's NUL-padded words (at most 15 bytes kept).
fn comm_words(comm: &str) -> [u64; 2] {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(comm.as_bytes().iter().take(15)) {
        *d = *s;
    }
    [u64::from_le_bytes(b[..8].try_into().unwrap_or_default()), u64::from_le_bytes(b[8..].try_into().unwrap_or_default())]
}

fn sched_words(s: plan::Sched) -> [u64; 3] {
    [i64::from(s.nice) as u64, u64::from(s.policy), u64::from(s.prio)]
}

/// The blob's credentials record and flags for `creds`, or None when they
/// are ours already (nothing to change).
fn creds_args(b: &mut args::Builder, creds: Option<&CredsEntry>, cur: Option<&CredsEntry>) -> Option<(u64, proto::Creds)> {
    let c = creds?;
    if !crate::task::creds::differ(c, cur) {
        return None;
    }
    let mut flags = proto::flag::CREDS;
    if c.no_new_privs.unwrap_or(0) != 0 {
        flags |= proto::flag::NO_NEW_PRIVS;
    }
    Some((
        flags,
        proto::Creds {
            uid: c.uid.into(),
            euid: c.euid.into(),
            suid: c.suid.into(),
            fsuid: c.fsuid.into(),
            gid: c.gid.into(),
            egid: c.egid.into(),
            sgid: c.sgid.into(),
            fsgid: c.fsgid.into(),
            secbits: c.secbits.into(),
            cap_inh: crate::task::creds::caps(&c.cap_inh),
            cap_prm: crate::task::creds::caps(&c.cap_prm),
            cap_eff: crate::task::creds::caps(&c.cap_eff),
            cap_bnd: crate::task::creds::caps(&c.cap_bnd),
            cap_amb: crate::task::creds::caps(&c.cap_amb),
            cap_last_cap: cap_last_cap(),
            groups: b.push_u32(&c.groups),
        },
    ))
}

/// What a restorer failure step means (`step` from the ready report).
pub fn step_name(step: u64) -> &'static str {
    use proto::step::*;
    match step {
        MAGIC => "bad argument area",
        BLOCK_SIGNALS => "blocking signals",
        RSEQ_UNREGISTER => "unregistering criu's rseq",
        VDSO_PARK => "parking the vDSO",
        UNMAP => "unmapping criu's memory",
        MOVE => "moving premapped memory into place",
        FILE_MAP => "mapping a shared file",
        VDSO_PLACE => "moving the vDSO into place",
        MPROTECT => "setting memory protections",
        MADVISE => "applying madvise flags",
        PRCTL_MM => "prctl(PR_SET_MM_MAP)",
        COMM => "setting the task's name",
        SIGACTION => "restoring signal handlers",
        ITIMER => "restoring interval timers",
        TID_ADDRESS => "set_tid_address",
        ROBUST_LIST => "set_robust_list",
        RSEQ => "registering rseq",
        FS_BASE | GS_BASE => "restoring the TLS base",
        PERSONALITY => "personality",
        SETGROUPS..=NO_NEW_PRIVS => "restoring credentials",
        SIGQUEUE => "queueing pending signals",
        PDEATHSIG => "PR_SET_PDEATHSIG",
        DUMPABLE => "PR_SET_DUMPABLE",
        CLONE_THREAD => "creating a thread (clone3 with its tid)",
        THREAD_TID => "a thread got another tid",
        SCHED_NICE => "setpriority (the thread's nice)",
        SCHED_POLICY => "sched_setscheduler (the thread's policy)",
        SECCOMP => "entering seccomp strict mode",
        SECCOMP_FILTER => "installing a seccomp filter (SECCOMP_SET_MODE_FILTER)",
        TLS => "set_thread_area (a GDT TLS entry)",
        READY => "reporting readiness",
        CLEANER => "unmapping the restorer (cleaner)",
        TIMER_IDS => "PR_TIMER_CREATE_RESTORE_IDS",
        TIMER_CREATE => "creating a POSIX timer with its id",
        TIMER_ARM => "arming a POSIX timer",
        FOWN => "setting an fd's owner or I/O signal (F_SETOWN_EX/F_SETSIG)",
        AIO_SETUP => "io_setup (an AIO ring)",
        AIO_RING => "an AIO ring unlike the dumped one (size, head or tail)",
        AIO_SUBMIT => "moving an AIO ring's tail (io_submit to /dev/null)",
        AIO_MOVE => "moving an AIO ring to its address (mremap)",
        _ => "unknown step",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_is_sane() {
        if !blob::SUPPORTED {
            return;
        }
        let n = blob::BYTES.len() as u64;
        assert!(n > 0 && n <= blob::MEMSZ);
        // The entry stub aligns the stack first: `and rsp, -16`.
        assert_eq!(&blob::BYTES[blob::ENTRY as usize..][..4], &[0x48, 0x83, 0xe4, 0xf0]);
        assert_eq!(blob::BYTES[blob::TRAP as usize], 0xcc);
        assert_eq!(blob::BYTES[blob::SYNC as usize], 0xcc);
        assert_eq!(&blob::BYTES[blob::SYSCALL as usize..][..2], &[0x0f, 0x05]);
        for &(off, addend) in blob::RELOCS {
            assert!(off % 8 == 0 && off + 8 <= n && (addend as u64) < blob::MEMSZ);
        }
        let img = relocated(0x7f00_0000_0000);
        for &(off, addend) in blob::RELOCS {
            let v = u64::from_le_bytes(img[off as usize..off as usize + 8].try_into().unwrap());
            assert_eq!(v, 0x7f00_0000_0000 + addend as u64);
        }
    }

    #[test]
    fn ranges_merge() {
        assert_eq!(merged(vec![(10, 5), (0, 3), (15, 5), (30, 0), (2, 2)]), vec![(0, 4), (10, 10)]);
    }

    #[test]
    fn comm_words_pad_and_cut() {
        let w = comm_words("worker-1");
        assert_eq!(&w[0].to_le_bytes(), b"worker-1");
        assert_eq!(w[1], 0);
        // At most 15 bytes: the 16th stays NUL.
        let w = comm_words("0123456789abcdefgh");
        assert_eq!(&w[1].to_le_bytes(), b"89abcde\0");
    }

    #[test]
    fn thread_records_are_plain_words() {
        let mut n = 0;
        proto::Words::put(&proto::Thread::default(), &mut |_| n += 1);
        assert_eq!(n * 8, std::mem::size_of::<proto::Thread>());
        assert_eq!(sched_words(plan::Sched { nice: -5, policy: 3, prio: 0 }), [(-5i64) as u64, 3, 0]);
        let p = pending_words([(false, &[7u8; 128][..])].into_iter()).unwrap();
        assert_eq!((p[0].shared, p[0].info[0]), (0, 0x0707_0707_0707_0707));
        assert!(pending_words([(true, &[0u8; 12][..])].into_iter()).is_err());
    }

    #[test]
    fn seccomp_filters_go_last_unless_the_restored_creds_could_not_install_them() {
        use crate::task::seccomp::Filter;
        let f = plan::Seccomp::Filters(vec![
            Filter { insns: (1u8..=16).collect(), flags: 0 },
            Filter { insns: vec![9; 8], flags: 1 },
        ]);
        let creds = |nnp: u32, eff: u32| CredsEntry { no_new_privs: Some(nnp), cap_eff: vec![eff, 0], ..Default::default() };
        let mut b = args::Builder::new();
        let (flags, s) = seccomp_args(&mut b, &f, Some(&creds(1, 0)));
        assert_eq!((flags, s.n), (0, 2));
        assert_eq!(seccomp_args(&mut b, &f, Some(&creds(0, 1 << 21))).0, 0);
        assert_eq!(seccomp_args(&mut b, &f, None).0, 0);
        assert_eq!(seccomp_args(&mut b, &f, Some(&creds(0, !(1 << 21)))).0, proto::flag::SECCOMP_EARLY);
        assert_eq!(seccomp_args(&mut b, &plan::Seccomp::Strict, None), (proto::flag::SECCOMP_STRICT, proto::Slice::default()));
        // The records and their instructions, one sock_filter a word.
        let bytes = b.finish(&proto::Args::default());
        let word = |o: u64| u64::from_le_bytes(bytes[o as usize..o as usize + 8].try_into().unwrap());
        let (first, second) = (s.off, s.off + std::mem::size_of::<proto::SeccompFilter>() as u64);
        assert_eq!((word(first), word(second)), (0, 1));
        let insns = proto::Slice { off: word(first + 8), n: word(first + 16) };
        assert_eq!(insns.n, 2);
        assert_eq!(word(insns.off), u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(word(insns.off + 8), u64::from_le_bytes([9, 10, 11, 12, 13, 14, 15, 16]));
    }

    #[test]
    fn step_names() {
        assert_eq!(step_name(proto::step::MOVE), "moving premapped memory into place");
        assert_eq!(step_name(proto::step::CAPSET), "restoring credentials");
        assert_eq!(step_name(proto::step::CLONE_THREAD), "creating a thread (clone3 with its tid)");
    }
}
