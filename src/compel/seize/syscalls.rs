//! Syscalls run inside a [`Seized`] task: kill-safe through the rescue
//! chain (`super::super::rescue`) where the thread has one, poked into its
//! text otherwise; and the mappings and fds compel makes in the task with
//! them, each on the undo list before the syscall that makes it runs.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::super::rescue::{self, Rescue, Undo};
use super::super::{Ctx, Error, Result};
use super::{is_stop_signal, Seized, BLOCK_ALL, MAP_FIXED_NOREPLACE, SI_KERNEL};
use crate::arch::{self, Regs};
use crate::sys::ptrace;

impl Seized {
    /// Run syscall `nr` with `args` inside the task; its raw return value
    /// (negative errno on failure). The task's state is put back after
    /// (or, while something is to be undone, it parks in the rescue chain).
    pub fn syscall(&mut self, nr: i64, args: [u64; 6]) -> Result<i64> {
        if self.armed() {
            return self.syscall_chained(nr, args);
        }
        self.syscall_poked(nr, args)
    }

    /// Arm the rescue chain once; whether it is armed.
    pub(in crate::compel) fn armed(&mut self) -> bool {
        if !self.armed_tried {
            self.armed_tried = true;
            let s = &self.saved;
            if self.shadow_stack {
                tracing::warn!(pid = self.pid.as_raw(), "compel: shadow stack: remote syscalls are poked into its text (a killed criu can harm it)");
            } else {
                match Rescue::arm(self.pid, &s.regs, &s.fpu, s.sigmask) {
                    Ok(r) => {
                        tracing::debug!(pid = self.pid.as_raw(), home = r.home, syscall = r.g.syscall_ret, sigreturn = r.g.sigreturn, "compel: rescue chain armed");
                        self.rescue = Some(r);
                    }
                    Err(why) => tracing::warn!(pid = self.pid.as_raw(), "compel: no rescue chain ({why}): remote syscalls are poked into its text (a killed criu can harm it)"),
                }
            }
        }
        self.rescue.is_some()
    }

    /// A remote syscall at the task's own `syscall; ret`, its stack at the
    /// rescue chain: if we die at any point, the task finishes the syscall,
    /// runs the chain and returns home. Stopped at the syscall's exit.
    fn syscall_chained(&mut self, nr: i64, args: [u64; 6]) -> Result<i64> {
        let pid = self.pid;
        let (gadget, head) = match &self.rescue {
            Some(r) => (r.g.syscall_ret, r.head),
            None => return Err(self.unexpected("no rescue chain".into())),
        };
        let mut regs = self.saved.regs;
        regs.set_syscall(gadget, nr, args);
        regs.rsp = head;
        // Registers first: from then on a dead tracer's task runs the chain.
        regs.set(pid).ctx(pid, "set registers")?;
        ptrace::set_sigmask(pid, BLOCK_ALL).ctx(pid, "PTRACE_SETSIGMASK")?;
        ptrace::syscall(pid, 0).ctx(pid, "PTRACE_SYSCALL")?;
        let mut stops = 0;
        while stops < 2 {
            match waitpid(pid, Some(WaitPidFlag::__WALL)).ctx(pid, "waitpid")? {
                WaitStatus::PtraceSyscall(_) => stops += 1,
                WaitStatus::PtraceEvent(..) => {}
                WaitStatus::Stopped(_, sig) if is_stop_signal(sig) => self.stop_pending = Some(sig),
                WaitStatus::Stopped(_, sig) => {
                    let ip = self.ip();
                    let _ = self.settle();
                    return Err(self.unexpected(format!("{sig} at ip {ip:#x} in remote syscall {nr}")));
                }
                other => {
                    self.released = true;
                    return Err(Error::Gone { pid: pid.as_raw(), what: format!("{other:?}") });
                }
            }
            if stops < 2 {
                ptrace::syscall(pid, 0).ctx(pid, "PTRACE_SYSCALL")?;
            }
        }
        let out = Regs::get(pid).ctx(pid, "get registers")?;
        let settled = self.settle();
        if out.ip() != gadget + arch::rescue::RET_OFFSET || out.syscall_nr() != nr {
            return Err(self.unexpected(format!("remote syscall {nr} stopped at ip {:#x} in syscall {}", out.ip(), out.syscall_nr())));
        }
        settled?;
        Ok(out.retval())
    }

