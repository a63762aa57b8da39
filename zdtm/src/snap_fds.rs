//! The fd part of a task snapshot: each fd's target and fdinfo (under
//! `fd N`), and what only fcntl/ioctl/getsockopt show (owner, signal,
//! lease, seals, pipe size, queued bytes, socket options: one key each,
//! `fd N NAME`), read on a copy of the fd taken with pidfd_getfd(2) (root).

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::snapshot::{Snapshot, link, rd};

/// fdinfo lines left out, each for a reason (a prefix of the line). The
/// rest is compared, `mnt_id:` included: with the host's mounts (the only
/// flavor built) a recreated file lands on the mount it came from (pipefs,
/// sockfs, anon_inode, the file's own); a mount-namespace flavor would
/// have to map mount ids first.
pub const VOLATILE_FDINFO: &[(&str, &str)] = &[
    ("eventfd-id:", "the id of the eventfd object, a kernel counter: a recreated eventfd gets a new one"),
    ("it_value:", "a timerfd's remaining time: the clock moved on while it was dumped"),
    ("ticks:", "a timerfd's expirations: the kernel counts a periodic timer's missed ones lazily (at its next read or timerfd_gettime, which the dump does); the programs check them"),
    ("tfd:", "epoll targets are compared sorted, without `pos:` (the kernel lists them in its tree's order)"),
];

/// fcntl.h's F_GETSIG (not in the libc crate for this target).
const F_GETSIG: libc::c_int = 11;

/// Each socket option compared: (level, name, its constant).
const SOCKOPTS: &[(&str, libc::c_int)] = &[
    ("SO_TYPE", libc::SO_TYPE),
    ("SO_SNDBUF", libc::SO_SNDBUF),
    ("SO_RCVBUF", libc::SO_RCVBUF),
    ("SO_PASSCRED", libc::SO_PASSCRED),
    ("SO_PASSSEC", libc::SO_PASSSEC),
    ("SO_PEEK_OFF", libc::SO_PEEK_OFF),
    ("SO_RCVLOWAT", libc::SO_RCVLOWAT),
    ("SO_MARK", libc::SO_MARK),
    ("SO_PRIORITY", libc::SO_PRIORITY),
    ("SO_KEEPALIVE", libc::SO_KEEPALIVE),
    ("SO_BROADCAST", libc::SO_BROADCAST),
    ("SO_REUSEADDR", libc::SO_REUSEADDR),
    ("SO_REUSEPORT", libc::SO_REUSEPORT),
    ("SO_DONTROUTE", libc::SO_DONTROUTE),
    ("SO_OOBINLINE", libc::SO_OOBINLINE),
    ("SO_TIMESTAMP", libc::SO_TIMESTAMP),
];

