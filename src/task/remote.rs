//! What only the task itself can tell: values read by running syscalls in
//! its context (sigactions, itimers, sigaltstack, brk, tid address,
//! securebits, ...). Works through any [`Remote`] (the parasite engine
//! implements it), with results passed back through a scratch page.

use anyhow::{bail, Context, Result};

use crate::images::pb::{ItimerEntry, SaEntry, TaskTimersEntry, ThreadSasEntry};

/// Running syscalls inside a stopped task.
pub trait Remote {
    /// Run syscall `nr` with `args` in the task; the raw return value
    /// (negative errno on failure).
    fn syscall(&mut self, nr: i64, args: [u64; 6]) -> Result<i64>;
    /// The address of a page of scratch memory in the task.
    fn scratch(&mut self) -> Result<u64>;
    /// Read `len` bytes of the task's memory at `addr`.
    fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>>;
}

fn ok(what: &str, r: i64) -> Result<i64> {
    if (-4095..0).contains(&r) {
        bail!("{what} failed in the task: {}", nix::errno::Errno::from_raw(-r as i32));
    }
    Ok(r)
}

fn u64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
}

/// The 64 signals' actions. SIGKILL and SIGSTOP are skipped, as CRIU does,
/// so the list holds 62 entries in signal order.
pub fn sigactions(r: &mut dyn Remote) -> Result<Vec<SaEntry>> {
    let page = r.scratch()?;
    let mut out = Vec::with_capacity(62);
    for sig in 1..=64u64 {
        if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
            continue;
        }
        // struct kernel_sigaction { handler, flags, restorer, mask } = 32 bytes.
        ok("rt_sigaction", r.syscall(libc::SYS_rt_sigaction, [sig, 0, page, 8, 0, 0])?)
            .with_context(|| format!("signal {sig}"))?;
        let w = u64s(&r.read(page, 32)?);
        out.push(SaEntry {
            sigaction: w[0],
            flags: w[1],
            restorer: w[2],
            mask: w[3],
            compat_sigaction: Some(false),
            mask_extended: None,
        });
    }
    Ok(out)
}

fn itimer(r: &mut dyn Remote, which: u64, page: u64) -> Result<ItimerEntry> {
    ok("getitimer", r.syscall(libc::SYS_getitimer, [which, page, 0, 0, 0, 0])?)?;
    let w = u64s(&r.read(page, 32)?);
    Ok(ItimerEntry { isec: w[0], iusec: w[1], vsec: w[2], vusec: w[3] })
}

/// ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF.
pub fn itimers(r: &mut dyn Remote) -> Result<TaskTimersEntry> {
    let page = r.scratch()?;
    Ok(TaskTimersEntry {
        real: itimer(r, 0, page)?,
        virt: itimer(r, 1, page)?,
        prof: itimer(r, 2, page)?,
        posix: Vec::new(),
    })
}

/// The alternate signal stack of the thread the remote runs in.
pub fn sigaltstack(r: &mut dyn Remote) -> Result<ThreadSasEntry> {
    let page = r.scratch()?;
    ok("sigaltstack", r.syscall(libc::SYS_sigaltstack, [0, page, 0, 0, 0, 0])?)?;
    let b = r.read(page, 24)?;
    let w = u64s(&b);
    // stack_t { void *ss_sp; int ss_flags; size_t ss_size; }
    Ok(ThreadSasEntry { ss_sp: w[0], ss_flags: (w[1] & 0xffff_ffff) as u32, ss_size: w[2] })
}

/// The current program break.
pub fn brk(r: &mut dyn Remote) -> Result<u64> {
    Ok(ok("brk", r.syscall(libc::SYS_brk, [0; 6])?)? as u64)
}

/// The clear_child_tid address (PR_GET_TID_ADDRESS).
pub fn tid_address(r: &mut dyn Remote) -> Result<u64> {
    let page = r.scratch()?;
    ok("prctl(PR_GET_TID_ADDRESS)", r.syscall(libc::SYS_prctl, [libc::PR_GET_TID_ADDRESS as u64, page, 0, 0, 0, 0])?)?;
    Ok(u64s(&r.read(page, 8)?)[0])
}

/// prctl(PR_GET_SECUREBITS).
pub fn securebits(r: &mut dyn Remote) -> Result<u32> {
    Ok(ok("prctl(PR_GET_SECUREBITS)", r.syscall(libc::SYS_prctl, [libc::PR_GET_SECUREBITS as u64, 0, 0, 0, 0, 0])?)? as u32)
}

/// prctl(PR_GET_CHILD_SUBREAPER).
pub fn child_subreaper(r: &mut dyn Remote) -> Result<bool> {
    let page = r.scratch()?;
    ok(
        "prctl(PR_GET_CHILD_SUBREAPER)",
        r.syscall(libc::SYS_prctl, [libc::PR_GET_CHILD_SUBREAPER as u64, page, 0, 0, 0, 0])?,
    )?;
    Ok(r.read(page, 4)?.iter().any(|b| *b != 0))
}

/// prctl(PR_GET_PDEATHSIG).
pub fn pdeath_sig(r: &mut dyn Remote) -> Result<u32> {
    let page = r.scratch()?;
    ok("prctl(PR_GET_PDEATHSIG)", r.syscall(libc::SYS_prctl, [libc::PR_GET_PDEATHSIG as u64, page, 0, 0, 0, 0])?)?;
    let b = r.read(page, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
