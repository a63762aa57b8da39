//! The parasite: freestanding code that compel (`src/compel/`) loads into a
//! seized task and runs there as a small command daemon.
//!
//! Built by `build/parasite.rs` with the stable rustc as a PIE static library
//! and linked into a flat blob by `parasite.ld`; nothing here may need libc,
//! unwinding or formatting. Start-up (`parasite_main`): save the task's
//! sigaltstack into the prepared signal frame, greet the host on the control
//! socket, then serve [`proto`] requests one at a time. When the socket reads
//! EOF (the host closed it, or died) the parasite loads the frame with
//! `rt_sigreturn`, which puts the task back exactly where it was seized.
//!
//! Own: the entry/daemon loop (this file), `arch` (asm), `mem` (memcpy & co),
//! `cmds` (one function per command), `proto` (shared with the host).

#![no_std]

mod arch;
mod cmds;
mod mem;
pub mod proto;
mod syscall;

use core::mem::size_of;
use core::sync::atomic::{AtomicU64, Ordering};

use proto::{BootArgs, Hello, Reply, Request};

const EINTR: isize = 4;
const EBADF: i32 = 9;
const EINVAL: i32 = 22;
const EMSGSIZE: i32 = 90;

const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const MSG_CTRUNC: i32 = 0x8;
const MSG_TRUNC: i32 = 0x20;
const MSG_NOSIGNAL: usize = 0x4000;
const MSG_CMSG_CLOEXEC: usize = 0x4000_0000;

/// Where to return to if anything goes wrong (set once at start).
static SIGRETURN_SP: AtomicU64 = AtomicU64::new(0);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    leave()
}

/// Return the task to its saved state, or stop dead if there is none.
fn leave() -> ! {
    match SIGRETURN_SP.load(Ordering::Relaxed) {
        0 => arch::crash(),
        sp => arch::sigreturn(sp),
    }
}

/// Called by the entry stub with the boot arguments compel wrote.
///
/// # Safety
/// `boot` must point at a valid [`BootArgs`] whose buffers are mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn parasite_main(boot: *const BootArgs) -> ! {
    // SAFETY: compel passes the address of the boot page it filled in.
    let boot = unsafe { &*boot };
    if boot.magic != proto::BOOT_MAGIC {
        arch::crash();
    }
    SIGRETURN_SP.store(boot.sigreturn_sp, Ordering::Relaxed);
    serve(boot);
    leave()
}

/// `struct msghdr` (x86_64 / aarch64 layout).
#[repr(C)]
struct MsgHdr {
    name: usize,
    namelen: u32,
    _pad: u32,
    iov: *const proto::IoVec,
    iovlen: usize,
    control: *mut u8,
    controllen: usize,
    flags: i32,
    _pad2: u32,
}

/// Control buffer for up to [`proto::MAX_FDS`] descriptors (`cmsghdr` + ints).
#[repr(C, align(8))]
struct Cmsg {
    len: usize,
    level: i32,
    kind: i32,
    fds: [i32; proto::MAX_FDS],
}

struct Chan {
    sock: usize,
    rx: *mut u8,
    tx: *mut u8,
    len: usize,
}

