//! Probe experiments: one-off syscalls, ioctls and prctls the probes try.

#[allow(unused_imports)]
use super::*;

/// `openat2(dirfd, path, {flags, mode, resolve})`.
pub fn openat2(dir: Option<BorrowedFd<'_>>, path: &CStr, flags: u64, resolve: u64) -> Res<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow { flags, mode: 0, resolve };
    let dfd = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    // SAFETY: path is NUL-terminated and `how` is a live open_how.
    own_fd(unsafe {
        libc::syscall(libc::SYS_openat2, dfd, path.as_ptr(), &how as *const OpenHow, size_of::<OpenHow>())
    })
}

/// Queue `sig` with a caller-chosen `si_code` to this very thread
/// (rt_tgsigqueueinfo) while it is blocked here, then take it back with
/// sigtimedwait(). Returns the si_code that came back. The signal never
/// reaches a handler: it is blocked on this thread and thread-directed.
pub fn sigqueue_self_roundtrip(sig: Signal, code: i32) -> Res<i32> {
    let mut set = SigSet::empty();
    set.add(sig);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))?;
    let result = (|| {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        info.si_signo = sig as i32;
        info.si_code = code;
        let tgid = nix::unistd::getpid().as_raw();
        let tid = nix::unistd::gettid().as_raw();
        // SAFETY: `info` is a live siginfo_t for the kernel to copy.
        check(unsafe {
            libc::syscall(libc::SYS_rt_tgsigqueueinfo, tgid, tid, sig as i32, &info as *const libc::siginfo_t)
        })?;
        // SAFETY: zeroed siginfo_t/timespec are valid; sigtimedwait fills `got`.
        let mut got: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let ts = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        // SAFETY: all pointers are to live locals.
        check_int(unsafe { libc::sigtimedwait(set.as_ref(), &mut got, &ts) })?;
        Ok(got.si_code)
    })();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}

/// An AIO context (io_setup), destroyed on drop.
#[derive(Debug)]
pub struct AioCtx {
    ctx: u64,
}

impl AioCtx {
    pub fn setup(nr_events: u32) -> Res<Self> {
        let mut ctx: u64 = 0;
        // SAFETY: io_setup writes the context id into the local `ctx`.
        check(unsafe { libc::syscall(libc::SYS_io_setup, nr_events, &mut ctx as *mut u64) })?;
        Ok(Self { ctx })
    }

    /// The context id, which is also the ring's address.
    pub fn id(&self) -> u64 {
        self.ctx
    }

    /// Move the `len`-byte ring to a fresh place with mremap().
    pub fn remap(&mut self, len: usize) -> Res<()> {
        // SAFETY: reserve a fresh anonymous area for the ring to move onto.
        let dst = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if dst == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        // SAFETY: moves the kernel-owned ring (never referenced from Rust)
        // over the area we just reserved.
        let r = unsafe {
            libc::syscall(libc::SYS_mremap, self.ctx, len, len, libc::MREMAP_FIXED | libc::MREMAP_MAYMOVE, dst as usize)
        };
        if r as usize != dst as usize {
            let e = Errno::last();
            // SAFETY: unmap the reservation we made above.
            unsafe { libc::munmap(dst, len) };
            return Err(e);
        }
        self.ctx = dst as u64;
        Ok(())
    }

    /// io_getevents(ctx, 0, 1, NULL, NULL): does the kernel still find the ring?
    pub fn getevents_nowait(&self) -> Res<i64> {
        // SAFETY: with min_nr and nr both 0 the kernel copies no events, so
        // the NULL events and timeout pointers are never dereferenced.
        Ok(check(unsafe {
            libc::syscall(
                libc::SYS_io_getevents,
                self.ctx,
                0 as libc::c_long,
                0 as libc::c_long,
                ptr::null_mut::<libc::c_void>(),
                ptr::null_mut::<libc::c_void>(),
            )
        })? as i64)
    }
}

impl Drop for AioCtx {
    fn drop(&mut self) {
        // SAFETY: destroys our own context; the kernel unmaps the ring.
        unsafe { libc::syscall(libc::SYS_io_destroy, self.ctx) };
    }
}

/// `timerfd_create(CLOCK_MONOTONIC)` (outer result) then
/// `ioctl(TFD_IOC_SET_TICKS, NULL)` (inner result): EFAULT means the C/R
/// ioctl exists.
pub fn timerfd_set_ticks_null() -> Res<Res<()>> {
    const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400;
    // SAFETY: integer-only arguments.
    let fd = own_fd(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) } as libc::c_long)?;
    // SAFETY: a NULL argument is never written through; the kernel fails
    // the copy with EFAULT.
    Ok(check_int(unsafe { libc::ioctl(fd.as_raw_fd(), TFD_IOC_SET_TICKS as _, ptr::null_mut::<u64>()) }).map(|_| ()))
}

/// `eventfd(initval, EFD_CLOEXEC)`.
pub fn eventfd(initval: u32) -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::eventfd(initval, libc::EFD_CLOEXEC) } as libc::c_long)
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn epoll_create() -> Res<OwnedFd> {
    // SAFETY: integer-only arguments.
    own_fd(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) } as libc::c_long)
}

/// `epoll_ctl(ADD)` of `fd` with `events` and user data `data`.
pub fn epoll_add(epfd: BorrowedFd<'_>, fd: BorrowedFd<'_>, events: u32, data: u64) -> Res<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a live epoll_event.
    check_int(unsafe { libc::epoll_ctl(epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) })?;
    Ok(())
}

