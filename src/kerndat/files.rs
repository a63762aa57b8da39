//! File probes: /proc/PID/fdinfo contents, ttys, pipes, timerfd, tun,
//! openat2 and the mount features (set-group moves, overlayfs, autofs,
//! binfmt_misc).
//!
//! Probes that mount something run in a helper thread that first moves to
//! a private mount namespace of its own (unshare(CLONE_NEWNS) only affects
//! the calling thread), so nothing is ever mounted where the rest of the
//! system can see it, and everything goes away when the thread ends.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::{Ctx, Probe, ProbeError};
use crate::sys::probe as k;

/// /proc/self/fdinfo/FD of one of our descriptors.
pub fn fdinfo(fd: RawFd) -> Probe<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ctx("Error parsing proc fdinfo")
}

fn fdinfo_values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines().filter_map(|l| l.strip_prefix(key)).map(str::trim).collect()
}

/// eventfd fdinfo shows the counter ("eventfd-count: 0x...").
pub fn probe_fdinfo_eventfd() -> Probe<()> {
    let cnt = 13u64;
    let fd = k::eventfd(cnt as u32).ctx("Can't make eventfd")?;
    let text = fdinfo(fd.as_raw_fd())?;
    let got = fdinfo_values(&text, "eventfd-count:")
        .first()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
    match got {
        Some(v) if v == cnt => Ok(()),
        Some(v) => Err(ProbeError::msg(format!("Counter mismatch (or not met) {v} want {cnt}"))),
        None => Err(ProbeError::msg(format!("Counter mismatch (or not met) -1 want {cnt}"))),
    }
}

/// epoll fdinfo lists its targets ("tfd: N events: ...").
pub fn probe_fdinfo_eventpoll() -> Probe<()> {
    let (rd, _wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("Can't make pipe to watch")?;
    let ep = k::epoll_create().ctx("Can't make epoll fd")?;
    k::epoll_add(ep.as_fd(), rd.as_fd(), (libc::EPOLLIN | libc::EPOLLOUT) as u32, 0).ctx("Can't add epoll tfd")?;
    let text = fdinfo(ep.as_raw_fd())?;
    let tfds: Vec<i32> =
        fdinfo_values(&text, "tfd:").iter().filter_map(|v| v.split_whitespace().next()?.parse().ok()).collect();
    if tfds != [rd.as_raw_fd()] {
        return Err(ProbeError::msg("TFD mismatch (or not met)"));
    }
    Ok(())
}

/// signalfd fdinfo shows the mask ("sigmask: ...").
pub fn probe_fdinfo_signalfd() -> Probe<()> {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGUSR1);
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).ctx("Can't make signalfd")?;
    let text = fdinfo(sfd.as_fd().as_raw_fd())?;
    let want = 1u64 << (libc::SIGUSR1 - 1);
    let got = fdinfo_values(&text, "sigmask:").first().and_then(|v| u64::from_str_radix(v, 16).ok());
    if got != Some(want) {
        return Err(ProbeError::msg("Error parsing proc fdinfo"));
    }
    Ok(())
}

/// inotify fdinfo lists its watches ("inotify wd:N ino:... ").
pub fn probe_fdinfo_inotify() -> Probe<()> {
    let fd = crate::sys::inotify::init().ctx("Can't make inotify fd")?;
    let wd = crate::sys::inotify::add_watch(fd.as_fd(), c"/", libc::IN_ALL_EVENTS).ctx("Can't add watch")?;
    let text = fdinfo(fd.as_raw_fd())?;
    let wds: Vec<i32> =
        fdinfo_values(&text, "inotify wd:").iter().filter_map(|v| v.split_whitespace().next()?.parse().ok()).collect();
    if wds != [wd] {
        return Err(ProbeError::msg("WD mismatch (or not met)"));
    }
    Ok(())
}