    /// Where the task waits between our steps: parked at the `ret` of the
    /// gadget with its stack at the chain while something is to be undone
    /// (a dead tracer's task then undoes it and goes home), else put back
    /// as seized (FPU state, then mask, then registers: the last write is
    /// the one that hands the task back).
    pub(in crate::compel) fn settle(&mut self) -> Result<()> {
        let pid = self.pid;
        if let Some(r) = self.rescue.as_ref().filter(|r| r.pending()) {
            let mut regs = self.saved.regs;
            regs.set_syscall(r.g.syscall_ret + arch::rescue::RET_OFFSET, -1, [0; 6]);
            regs.rsp = r.head;
            regs.set(pid).ctx(pid, "park the task in its rescue chain")?;
            return ptrace::set_sigmask(pid, BLOCK_ALL).ctx(pid, "PTRACE_SETSIGMASK");
        }
        if self.fpu_dirty {
            self.saved.fpu.set(pid).ctx(pid, "restore FPU state")?;
            self.fpu_dirty = false;
        }
        self.restore_regs()
    }

    /// The start of the current rescue chain (what a parasite returns
    /// through when its controller goes away), if armed.
    pub(in crate::compel) fn rescue_head(&self) -> Option<u64> {
        self.rescue.as_ref().map(|r| r.head)
    }

    fn chain_err(&self, what: String) -> Error {
        Error::Unexpected { pid: self.pid.as_raw(), what: format!("rescue chain: {what}") }
    }

    /// Put `u` on the undo list (the rescue page mapped first if needed).
    fn undo_push(&mut self, u: Undo) -> Result<()> {
        let (pid, like) = (self.pid, self.saved.regs);
        let Some(r) = self.rescue.as_mut() else { return Ok(()) };
        if r.page().is_none() {
            self.map_rescue_page()?;
        }
        let r = self.rescue.as_mut().ok_or_else(|| Error::Gone { pid: pid.as_raw(), what: "no rescue chain".into() })?;
        r.push(pid, &like, u).map_err(|e| self.chain_err(e))
    }

    /// Map the rescue page, its undo frame (in the stack slot) current
    /// before the mmap runs.
    fn map_rescue_page(&mut self) -> Result<()> {
        let (pid, like) = (self.pid, self.saved.regs);
        let addr = rescue::free_gap(pid, rescue::PAGE_LEN).ok_or_else(|| self.chain_err("no free gap for the rescue page".into()))?;
        let prepared = self.rescue.as_mut().map(|r| r.page_prepare(pid, &like, addr));
        prepared.unwrap_or(Ok(())).map_err(|e| self.chain_err(e))?;
        let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64 | MAP_FIXED_NOREPLACE;
        let r = self.syscall_ok("mmap", libc::SYS_mmap, [addr, rescue::PAGE_LEN, prot, flags, u64::MAX, 0]);
        match r {
            Ok(a) if a == addr => {
                if let Some(r) = self.rescue.as_mut() {
                    r.page_set(Some(addr));
                }
                Ok(())
            }
            other => {
                let err = match other {
                    Ok(a) => {
                        // A kernel that took the address as a hint.
                        let _ = self.syscall(libc::SYS_munmap, [a, rescue::PAGE_LEN, 0, 0, 0, 0]);
                        self.chain_err(format!("the rescue page went to {a:#x}, not {addr:#x}"))
                    }
                    Err(e) => e,
                };
                if let Some(r) = self.rescue.as_mut() {
                    r.page_set(None);
                }
                self.settle()?;
                Err(err)
            }
        }
    }