/// vmsplice() one unaligned byte (from a private page that is unmapped
/// right after) into `pipe_wr` with SPLICE_F_GIFT | SPLICE_F_NONBLOCK.
pub fn vmsplice_unaligned_byte(pipe_wr: BorrowedFd<'_>) -> Res<usize> {
    let page = AnonMap::rw(1)?;
    page.touch(1, 0x5a)?;
    let iov = libc::iovec { iov_base: (page.addr() + 1) as *mut libc::c_void, iov_len: 1 };
    // SAFETY: the iovec names one byte of our own mapping, which is never
    // written again and is unmapped when `page` drops.
    let n = check(unsafe {
        libc::vmsplice(pipe_wr.as_raw_fd(), &iov, 1, libc::SPLICE_F_GIFT | libc::SPLICE_F_NONBLOCK) as libc::c_long
    })?;
    Ok(n as usize)
}

/// `prctl(PR_GET_TID_ADDRESS)`: this thread's clear_child_tid address.
pub fn prctl_get_tid_address() -> Res<usize> {
    let mut addr: usize = 0;
    // SAFETY: the kernel stores one pointer into the local `addr`.
    check_int(unsafe { libc::prctl(libc::PR_GET_TID_ADDRESS, &mut addr as *mut usize, 0, 0, 0) })?;
    Ok(addr)
}

/// `prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE)`: sizeof(struct prctl_mm_map).
pub fn prctl_mm_map_size() -> Res<u32> {
    const PR_SET_MM_MAP_SIZE: libc::c_ulong = 15;
    let mut size: u32 = 0;
    // SAFETY: the kernel stores one u32 into the local `size`.
    check_int(unsafe {
        libc::prctl(libc::PR_SET_MM, PR_SET_MM_MAP_SIZE, &mut size as *mut u32, 0 as libc::c_ulong, 0 as libc::c_ulong)
    })?;
    Ok(size)
}

/// `prctl(PR_TIMER_CREATE_RESTORE_IDS, GET)`.
pub fn prctl_timer_restore_ids_get() -> Res<i32> {
    const PR_TIMER_CREATE_RESTORE_IDS: libc::c_int = 77;
    const GET: libc::c_ulong = 2;
    // SAFETY: integer-only arguments.
    check_int(unsafe {
        libc::prctl(PR_TIMER_CREATE_RESTORE_IDS, GET, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong)
    })
}

/// `fcntl(fd, F_GETOWNER_UIDS)`: [uid, euid] of the F_SETOWN owner.
pub fn fcntl_getowner_uids(fd: BorrowedFd<'_>) -> Res<[u32; 2]> {
    const F_GETOWNER_UIDS: libc::c_int = 17;
    let mut v = [0u32; 2];
    // SAFETY: the kernel stores two u32 into the local array.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), F_GETOWNER_UIDS, v.as_mut_ptr()) })?;
    Ok(v)
}

/// `ioctl(ptmx, TIOCSPTLCK, &lock)`.
pub fn tty_set_pty_lock(fd: BorrowedFd<'_>, lock: bool) -> Res<()> {
    let v: libc::c_int = lock as libc::c_int;
    // SAFETY: the kernel reads one int from the local `v`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSPTLCK as _, &v as *const libc::c_int) })?;
    Ok(())
}

/// `ioctl(ptmx, TIOCGPTN)`: the pty index (/dev/pts/N).
pub fn tty_pty_number(fd: BorrowedFd<'_>) -> Res<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: the kernel stores one unsigned int into the local `n`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN as _, &mut n as *mut libc::c_uint) })?;
    Ok(n)
}

/// `ioctl(tun_fd, TUNSETIFINDEX, &idx)`.
pub fn tun_set_ifindex(fd: BorrowedFd<'_>, idx: u32) -> Res<()> {
    const TUNSETIFINDEX: libc::c_ulong = 0x4004_54da;
    let v = idx;
    // SAFETY: the kernel reads one u32 from the local `v`.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFINDEX as _, &v as *const u32) })?;
    Ok(())
}

/// `ioctl(sock, SIOCGSKNS)`: an fd of the socket's network namespace.
pub fn socket_netns(fd: BorrowedFd<'_>) -> Res<OwnedFd> {
    const SIOCGSKNS: libc::c_ulong = 0x894c;
    // SAFETY: no argument; the return value is a new fd.
    own_fd(unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSKNS as _) } as libc::c_long)
}

/// `ioctl(unix_sock, SIOCUNIXFILE)`: an O_PATH fd of the bound socket file.
pub fn unix_socket_file(fd: BorrowedFd<'_>) -> Res<OwnedFd> {
    const SIOCUNIXFILE: libc::c_ulong = 0x89e0;
    // SAFETY: no argument; the return value is a new fd.
    own_fd(unsafe { libc::ioctl(fd.as_raw_fd(), SIOCUNIXFILE as _) } as libc::c_long)
}

/// `getsockopt()` into `buf`; returns the length the kernel reported.
pub fn getsockopt_bytes(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, buf: &mut [u8]) -> Res<usize> {
    let mut len = buf.len() as libc::socklen_t;
    let p = if buf.is_empty() { ptr::null_mut() } else { buf.as_mut_ptr().cast() };
    // SAFETY: `p`/`len` describe `buf` (or NULL/0).
    check_int(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, p, &mut len) })?;
    Ok(len as usize)
}

/// `getsockopt()` of an int option: (value, reported length).
pub fn getsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> Res<(i32, usize)> {
    let mut buf = [0u8; 4];
    let len = getsockopt_bytes(fd, level, name, &mut buf)?;
    Ok((i32::from_ne_bytes(buf), len))
}

/// `setsockopt()` of an int option.
pub fn setsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, val: i32) -> Res<()> {
    // SAFETY: the kernel reads one int from the local `val`.
    check_int(unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (&val as *const i32).cast(), size_of::<i32>() as libc::socklen_t)
    })?;
    Ok(())
}