/// All the fdinfo formats dump parses; every failure is reported.
pub fn probe_fdinfo_ext() -> Vec<ProbeError> {
    [probe_fdinfo_eventfd(), probe_fdinfo_eventpoll(), probe_fdinfo_signalfd(), probe_fdinfo_inotify()]
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// fdinfo has "mnt_id:".
pub fn probe_mnt_id() -> Probe<()> {
    let f = std::fs::File::open("/").ctx("Can't open /")?;
    let text = fdinfo(f.as_raw_fd())?;
    if fdinfo_values(&text, "mnt_id:").is_empty() {
        return Err(ProbeError::msg("fdinfo doesn't contain the mnt_id field"));
    }
    Ok(())
}

/// fdinfo shows flock()s ("lock:\t1: FLOCK ...").
pub fn probe_fdinfo_lock() -> Probe<bool> {
    use nix::fcntl::{Flock, FlockArg};
    let f = std::fs::File::open("/proc/locks").ctx("Can't open /proc/locks")?;
    let fd = f.as_raw_fd();
    let lock =
        Flock::lock(f, FlockArg::LockSharedNonblock).map_err(|(_, e)| ProbeError::sys("Can't take a lock", e))?;
    let text = fdinfo(fd)?;
    drop(lock);
    Ok(text.contains("lock:"))
}

/// vmsplice() of one unaligned byte into a pipe (page-pipe dumps).
pub fn probe_unaligned_vmsplice() -> Probe<()> {
    let (_rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("Can't create pipe")?;
    k::vmsplice_unaligned_byte(wr.as_fd()).ctx("Unaligned vmsplice doesn't work")?;
    Ok(())
}

/// A locked pty slave can't be opened (EIO): ttys can be restored locked.
pub fn probe_tty() -> Probe<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let fl = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = open("/dev/ptmx", fl, Mode::empty()).ctx("Can't open /dev/ptmx")?;
    k::tty_set_pty_lock(master.as_fd(), true).ctx("Can't lock pty master")?;
    let n = k::tty_pty_number(master.as_fd()).ctx("Can't get the pty number")?;
    match open(format!("/dev/pts/{n}").as_str(), fl, Mode::empty()) {
        Ok(_) => Err(ProbeError::msg("Managed to open locked pty.")),
        Err(Errno::EIO) => Ok(()),
        Err(e) => Err(ProbeError::sys("Unexpected error on locked pty", e)),
    }
}

/// TFD_IOC_SET_TICKS (timerfd restore).
pub fn probe_timerfd() -> Probe<()> {
    match k::timerfd_set_ticks_null().ctx("timerfd_create failed")? {
        Ok(()) | Err(Errno::EFAULT) => Ok(()),
        Err(e) => Err(ProbeError::sys("No timerfd support for c/r", e)),
    }
}

/// openat2() with RESOLVE_NO_SYMLINKS.
pub fn probe_openat2() -> Probe<bool> {
    let flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    match k::openat2(None, c"/", flags, libc::RESOLVE_NO_SYMLINKS) {
        Ok(_) => Ok(true),
        Err(Errno::ENOSYS) => Ok(false),
        Err(e) => Err(ProbeError::sys("openat2 failed unexpectedly", e)),
    }
}

/// INOTIFY_IOC_SETNEXTWD.
pub fn probe_inotify_setnextwd() -> Probe<bool> {
    let fd = crate::sys::inotify::init().ctx("Can't create inotify")?;
    match crate::sys::inotify::set_next_wd(fd.as_fd(), 0x10) {
        Ok(()) => Ok(true),
        Err(Errno::ENOTTY) => Ok(false),
        Err(e) => Err(ProbeError::sys("Can't call ioctl", e)),
    }
}

/// Why tun devices can't be checkpointed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunError {
    /// /dev/net/tun can't be opened (no tun at all).
    NoDevice(ProbeError),
    /// The device is there but lacks TUNSETIFINDEX.
    NoSupport(ProbeError),
}

/// /dev/net/tun with TUNSETIFINDEX.
pub fn probe_tun() -> Result<(), TunError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .ctx("Can't check tun support")
        .map_err(TunError::NoDevice)?;
    k::tun_set_ifindex(f.as_fd(), 13).ctx("No proper support for tun dump/restore").map_err(TunError::NoSupport)
}

/// SIOCGSKNS on a tun file (tun devices in other network namespaces).
pub fn probe_tun_netns() -> Probe<bool> {
    let f = std::fs::File::open("/dev/net/tun").ctx("Unable to create tun")?;
    Ok(k::socket_netns(f.as_fd()).is_ok())
}