    /// Take `u` off the undo list (it was done, or proved unneeded) and
    /// settle the task on the new chain; with nothing left to undo, the
    /// rescue page goes too.
    fn undo_done(&mut self, u: Undo) -> Result<()> {
        let (pid, like) = (self.pid, self.saved.regs);
        let Some(r) = self.rescue.as_mut() else { return Ok(()) };
        r.remove(pid, &like, u).map_err(|e| self.chain_err(e))?;
        let page = self.rescue.as_ref().filter(|r| r.undo_list().is_empty()).and_then(Rescue::page);
        if let Some(page) = page {
            // Run with the chain at the stack slot: it unmaps the page too.
            self.syscall_ok("munmap", libc::SYS_munmap, [page, rescue::PAGE_LEN, 0, 0, 0, 0])?;
            if let Some(r) = self.rescue.as_mut() {
                r.page_set(None);
            }
        }
        self.settle()
    }

    /// Map `len` bytes of anonymous private memory with `prot` in the task.
    /// Armed, at an address chosen first and on the undo list before the
    /// mmap runs: a dead tracer's task unmaps it by itself.
    pub fn map_anon(&mut self, len: u64, prot: u64) -> Result<u64> {
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        // The rescue page first: its own gap is taken before this one is chosen.
        if self.armed() && self.rescue.as_ref().is_some_and(|r| r.page().is_none()) {
            self.map_rescue_page()?;
        }
        let at = if self.armed() { rescue::free_gap(self.pid, len) } else { None };
        let Some(at) = at else {
            if self.rescue.is_some() {
                tracing::warn!(pid = self.pid.as_raw(), len, "compel: no free gap to map at: the kernel picks (a killed criu can leave it mapped)");
            }
            return self.syscall_ok("mmap", libc::SYS_mmap, [0, len, prot, flags, u64::MAX, 0]);
        };
        let u = Undo::Munmap(at, len);
        self.undo_push(u)?;
        match self.syscall_ok("mmap", libc::SYS_mmap, [at, len, prot, flags | MAP_FIXED_NOREPLACE, u64::MAX, 0]) {
            Ok(a) if a == at => Ok(a),
            Ok(a) => {
                // A kernel without MAP_FIXED_NOREPLACE took it as a hint.
                let (pid, like) = (self.pid, self.saved.regs);
                if let Some(r) = self.rescue.as_mut() {
                    r.replace(pid, &like, u, Undo::Munmap(a, len)).map_err(|what| Error::Unexpected { pid: pid.as_raw(), what })?;
                }
                self.settle()?;
                Ok(a)
            }
            Err(e) => {
                let _ = self.undo_done(u);
                Err(e)
            }
        }
    }

    /// Unmap what [`Seized::map_anon`] mapped.
    pub fn unmap(&mut self, addr: u64, len: u64) -> Result<()> {
        self.syscall_ok("munmap", libc::SYS_munmap, [addr, len, 0, 0, 0, 0])?;
        self.undo_done(Undo::Munmap(addr, len))
    }

    /// A socketpair of `ty` made in the task, its two fds written at `sv`
    /// (task memory). Armed, the fds it will get are on the undo list first.
    pub(in crate::compel) fn socketpair(&mut self, ty: u64, sv: u64, read: impl Fn(u64) -> Result<(i32, i32)>) -> Result<(i32, i32)> {
        let guess = if self.armed() { rescue::next_fds(self.pid) } else { None };
        if let Some((a, b)) = guess {
            self.undo_push(Undo::Close(a))?;
            self.undo_push(Undo::Close(b))?;
        }
        let r = self.syscall_ok("socketpair", libc::SYS_socketpair, [libc::AF_UNIX as u64, ty, 0, sv, 0, 0]);
        let got = r.and_then(|_| read(sv));
        let Some((a, b)) = guess else { return got };
        match got {
            Ok((x, y)) if (x, y) == (a, b) => Ok((x, y)),
            Ok((x, y)) => {
                tracing::warn!(pid = self.pid.as_raw(), "compel: socketpair got fds {x}, {y}, not {a}, {b}: its fd table is shared");
                let (pid, like) = (self.pid, self.saved.regs);
                if let Some(r) = self.rescue.as_mut() {
                    let fix = |e: String| Error::Unexpected { pid: pid.as_raw(), what: e };
                    r.replace(pid, &like, Undo::Close(a), Undo::Close(x)).map_err(fix)?;
                    r.replace(pid, &like, Undo::Close(b), Undo::Close(y)).map_err(fix)?;
                }
                self.settle()?;
                Ok((x, y))
            }
            Err(e) => {
                let _ = self.undo_done(Undo::Close(a));
                let _ = self.undo_done(Undo::Close(b));
                Err(e)
            }
        }
    }

