//! [`Infected`]: a seized task running the parasite daemon; typed commands
//! over the control socket; cure (also on drop).

use std::mem::size_of;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use super::proto::{self, BootArgs, Hello, ParasiteCmd, Reply, Request};
use super::{Blob, Ctx, Error, Result, Seized};
use crate::arch::{sigframe, Regs};
use crate::sys::pod::{bytes_of, read};
use crate::sys::{pidfd, scm};

const PAGE: u64 = 4096;
const STACK_SIZE: u64 = 64 * 1024;
/// How long the parasite may take to greet us.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait for the parasite checks on the task.
const POLL: Duration = Duration::from_millis(50);

fn page_up(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// The parasite's mapping in the task, and where things are in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteMap {
    /// Start address in the task.
    pub base: u64,
    /// Length in bytes (page multiple).
    pub len: u64,
    boot: u64,
    rx: u64,
    tx: u64,
    buf_len: u64,
    stack_top: u64,
    frame: u64,
}

impl RemoteMap {
    fn layout(frame_size: u64) -> RemoteMap {
        let buf_len = page_up((size_of::<Reply>() + proto::MAX_PAYLOAD) as u64);
        let boot = page_up(Blob::MEMSZ);
        let rx = boot + PAGE;
        let tx = rx + buf_len;
        let stack_top = tx + buf_len + STACK_SIZE;
        let frame = stack_top;
        let len = frame + page_up(frame_size);
        RemoteMap { base: 0, len, boot, rx, tx, buf_len, stack_top, frame }
    }

    fn at(&self, base: u64) -> RemoteMap {
        RemoteMap {
            base,
            boot: base + self.boot,
            rx: base + self.rx,
            tx: base + self.tx,
            stack_top: base + self.stack_top,
            frame: base + self.frame,
            ..*self
        }
    }

    /// Whether `addr` lies inside the mapping.
    pub fn contains(&self, addr: u64) -> bool {
        (self.base..self.base + self.len).contains(&addr)
    }
}

/// A seized task with the parasite running in it. Dropping it cures the
/// task and releases it.
pub struct Infected {
    seized: Option<Seized>,
    map: Option<RemoteMap>,
    /// The parasite's end of the control socket, a descriptor in the task.
    remote_sock: Option<i32>,
    sock: Option<OwnedFd>,
    running: bool,
    buf: Vec<u8>,
}

impl Seized {
    /// Load the parasite into the task and start its daemon. On failure the
    /// task is cured and released.
    pub fn infect(self) -> Result<Infected> {
        let t0 = Instant::now();
        let mut inf = Infected { seized: Some(self), map: None, remote_sock: None, sock: None, running: false, buf: Vec::new() };
        inf.setup()?;
        tracing::debug!(pid = inf.pid().as_raw(), us = t0.elapsed().as_micros() as u64, "compel: infected");
        Ok(inf)
    }
}

impl Infected {
    fn s(&mut self) -> &mut Seized {
        self.seized.as_mut().expect("the seized task stays until cure")
    }

    pub fn pid(&self) -> Pid {
        self.seized.as_ref().map_or(Pid::from_raw(0), Seized::pid)
    }

    /// The parasite's mapping (skip it when dumping memory).
    pub fn remote_map(&self) -> Option<RemoteMap> {
        self.map
    }

    /// The task's descriptor used by the parasite (skip it when dumping fds).
    pub fn parasite_fd(&self) -> Option<i32> {
        self.remote_sock
    }

