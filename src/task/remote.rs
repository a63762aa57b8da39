//! What only the task itself can tell. The parasite reports sigactions,
//! itimers, sigaltstack, brk and more in one round trip ([`from_parasite`]
//! turns its replies into image records); the few values it does not carry
//! (tid address, securebits, pdeath signal) come from single syscalls run
//! in the task through any [`Remote`], results passed back through a
//! scratch page. [`Ctl`] is the seized task (its leader) as a [`Remote`];
//! [`ask_parasite`] the round trip through the parasite.

use anyhow::{bail, Result};

use crate::compel::Seized;
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

/// prctl(PR_GET_PDEATHSIG).
pub fn pdeath_sig(r: &mut dyn Remote) -> Result<u32> {
    let page = r.scratch()?;
    ok("prctl(PR_GET_PDEATHSIG)", r.syscall(libc::SYS_prctl, [libc::PR_GET_PDEATHSIG as u64, page, 0, 0, 0, 0])?)?;
    let b = r.read(page, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// sigaltstack(NULL, &old): the thread's alternate signal stack.
pub fn sigaltstack(r: &mut dyn Remote) -> Result<ThreadSasEntry> {
    let page = r.scratch()?;
    ok("sigaltstack", r.syscall(libc::SYS_sigaltstack, [0, page, 0, 0, 0, 0])?)?;
    // stack_t: ss_sp, ss_flags (int, padded), ss_size.
    let w = u64s(&r.read(page, 24)?);
    Ok(ThreadSasEntry { ss_sp: w[0], ss_size: w[2], ss_flags: w[1] as u32 })
}

/// Syscalls in one seized thread, with a scratch page of its process
/// (mapped through another thread: the memory is shared).
pub struct ThreadRemote<'a> {
    pub seized: &'a mut Seized,
    pub scratch: u64,
}

impl Remote for ThreadRemote<'_> {
    fn syscall(&mut self, nr: i64, args: [u64; 6]) -> Result<i64> {
        Ok(self.seized.syscall(nr, args)?)
    }

    fn scratch(&mut self) -> Result<u64> {
        Ok(self.scratch)
    }

    fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        read_mem(self.seized.pid().as_raw(), addr, len)
    }
}

/// Read `len` bytes of the memory of `pid` at `addr`.
fn read_mem(pid: i32, addr: u64, len: usize) -> Result<Vec<u8>> {
    use anyhow::Context;
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; len];
    crate::proc::mem(pid)?.read_exact_at(&mut b, addr).with_context(|| format!("reading {len} bytes at {addr:#x} of {pid}"))?;
    Ok(b)
}

/// A seized task (its leader), with a scratch page for remote syscalls'
/// results once one was asked for.
pub struct Ctl {
    pub seized: Seized,
    scratch: Option<u64>,
}

impl Ctl {
    pub fn new(seized: Seized) -> Ctl {
        Ctl { seized, scratch: None }
    }

    /// Unmap the scratch page (before the memory dump, so it is not dumped).
    pub fn drop_scratch(&mut self) -> Result<()> {
        if let Some(a) = self.scratch.take() {
            self.seized.unmap(a, 4096)?;
        }
        Ok(())
    }
}

impl Remote for Ctl {
    fn syscall(&mut self, nr: i64, args: [u64; 6]) -> Result<i64> {
        Ok(self.seized.syscall(nr, args)?)
    }

    fn scratch(&mut self) -> Result<u64> {
        if let Some(a) = self.scratch {
            return Ok(a);
        }
        // Mapped so that a killed criu's task unmaps it by itself.
        let a = self.seized.map_anon(4096, (libc::PROT_READ | libc::PROT_WRITE) as u64)?;
        self.scratch = Some(a);
        Ok(a)
    }

    fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        read_mem(self.seized.pid().as_raw(), addr, len)
    }
}

/// Infect the task, ask the parasite what only the task can tell, and cure
/// it again (the task stays frozen). The second result is the task back,
/// or why it was released.
pub fn ask_parasite(ctl: Ctl) -> (Result<ParasiteReport>, Result<Ctl>) {
    let pid = ctl.seized.pid();
    let mut infected = match ctl.seized.infect() {
        Ok(i) => i,
        Err(e) => return (Err(anyhow::Error::from(e).context(format!("infecting task {pid}"))), Err(anyhow::anyhow!("task {pid} was released"))),
    };
    let report = (|| -> Result<ParasiteReport> {
        let acts = infected.call::<crate::compel::DumpSigacts>(&())?;
        let misc = infected.call::<crate::compel::DumpMisc>(&())?;
        Ok(from_parasite(&acts, &misc))
    })();
    let back = infected
        .cure_keep_seized()
        .map(Ctl::new)
        .map_err(|e| anyhow::Error::from(e).context(format!("curing task {pid}")));
    (report, back)
}

/// What the parasite reported about the task (DumpSigacts + DumpMisc), in
/// image form.
pub struct ParasiteReport {
    pub sigactions: Vec<SaEntry>,
    pub itimers: TaskTimersEntry,
    pub sigaltstack: ThreadSasEntry,
    pub brk: u64,
    pub child_subreaper: bool,
    pub dumpable: i32,
    /// PR_GET_THP_DISABLE's answer (0, 1, or 3 with EXCEPT_ADVISED).
    pub thp_disabled: i32,
    pub tid_address: u64,
    pub securebits: u32,
    pub pdeath_sig: u32,
}

/// Convert the parasite's replies.
pub fn from_parasite(
    acts: &crate::compel::proto::SigactsReply,
    misc: &crate::compel::proto::MiscReply,
) -> ParasiteReport {
    let sigactions = (1..=64usize)
        .filter(|s| *s != libc::SIGKILL as usize && *s != libc::SIGSTOP as usize)
        .map(|s| {
            let a = &acts.acts[s - 1];
            SaEntry {
                sigaction: a.handler,
                flags: a.flags,
                restorer: a.restorer,
                mask: a.mask,
                compat_sigaction: Some(false),
                mask_extended: None,
            }
        })
        .collect();
    let it = |i: usize| {
        let t = &misc.itimers[i];
        ItimerEntry {
            isec: t.interval.sec as u64,
            iusec: t.interval.usec as u64,
            vsec: t.value.sec as u64,
            vusec: t.value.usec as u64,
        }
    };
    ParasiteReport {
        sigactions,
        itimers: TaskTimersEntry { real: it(0), virt: it(1), prof: it(2), posix: Vec::new() },
        sigaltstack: ThreadSasEntry { ss_sp: misc.sas.sp, ss_size: misc.sas.size, ss_flags: misc.sas.flags as u32 },
        brk: misc.brk,
        child_subreaper: misc.child_subreaper != 0,
        dumpable: misc.dumpable,
        thp_disabled: misc.thp_disabled,
        tid_address: misc.tid_address,
        securebits: misc.securebits,
        pdeath_sig: misc.pdeath_sig,
    }
}