    /// Close fd `fd` of the task (one [`Seized::socketpair`] made).
    pub(in crate::compel) fn close_fd(&mut self, fd: i32) -> Result<()> {
        let r = self.syscall_ok("close", libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]).map(drop);
        self.undo_done(Undo::Close(fd)).and(r)
    }

    /// Undo, as remote syscalls, whatever is still on the undo list.
    pub(in crate::compel) fn undo_all(&mut self) -> Result<()> {
        let list: Vec<Undo> = self.rescue.as_ref().map(|r| r.undo_list().to_vec()).unwrap_or_default();
        let mut res = Ok(());
        for u in list.into_iter().rev() {
            let r = match u {
                Undo::Close(fd) => self.close_fd(fd),
                Undo::Munmap(a, l) => self.unmap(a, l),
            };
            res = res.and(r);
        }
        res
    }

    /// The old way, for threads without a rescue chain: `syscall; int3`
    /// poked at the injection address.
    fn syscall_poked(&mut self, nr: i64, args: [u64; 6]) -> Result<i64> {
        let pid = self.pid;
        let ip = self.syscall_ip;
        let orig = ptrace::peek(pid, ip).ctx(pid, "peek at the injection address")?;
        ptrace::poke(pid, ip, arch::patch_syscall(orig)).ctx(pid, "poke the syscall instruction")?;
        let mut regs = self.saved.regs;
        regs.set_syscall(ip, nr, args);
        let res = self.run(&regs, ip + arch::SYSCALL_TRAP_IP);
        let put_back = ptrace::poke(pid, ip, orig).ctx(pid, "restore the text at the injection address");
        let restored = self.restore_regs();
        let regs = res?;
        put_back?;
        restored?;
        Ok(regs.retval())
    }

    /// Like [`Seized::syscall`], but a negative result becomes an error.
    pub fn syscall_ok(&mut self, op: &'static str, nr: i64, args: [u64; 6]) -> Result<u64> {
        let r = self.syscall(nr, args)?;
        if (-4095..0).contains(&r) {
            return Err(Error::Remote { pid: self.pid.as_raw(), op, errno: Errno::from_raw(-r as i32) });
        }
        Ok(r as u64)
    }

    /// Start the task at `regs` with signals blocked ([`BLOCK_ALL`]) and wait for the
    /// `int3` that leaves the ip at `trap_ip`.
    fn run(&mut self, regs: &Regs, trap_ip: u64) -> Result<Regs> {
        self.start(regs)?;
        loop {
            match self.wait()? {
                Some(Signal::SIGTRAP) => {
                    let r = Regs::get(self.pid).ctx(self.pid, "get registers")?;
                    let (_, code) = ptrace::siginfo(self.pid).ctx(self.pid, "PTRACE_GETSIGINFO")?;
                    if r.ip() == trap_ip && code == SI_KERNEL {
                        return Ok(r);
                    }
                    return Err(self.unexpected(format!("SIGTRAP (code {code}) at ip {:#x}", r.ip())));
                }
                Some(sig) => return Err(self.unexpected(format!("{sig} at ip {:#x}", self.ip()))),
                None => ptrace::cont(self.pid, 0).ctx(self.pid, "PTRACE_CONT")?,
            }
        }
    }
}