/// The fds: targets (pipe/socket inodes numbered by first appearance, so
/// sharing is kept but inode numbers may change), fdinfo, and the probes.
pub fn fds_state(pid: i32, s: &mut Snapshot) -> Result<(), String> {
    let p = format!("/proc/{pid}");
    let mut fds: Vec<i32> = fs::read_dir(format!("{p}/fd"))
        .map_err(|e| format!("{p}/fd: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let pidfd = sys::pidfd_open(pid);
    let mut inodes: HashMap<String, usize> = HashMap::new();
    for fd in fds {
        let Ok(mut target) = link(&format!("{p}/fd/{fd}")) else {
            continue;
        };
        let kind = target.split(':').next().unwrap_or("").to_string();
        for k in ["pipe:[", "socket:["] {
            if target.starts_with(k) {
                let n = inodes.len();
                let i = *inodes.entry(target.clone()).or_insert(n);
                target = format!("{k}#{i}]");
            }
        }
        // A restore gives the tree a new time namespace (its clocks go on
        // from the dump): a file of the task's own is that one again.
        if target.starts_with("time:[") && link(&format!("{p}/ns/time")).is_ok_and(|own| own == target) {
            target = "time:[the task's own]".to_string();
        }
        // So does a network, uts or ipc namespace of the tree's own (not
        // the runner's).
        for k in ["net", "uts", "ipc"] {
            if target.starts_with(&format!("{k}:["))
                && link(&format!("{p}/ns/{k}")).is_ok_and(|own| own == target)
                && link(&format!("/proc/self/ns/{k}")).is_ok_and(|runner| runner != target)
            {
                target = format!("{k}:[the task's own]");
            }
        }
        let info = rd(&format!("{p}/fdinfo/{fd}")).unwrap_or_default();
        s.insert(format!("fd {fd:4}"), format!("{target} | {}", fdinfo(&info, &target)));
        match &pidfd {
            Ok(pfd) => probes(pfd, fd, &kind, |k, v| {
                s.insert(format!("fd {fd:4} {k}"), v);
            }),
            Err(e) => {
                s.insert(format!("fd {fd:4} probes"), e.clone());
            }
        }
    }
    Ok(())
}

/// fdinfo without what a restore legitimately changes: inode numbers of
/// recreated objects (and of unlinked files), and VOLATILE_FDINFO.
fn fdinfo(info: &str, target: &str) -> String {
    let mut targets: Vec<String> = info
        .lines()
        .filter(|l| l.starts_with("tfd:"))
        .map(|l| {
            l.split_whitespace()
                .take_while(|w| !w.starts_with("pos:"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    targets.sort();
    let mut out: Vec<String> = info
        .lines()
        .filter(|l| {
            // A file by path keeps its inode, unless it was unlinked (a
            // ghost comes back as a new one) or is under /proc (a restored
            // process has new procfs inodes); other objects are recreated.
            (!l.starts_with("ino:")
                || (target.starts_with('/') && !target.ends_with(" (deleted)") && !target.starts_with("/proc/")))
                && !VOLATILE_FDINFO.iter().any(|(pre, _)| l.starts_with(pre))
        })
        .map(str::to_string)
        .collect();
    out.extend(targets);
    out.join("; ")
}

/// What fcntl/ioctl/getsockopt say of a copy of the task's fd `fd`.
fn probes(pidfd: &OwnedFd, fd: i32, kind: &str, mut put: impl FnMut(&str, String)) {
    let f = match sys::pidfd_getfd(pidfd, fd) {
        Ok(f) => f,
        Err(e) => {
            put("probes", format!("pidfd_getfd: {e}"));
            return;
        }
    };
    let f = f.as_raw_fd();
    match sys::owner(f) {
        Ok((t, p)) => put("owner", format!("type {t} pid {p}")),
        Err(e) => put("owner", e),
    }
    let show = |r: Result<i32, String>| r.map(|v| v.to_string()).unwrap_or_else(|e| e);
    put("F_GETSIG", show(sys::fcntl(f, F_GETSIG)));
    put("F_GETLEASE", show(sys::fcntl(f, libc::F_GETLEASE)));
    if let Ok(seals) = sys::fcntl(f, libc::F_GET_SEALS) {
        put("F_GET_SEALS", format!("{seals:#x}"));
    }
    match kind {
        "pipe" => {
            put("F_GETPIPE_SZ", show(sys::fcntl(f, libc::F_GETPIPE_SZ)));
            put("FIONREAD", show(sys::ioctl_int(f, libc::FIONREAD)));
        }
        "socket" => {
            for (name, opt) in SOCKOPTS {
                put(name, show(sys::sockopt_int(f, *opt)));
            }
            for (name, opt) in [("SO_SNDTIMEO", libc::SO_SNDTIMEO), ("SO_RCVTIMEO", libc::SO_RCVTIMEO)] {
                put(name, show(sys::sockopt_timeval(f, opt)));
            }
            put("SO_LINGER", show(sys::sockopt_linger(f)));
            put("SIOCINQ", show(sys::ioctl_int(f, libc::FIONREAD)));
        }
        _ => {}
    }
}

/// The few syscalls the probes need.
mod sys {
    use super::*;

    fn err(what: &str) -> String {
        format!("{what}: {}", std::io::Error::last_os_error())
    }

    pub fn pidfd_open(pid: i32) -> Result<OwnedFd, String> {
        // SAFETY: plain syscall; a non-negative result is a new fd we own.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if r < 0 {
            return Err(err("pidfd_open"));
        }
        // SAFETY: r is a fresh fd owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }

    pub fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> Result<OwnedFd, String> {
        // SAFETY: plain syscall; a non-negative result is a new fd we own.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
        if r < 0 {
            return Err(err("pidfd_getfd"));
        }
        // SAFETY: r is a fresh fd owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }

    pub fn fcntl(fd: RawFd, cmd: libc::c_int) -> Result<i32, String> {
        // SAFETY: a query taking no argument.
        let r = unsafe { libc::fcntl(fd, cmd) };
        if r < 0 { Err(err("fcntl")) } else { Ok(r) }
    }

    /// struct f_owner_ex (fcntl.h).
    #[repr(C)]
    struct OwnerEx {
        kind: libc::c_int,
        pid: libc::pid_t,
    }
    const F_GETOWN_EX: libc::c_int = 16;

    pub fn owner(fd: RawFd) -> Result<(i32, i32), String> {
        let mut o = OwnerEx { kind: 0, pid: 0 };
        // SAFETY: F_GETOWN_EX fills the struct we pass.
        if unsafe { libc::fcntl(fd, F_GETOWN_EX, &mut o) } < 0 {
            return Err(err("F_GETOWN_EX"));
        }
        Ok((o.kind, o.pid))
    }

    pub fn ioctl_int(fd: RawFd, req: libc::Ioctl) -> Result<i32, String> {
        let mut n: libc::c_int = 0;
        // SAFETY: the request writes one int.
        if unsafe { libc::ioctl(fd, req, &mut n) } < 0 {
            return Err(err("ioctl"));
        }
        Ok(n)
    }

    fn sockopt<T>(fd: RawFd, opt: libc::c_int, v: &mut T) -> Result<(), String> {
        let mut len = std::mem::size_of::<T>() as libc::socklen_t;
        // SAFETY: the kernel writes at most len bytes into v.
        let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (v as *mut T).cast(), &mut len) };
        if r < 0 { Err(err("getsockopt")) } else { Ok(()) }
    }

    pub fn sockopt_int(fd: RawFd, opt: libc::c_int) -> Result<i32, String> {
        let mut v: libc::c_int = 0;
        sockopt(fd, opt, &mut v).map(|_| v)
    }

    pub fn sockopt_timeval(fd: RawFd, opt: libc::c_int) -> Result<i32, String> {
        let mut v = libc::timeval { tv_sec: 0, tv_usec: 0 };
        sockopt(fd, opt, &mut v).map(|_| (v.tv_sec * 1_000_000 + v.tv_usec) as i32)
    }

    pub fn sockopt_linger(fd: RawFd) -> Result<i32, String> {
        let mut v = libc::linger { l_onoff: 0, l_linger: 0 };
        sockopt(fd, libc::SO_LINGER, &mut v).map(|_| if v.l_onoff != 0 { v.l_linger } else { -1 })
    }
}

/// Self-test (`--state-diff`): change the task's fd `fd` from outside
/// through a copy of it: O_NONBLOCK flipped (fdinfo flags), and, on a pipe,
/// the pipe size doubled. Returns what it did (or why it couldn't).
pub fn meddle(pid: i32, fd: i32) -> Vec<String> {
    let mut done = Vec::new();
    let f = match sys::pidfd_open(pid).and_then(|p| sys::pidfd_getfd(&p, fd)) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    let f = f.as_raw_fd();
    // SAFETY: fcntl on our copy of the fd; the flags change is the point.
    unsafe {
        let fl = libc::fcntl(f, libc::F_GETFL);
        if fl >= 0 && libc::fcntl(f, libc::F_SETFL, fl ^ libc::O_NONBLOCK) == 0 {
            done.push(format!("fd {fd}: O_NONBLOCK flipped"));
        }
        let sz = libc::fcntl(f, libc::F_GETPIPE_SZ);
        if sz > 0 && libc::fcntl(f, libc::F_SETPIPE_SZ, sz * 2) >= 0 {
            done.push(format!("fd {fd}: pipe size {sz} -> {}", sz * 2));
        }
    }
    done
}