fn serve(boot: &BootArgs) {
    // The task's sigaltstack goes into the frame's uc_stack, so that the
    // final rt_sigreturn re-installs it unchanged.
    arch::syscall(arch::NR_SIGALTSTACK, [0, boot.sas as usize, 0, 0, 0, 0]);

    let ch = Chan { sock: boot.sock as usize, rx: boot.rx as *mut u8, tx: boot.tx as *mut u8, len: boot.buf_len as usize };
    if ch.len < size_of::<Reply>() + proto::MAX_PAYLOAD {
        return;
    }
    let hello = Hello {
        version: proto::VERSION,
        pid: arch::syscall(arch::NR_GETPID, [0; 6]) as i32,
        tid: arch::syscall(arch::NR_GETTID, [0; 6]) as i32,
        _pad: 0,
    };
    // SAFETY: tx is the transmit buffer of `len` bytes, 8-aligned, past the header.
    unsafe { (ch.tx.add(size_of::<Reply>()) as *mut Hello).write(hello) };
    if send(&ch, proto::CMD_HELLO, 0, size_of::<Hello>(), &[]) < 0 {
        return;
    }

    loop {
        let mut cmsg = Cmsg { len: 0, level: 0, kind: 0, fds: [-1; proto::MAX_FDS] };
        let iov = proto::IoVec { base: ch.rx as u64, len: ch.len as u64 };
        let mut msg = MsgHdr {
            name: 0,
            namelen: 0,
            _pad: 0,
            iov: &iov,
            iovlen: 1,
            control: &mut cmsg as *mut Cmsg as *mut u8,
            controllen: size_of::<Cmsg>(),
            flags: 0,
            _pad2: 0,
        };
        let n = arch::syscall(arch::NR_RECVMSG, [ch.sock, &mut msg as *mut MsgHdr as usize, MSG_CMSG_CLOEXEC, 0, 0, 0]);
        if n == -EINTR {
            continue;
        }
        if n <= 0 {
            return; // EOF: the host is gone or done with us.
        }
        let mut nfds = 0;
        if msg.controllen >= 16 && cmsg.level == SOL_SOCKET && cmsg.kind == SCM_RIGHTS {
            nfds = ((cmsg.len.saturating_sub(16)) / 4).min(proto::MAX_FDS);
        }
        let fds = cmsg.fds.get(..nfds).unwrap_or(&[]);

        let mut out_fds = [-1i32; proto::MAX_FDS];
        let n = n as usize;
        let (cmd, res) = if msg.flags & (MSG_TRUNC | MSG_CTRUNC) != 0 || n < size_of::<Request>() {
            (u32::MAX, Err(EMSGSIZE))
        } else {
            // SAFETY: rx holds at least a Request header (checked above) and
            // is 8-aligned; the payload follows it in the same buffer.
            let req = unsafe { (ch.rx as *const Request).read() };
            let have = n - size_of::<Request>();
            if req.len as usize != have {
                (req.cmd, Err(EINVAL))
            } else {
                // SAFETY: `have` bytes after the header were just received
                // into rx; the reply area in tx is MAX_PAYLOAD bytes; the two
                // buffers do not overlap.
                let (args, out) = unsafe {
                    (
                        core::slice::from_raw_parts_mut(ch.rx.add(size_of::<Request>()), have),
                        core::slice::from_raw_parts_mut(ch.tx.add(size_of::<Reply>()), proto::MAX_PAYLOAD),
                    )
                };
                (req.cmd, cmds::dispatch(req.cmd, args, fds, out, &mut out_fds))
            }
        };
        for &fd in fds {
            arch::syscall(arch::NR_CLOSE, [fd as usize, 0, 0, 0, 0, 0]);
        }
        let sent = match res {
            Ok((len, nout)) => {
                let outs = out_fds.get(..nout).unwrap_or(&[]);
                let r = send(&ch, cmd, 0, len, outs);
                if r == -(EBADF as isize) && nout > 0 {
                    send(&ch, cmd, -EBADF, 0, &[])
                } else {
                    r
                }
            }
            Err(e) => send(&ch, cmd, -e, 0, &[]),
        };
        if sent < 0 {
            return;
        }
    }
}

/// Send a reply whose payload (`len` bytes) is already in place in tx.
fn send(ch: &Chan, cmd: u32, status: i32, len: usize, fds: &[i32]) -> isize {
    let hdr = Reply { cmd, status, len: len as u32, nfds: fds.len() as u32 };
    // SAFETY: tx starts with room for the header and is 8-aligned.
    unsafe { (ch.tx as *mut Reply).write(hdr) };
    let iov = proto::IoVec { base: ch.tx as u64, len: (size_of::<Reply>() + len) as u64 };
    let mut cmsg = Cmsg { len: 16 + 4 * fds.len(), level: SOL_SOCKET, kind: SCM_RIGHTS, fds: [-1; proto::MAX_FDS] };
    for (d, s) in cmsg.fds.iter_mut().zip(fds) {
        *d = *s;
    }
    let with_fds = !fds.is_empty();
    let msg = MsgHdr {
        name: 0,
        namelen: 0,
        _pad: 0,
        iov: &iov,
        iovlen: 1,
        control: if with_fds { &mut cmsg as *mut Cmsg as *mut u8 } else { core::ptr::null_mut() },
        // CMSG_SPACE: the header plus the ints rounded up to 8.
        controllen: if with_fds { (16 + 4 * fds.len() + 7) & !7 } else { 0 },
        flags: 0,
        _pad2: 0,
    };
    arch::syscall(arch::NR_SENDMSG, [ch.sock, &msg as *const MsgHdr as usize, MSG_NOSIGNAL, 0, 0, 0])
}