    fn setup(&mut self) -> Result<()> {
        let pid = self.pid();
        if !Blob::SUPPORTED || self.s().shadow_stack {
            return Err(Error::Unsupported { pid: pid.as_raw() });
        }
        let state = self.s().state().clone();
        let layout = RemoteMap::layout(sigframe::size(&state.fpu));

        let prot = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
        let base = self.s().map_anon(layout.len, prot)?;
        let map = layout.at(base);
        self.map = Some(map);

        // The control channel: a socketpair made in the task; we take one
        // end out with pidfd_getfd and close it there.
        let ty = (libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC) as u64;
        let (theirs, ours) = self.s().socketpair(ty, map.boot, |sv| {
            let mut pair = [0u8; 8];
            read_remote(pid, sv, &mut pair)?;
            Ok((i32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]), i32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]])))
        })?;
        self.remote_sock = Some(theirs);
        let tgid = self.s().tgid();
        let taken = pidfd::open(tgid)
            .and_then(|pfd| pidfd::getfd(pfd.as_fd(), ours))
            .ctx(pid, "pidfd_getfd of the control socket");
        self.s().close_fd(ours)?;
        let sock = taken?;
        setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(0, POLL.as_micros() as i64)).ctx(pid, "SO_RCVTIMEO")?;
        self.sock = Some(sock);

        // Blob, boot arguments and the way back: the rescue chain (it
        // closes the parasite's socket, unmaps this area and goes home),
        // or, without one, a signal frame of the seized state in the area.
        let head = self.s().rescue_head();
        let boot = BootArgs {
            magic: proto::BOOT_MAGIC,
            sock: self.remote_sock.unwrap_or(-1),
            _pad: 0,
            sigreturn_sp: head.unwrap_or(map.frame) + sigframe::SIGRETURN_SP_OFFSET,
            sas: map.frame + sigframe::UC_STACK_OFFSET,
            rx: map.rx,
            tx: map.tx,
            buf_len: map.buf_len,
        };
        let frame = match head {
            Some(_) => Vec::new(),
            None => sigframe::build(&state.regs.rewound_for_sigreturn(), &state.fpu, state.sigmask, map.frame),
        };
        write_remote(pid, &[(map.base, &Blob::relocated(map.base)), (map.boot, bytes_of(&boot)), (map.frame, &frame)])?;

        let mut regs: Regs = state.regs;
        regs.set_call(map.base + Blob::ENTRY, map.stack_top, map.boot);
        self.s().fpu_dirty = true;
        self.s().start(&regs)?;
        self.running = true;

        self.buf = vec![0u8; size_of::<Reply>() + proto::MAX_PAYLOAD];
        let (hdr, _) = self.recv(Some(Instant::now() + HELLO_TIMEOUT))?;
        let hello: Hello = read(self.payload(&hdr)).unwrap_or_default();
        if hdr.cmd != proto::CMD_HELLO || hello.version != proto::VERSION || hello.tid != pid.as_raw() {
            return Err(self.protocol(format!("bad greeting {hdr:?} {hello:?}")));
        }
        Ok(())
    }

    fn protocol(&self, what: String) -> Error {
        Error::Protocol { pid: self.pid().as_raw(), what }
    }

    fn payload(&self, hdr: &Reply) -> &[u8] {
        &self.buf[size_of::<Reply>()..size_of::<Reply>() + hdr.len as usize]
    }

    /// Run command `C` in the parasite.
    pub fn call<C: ParasiteCmd>(&mut self, args: &C::Args) -> Result<C::Reply> {
        Ok(self.call_fds::<C>(args, &[])?.0)
    }

    /// Run command `C`, passing `fds` along; the reply and any descriptors
    /// the parasite sent back.
    pub fn call_fds<C: ParasiteCmd>(&mut self, args: &C::Args, fds: &[BorrowedFd<'_>]) -> Result<(C::Reply, Vec<OwnedFd>)> {
        const { assert!(size_of::<C::Args>() <= proto::MAX_PAYLOAD && size_of::<C::Reply>() <= proto::MAX_PAYLOAD) };
        let pid = self.pid();
        if fds.len() > proto::MAX_FDS {
            return Err(self.protocol(format!("{} descriptors for one command", fds.len())));
        }
        let sock = self.sock.as_ref().ok_or_else(|| self.protocol("no control socket".into()))?;
        let req = Request { cmd: C::ID, len: size_of::<C::Args>() as u32 };
        scm::send(sock.as_fd(), &[bytes_of(&req), crate::sys::pod::bytes_of(args)], fds).ctx(pid, "send to the parasite")?;
        let (hdr, got) = self.recv(None)?;
        if hdr.cmd != C::ID {
            return Err(self.protocol(format!("reply to command {} for {}", hdr.cmd, C::ID)));
        }
        if hdr.status != 0 {
            return Err(Error::Command { pid: pid.as_raw(), cmd: C::ID, errno: Errno::from_raw(-hdr.status) });
        }
        match read::<C::Reply>(self.payload(&hdr)) {
            Some(r) if hdr.len as usize == size_of::<C::Reply>() => Ok((r, got)),
            _ => Err(self.protocol(format!("reply of {} bytes to command {}", hdr.len, C::ID))),
        }
    }

    /// Receive one reply, watching the task while waiting.
    fn recv(&mut self, deadline: Option<Instant>) -> Result<(Reply, Vec<OwnedFd>)> {
        let pid = self.pid();
        loop {
            let sock = self.sock.as_ref().ok_or_else(|| self.protocol("no control socket".into()))?;
            match scm::recv(sock.as_fd(), &mut self.buf, proto::MAX_FDS) {
                Ok(m) if m.len == 0 => return Err(self.protocol("the parasite closed the channel".into())),
                Ok(m) => {
                    let hdr: Reply = read(&self.buf[..m.len]).ok_or_else(|| self.protocol(format!("short reply ({} bytes)", m.len)))?;
                    if m.truncated || size_of::<Reply>() + hdr.len as usize != m.len || hdr.nfds as usize != m.fds.len() {
                        return Err(self.protocol(format!("malformed reply {hdr:?} ({} bytes, {} fds)", m.len, m.fds.len())));
                    }
                    return Ok((hdr, m.fds));
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(Error::Sys { pid: pid.as_raw(), op: "receive from the parasite", errno: e }),
            }
            // Nothing yet: is the task still running our code?
            let (running, sig) = self.s().poll()?;
            if let Some(sig) = sig {
                let ip = Regs::get(pid).map(|r| r.ip()).unwrap_or(0);
                self.running = false;
                return Err(self.s().unexpected(format!("parasite got {sig} at ip {ip:#x}")));
            }
            if !running {
                ptrace_cont(pid)?;
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(self.protocol("no answer from the parasite".into()));
            }
        }
    }

    /// Remove the parasite and release the task (state as seized, detached).
    pub fn cure(mut self) -> Result<()> {
        let res = self.teardown();
        let seized = self.seized.take();
        match seized {
            Some(s) => res.and(s.release()),
            None => res,
        }
    }

    /// Remove the parasite but keep the task seized.
    pub fn cure_keep_seized(mut self) -> Result<Seized> {
        self.teardown()?;
        self.seized.take().ok_or_else(|| Error::Gone { pid: 0, what: "already released".into() })
    }

    /// Stop the parasite, close the channel, unmap; registers stay as saved.
    fn teardown(&mut self) -> Result<()> {
        let pid = self.pid();
        let mut res = Ok(());
        if self.running {
            // Stop it where it waits for us (in recvmsg), before closing our
            // end: an EOF would send it down its own sigreturn path.
            self.running = false;
            res = self.interrupt();
        }
        self.sock = None;
        res?;
        let mut res = Ok(());
        if let Some(fd) = self.remote_sock.take() {
            res = self.s().close_fd(fd);
        }
        if let Some(map) = self.map.take() {
            let r = self.s().unmap(map.base, map.len);
            res = res.and(r);
        }
        self.s().settle()?;
        tracing::debug!(pid = pid.as_raw(), "compel: parasite removed");
        res
    }

    fn interrupt(&mut self) -> Result<()> {
        let pid = self.pid();
        crate::sys::ptrace::interrupt(pid).ctx(pid, "PTRACE_INTERRUPT")?;
        // Any stop will do: an interrupt trap, or a signal the parasite got
        // (which we then discard along with its registers).
        match self.s().wait()? {
            None => Ok(()),
            Some(sig) => {
                tracing::warn!(pid = pid.as_raw(), "compel: parasite had {sig} pending at cure");
                Ok(())
            }
        }
    }
}

impl Drop for Infected {
    fn drop(&mut self) {
        if self.seized.is_none() {
            return;
        }
        if let Err(e) = self.teardown() {
            tracing::warn!("compel: curing {}: {e}", self.pid());
        }
        if let Some(Err(e)) = self.seized.take().map(Seized::release) {
            tracing::warn!("compel: releasing after cure: {e}");
        }
    }
}

fn ptrace_cont(pid: Pid) -> Result<()> {
    crate::sys::ptrace::cont(pid, 0).ctx(pid, "PTRACE_CONT")
}

fn read_remote(pid: Pid, addr: u64, buf: &mut [u8]) -> Result<()> {
    let len = buf.len();
    let n = process_vm_readv(pid, &mut [std::io::IoSliceMut::new(buf)], &[RemoteIoVec { base: addr as usize, len }])
        .ctx(pid, "process_vm_readv")?;
    if n != len {
        return Err(Error::Sys { pid: pid.as_raw(), op: "process_vm_readv (short)", errno: Errno::EFAULT });
    }
    Ok(())
}

fn write_remote(pid: Pid, parts: &[(u64, &[u8])]) -> Result<()> {
    for &(addr, data) in parts {
        let n = process_vm_writev(pid, &[std::io::IoSlice::new(data)], &[RemoteIoVec { base: addr as usize, len: data.len() }])
            .ctx(pid, "process_vm_writev")?;
        if n != data.len() {
            return Err(Error::Sys { pid: pid.as_raw(), op: "process_vm_writev (short)", errno: Errno::EFAULT });
        }
    }
    Ok(())
}