/// Run `f` in a helper thread that has its own private mount namespace with
/// a fresh tmpfs on /tmp.
fn in_private_mount_ns<T: Send + 'static>(f: impl FnOnce() -> Probe<T> + Send + 'static) -> Probe<T> {
    std::thread::spawn(move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).ctx("Unable to create a new mount namespace")?;
        k::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None).ctx("Unable to remount / with MS_PRIVATE")?;
        k::mount(Some(c"criu"), c"/tmp", Some(c"tmpfs"), 0, None).ctx("Unable to mount tmpfs on /tmp")?;
        f()
    })
    .join()
    .map_err(|_| ProbeError::msg("mount probe thread panicked"))?
}

fn mkdir(path: &str) -> Probe<()> {
    std::fs::create_dir(path).ctx(&format!("Fail to make dir {path}"))
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// move_mount(MOVE_MOUNT_SET_GROUP): put a private bind mount into the peer
/// group of a shared one (mount restore in mount-v2 mode).
pub fn probe_move_mount_set_group() -> Probe<bool> {
    in_private_mount_ns(|| {
        let root = "/tmp/set_group";
        let sub = "/tmp/set_group/subdir";
        mkdir(root)?;
        k::mount(Some(c"criu.move_mount_set_group"), &cstr(root), Some(c"tmpfs"), 0, None)
            .ctx(&format!("Fail to mount tmfps to {root}"))?;
        k::mount(None, &cstr(root), None, libc::MS_PRIVATE, None).ctx(&format!("Fail to make {root} private"))?;
        mkdir(sub)?;
        k::mount(Some(&cstr(sub)), &cstr(sub), None, libc::MS_BIND, None)
            .ctx(&format!("Fail to make bind-mount {sub}"))?;
        k::mount(None, &cstr(root), None, libc::MS_SHARED, None).ctx(&format!("Fail to make {root} shared"))?;
        match k::move_mount(&cstr(root), &cstr(sub), k::MOVE_MOUNT_SET_GROUP) {
            Ok(()) => Ok(true),
            Err(Errno::EINVAL | Errno::ENOSYS) => Ok(false),
            Err(e) => Err(ProbeError::sys("Fail to MOVE_MOUNT_SET_GROUP", e)),
        }
    })
}

/// On overlayfs, the device and inode /proc/PID/maps shows for a mapped
/// file match what stat() says (dump finds mapped files by them).
pub fn probe_overlayfs_maps() -> Probe<()> {
    in_private_mount_ns(|| {
        for d in ["/tmp/l", "/tmp/u", "/tmp/w", "/tmp/m"] {
            mkdir(d)?;
        }
        k::mount(
            Some(c"test"),
            c"/tmp/m",
            Some(c"overlay"),
            0,
            Some(c"lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w"),
        )
        .ctx("Unable to mount overlayfs")?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open("/tmp/m/test")
            .ctx("Unable to open a test file")?;
        file.set_len(k::page_size() as u64).ctx("Unable to size the test file")?;
        let st = file.metadata().ctx("stat")?;
        let map = k::FileMap::shared(file.as_fd(), k::page_size()).ctx("Unable to map the test file")?;
        let maps = super::mem::self_maps()?;
        let m =
            maps.iter().find(|m| m.start == map.addr()).ok_or_else(|| ProbeError::msg("Unable to find the mapping"))?;
        let (maj, min) = (libc::major(st.dev()), libc::minor(st.dev()));
        if (m.dev_major, m.dev_minor, m.inode) != (maj, min, st.ino()) {
            return Err(ProbeError::msg(format!(
                "unmatched dev:ino {:x}:{:x}:{:x} (expected {:x}:{:x}:{:x})",
                m.dev_major,
                m.dev_minor,
                m.inode,
                maj,
                min,
                st.ino()
            )));
        }
        Ok(())
    })
}

/// Mount autofs and look for "pipe_ino=" in its mountinfo options.
pub fn probe_autofs() -> Probe<()> {
    fn autofs_pipe_ino(mountinfo: &str) -> Option<Probe<()>> {
        let line = mountinfo.lines().find(|l| l.contains(" autofs "))?;
        Some(if line.contains("pipe_ino=") { Ok(()) } else { Err(ProbeError::msg("autofs not supported.")) })
    }
    let mine = std::fs::read_to_string("/proc/self/mountinfo").ctx("Can't read /proc/self/mountinfo")?;
    if let Some(r) = autofs_pipe_ino(&mine) {
        return r;
    }
    in_private_mount_ns(|| {
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("failed to create pipe")?;
        let dir = "/tmp/.criu.mnt.autofs";
        mkdir(dir)?;
        let opts =
            format!("fd={},pgrp={},minproto=5,maxproto=5,direct", wr.as_raw_fd(), nix::unistd::getpgrp().as_raw());
        k::mount(Some(c"criu"), &cstr(dir), Some(c"autofs"), 0, Some(&cstr(&opts))).ctx("failed to mount autofs")?;
        let info = std::fs::read_to_string("/proc/thread-self/mountinfo").ctx("Can't read mountinfo");
        let _ = k::umount2(&cstr(dir), libc::MNT_DETACH);
        drop((rd, wr));
        autofs_pipe_ino(&info?).unwrap_or_else(|| Err(ProbeError::msg("autofs not supported.")))
    })
}

/// binfmt_misc mounted in a new user namespace is a separate instance
/// (Linux 6.7+), so restore can populate it without touching the host's.
pub fn probe_binfmt_misc_sandboxing() -> Probe<bool> {
    let host = match k::mount_detached(c"binfmt_misc") {
        Ok(fd) => fd,
        Err(_) => return Ok(false),
    };
    let dev = nix::sys::stat::fstat(host.as_fd()).ctx("Failed to stat a binfmt_misc mountpoint")?.st_dev;
    let st = k::binfmt_misc_userns_child(dev).ctx("Failed to check binfmt_misc sandboxing support in child process")?;
    match k::exit_code(&st) {
        Some(0) => Ok(true),
        Some(2) => Ok(false),
        _ => Err(ProbeError::msg("Failed to check binfmt_misc sandboxing support in child process")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_value_lookup() {
        let t = "pos:\t0\nflags:\t02\nmnt_id:\t15\ntfd:        5 events:       19\ntfd:        7 events: 1\n";
        assert_eq!(fdinfo_values(t, "mnt_id:"), ["15"]);
        assert_eq!(fdinfo_values(t, "tfd:").len(), 2);
        assert!(fdinfo_values(t, "lock:").is_empty());
    }

    #[test]
    fn category_one_file_probes_pass() {
        assert!(probe_fdinfo_ext().is_empty(), "{:?}", probe_fdinfo_ext());
        probe_mnt_id().unwrap();
        probe_unaligned_vmsplice().unwrap();
        probe_tty().unwrap();
    }

    /// An optional kernel feature: its probe must pass, unless the kernel
    /// was built without it (ENODEV/ENOENT), which skips with the reason.
    fn optional<T>(feature: &str, r: Probe<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if matches!(e.errno, Some(Errno::ENODEV | Errno::ENOENT)) => {
                eprintln!("skipping the {feature} probe check: this kernel lacks it ({e:?})");
                None
            }
            Err(e) => panic!("{feature} probe failed: {e:?}"),
        }
    }

    #[test]
    fn extra_file_probes_match_this_kernel() {
        probe_timerfd().unwrap();
        assert!(probe_openat2().unwrap());
        assert!(probe_fdinfo_lock().unwrap());
        assert!(probe_inotify_setnextwd().unwrap());
        assert!(probe_move_mount_set_group().unwrap());
        optional("overlayfs", probe_overlayfs_maps());
        optional("autofs", probe_autofs());
        optional("binfmt_misc", probe_binfmt_misc_sandboxing());
        let tun = match probe_tun() {
            Ok(()) => Ok(()),
            Err(TunError::NoDevice(e) | TunError::NoSupport(e)) => Err(e),
        };
        if optional("tun", tun).is_some() {
            assert!(probe_tun_netns().unwrap());
        }
    }
}
