//! Kernel feature probes (CRIU's kerndat): what this kernel can do for dump and restore.
//!
//! Every probe really exercises the kernel (makes the syscall, ioctl or
//! netlink request and looks at the answer); nothing runs at start-up.
//! Probes come in two shapes:
//!
//! - `probe_*` functions in the submodules run the test each time they are
//!   called and return a [`Probe`]: `Ok(value)` with what the kernel
//!   answered (often a `bool`: present or not), or a [`ProbeError`] when
//!   the test itself broke (the error text is CRIU's wording for it).
//! - the `has_*` functions here run a probe once per process and cache the
//!   answer, for dump/restore code that only needs a yes/no.
//!
//! `criu check` (`ops::check`) maps these onto CRIU's feature names,
//! categories and messages.

pub mod files;
pub mod mem;
pub mod net;
pub mod task;

use std::fmt;
use std::sync::OnceLock;

use nix::errno::Errno;

pub use crate::sys::ptrace::RseqConf;
pub use mem::DirtyTrack;

/// Why a probe could not give an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeError {
    /// What failed, in CRIU's words (e.g. "Can't make eventfd").
    pub what: String,
    /// The errno behind it, if a syscall failed.
    pub errno: Option<Errno>,
}

impl ProbeError {
    /// A failed syscall: printed as `what: strerror(errno)` like pr_perror.
    pub fn sys(what: impl Into<String>, errno: Errno) -> Self {
        Self { what: what.into(), errno: Some(errno) }
    }

    /// A failure without an errno.
    pub fn msg(what: impl Into<String>) -> Self {
        Self { what: what.into(), errno: None }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(e) => write!(f, "{}: {}", self.what, e.desc()),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for ProbeError {}

/// The answer of one probe.
pub type Probe<T> = Result<T, ProbeError>;

/// Attach CRIU-style context to a raw errno result.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: &str) -> Probe<T>;
}

impl<T> Ctx<T> for Result<T, Errno> {
    fn ctx(self, what: &str) -> Probe<T> {
        self.map_err(|e| ProbeError::sys(what, e))
    }
}

impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx(self, what: &str) -> Probe<T> {
        self.map_err(|e| match e.raw_os_error() {
            Some(n) => ProbeError::sys(what, Errno::from_raw(n)),
            None => ProbeError::msg(format!("{what}: {e}")),
        })
    }
}

/// Run `probe` once per process and keep the answer (false if it broke).
fn cached(cell: &'static OnceLock<bool>, name: &str, probe: fn() -> Probe<bool>) -> bool {
    *cell.get_or_init(|| match probe() {
        Ok(v) => {
            tracing::debug!("kerndat: {name}: {v}");
            v
        }
        Err(e) => {
            tracing::debug!("kerndat: {name}: probe failed: {e}");
            false
        }
    })
}

macro_rules! cached_flags {
    ($($(#[$doc:meta])* $name:ident => $probe:path;)*) => {
        $(
            $(#[$doc])*
            pub fn $name() -> bool {
                static CELL: OnceLock<bool> = OnceLock::new();
                cached(&CELL, stringify!($name), $probe)
            }
        )*
    };
}

cached_flags! {
    /// ioctl(PAGEMAP_SCAN) on /proc/PID/pagemap (Linux 6.7+).
    has_pagemap_scan => mem::probe_pagemap_scan;
    /// PAGEMAP_SCAN reports PAGE_IS_GUARD (MADV_GUARD_INSTALL regions).
    has_pagemap_scan_guard_pages => mem::probe_pagemap_scan_guard_pages;
    /// madvise(MADV_GUARD_INSTALL) exists.
    has_madv_guard => mem::probe_madv_guard;
    /// Soft-dirty bits in /proc/PID/pagemap (CONFIG_MEM_SOFT_DIRTY).
    has_soft_dirty => mem::probe_soft_dirty;
    /// userfaultfd() and the UFFDIO_API handshake work.
    has_uffd => mem::probe_uffd;
    /// userfaultfd with the non-cooperative events lazy restore needs.
    has_uffd_noncoop => mem::probe_uffd_noncoop;
    /// Asynchronous userfaultfd write-protect tracking driven through
    /// PAGEMAP_SCAN (written pages found after a reset).
    has_uffd_wp_async => mem::probe_uffd_wp_async_tracking;
    /// memfd_create(MFD_HUGETLB).
    has_memfd_hugetlb => mem::probe_memfd_hugetlb;
    /// clone3() with set_tid (restore pids without ns_last_pid).
    has_clone3_set_tid => task::probe_clone3_set_tid;
    /// pidfd_open().
    has_pidfd_open => task::probe_pidfd_open;
    /// pidfd_getfd().
    has_pidfd_getfd => task::probe_pidfd_getfd;
    /// "NSpid:" in /proc/PID/status.
    has_nspid => task::probe_nspid;
    /// Time namespaces.
    has_timens => task::probe_timens;
    /// ptrace(PTRACE_GET_RSEQ_CONFIGURATION).
    has_ptrace_get_rseq_conf => task::probe_ptrace_get_rseq_conf_supported;
    /// prctl(PR_TIMER_CREATE_RESTORE_IDS).
    has_timer_cr_ids => task::probe_timer_cr_ids;
    /// kcmp(KCMP_EPOLL_TFD).
    has_kcmp_epoll_tfd => task::probe_kcmp_epoll_tfd;
    /// openat2().
    has_openat2 => files::probe_openat2;
    /// "lock:" lines in /proc/PID/fdinfo.
    has_fdinfo_lock => files::probe_fdinfo_lock;
    /// INOTIFY_IOC_SETNEXTWD.
    has_inotify_setnextwd => files::probe_inotify_setnextwd;
    /// move_mount(MOVE_MOUNT_SET_GROUP).
    has_move_mount_set_group => files::probe_move_mount_set_group;
    /// SIOCGSKNS on sockets.
    has_sk_ns => net::probe_sk_ns;
    /// SIOCUNIXFILE on unix sockets.
    has_sk_unix_file => net::probe_sk_unix_file;
    /// TCP_REPAIR on half-closed sockets.
    has_tcp_half_closed => net::probe_tcp_half_closed;
    /// SO_BUF_LOCK socket option.
    has_sockopt_buf_lock => net::probe_sockopt_buf_lock;
    /// IPV6_FREEBIND socket option.
    has_ipv6_freebind => net::probe_ipv6_freebind;
}

/// How memory changes between pre-dumps can be tracked on this kernel.
pub fn dirty_track() -> DirtyTrack {
    static CELL: OnceLock<DirtyTrack> = OnceLock::new();
    *CELL.get_or_init(|| DirtyTrack {
        soft_dirty: has_soft_dirty(),
        uffd_wp_async: has_pagemap_scan() && has_uffd_wp_async(),
    })
}

/// The feature bits UFFDIO_API offers (None without userfaultfd).
pub fn uffd_features() -> Option<u64> {
    static CELL: OnceLock<Option<u64>> = OnceLock::new();
    *CELL.get_or_init(|| mem::probe_uffd_features().ok().flatten())
}

/// The rseq registration ptrace reports for a fresh child of ours (the
/// libc's rseq area layout), if PTRACE_GET_RSEQ_CONFIGURATION works.
pub fn libc_rseq_conf() -> Option<RseqConf> {
    static CELL: OnceLock<Option<RseqConf>> = OnceLock::new();
    *CELL.get_or_init(|| task::probe_ptrace_get_rseq_conf().ok().flatten())
}

/// A summary of the probes dump and restore care about most (runs them
/// all; cached ones are reused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    pub pagemap_scan: bool,
    pub pagemap_scan_guard_pages: bool,
    pub dirty_track: DirtyTrack,
    pub uffd_features: Option<u64>,
    pub clone3_set_tid: bool,
    pub pidfd_open: bool,
    pub pidfd_getfd: bool,
    pub nspid: bool,
    pub timens: bool,
    pub rseq_conf: Option<RseqConf>,
    pub timer_cr_ids: bool,
    pub kcmp_epoll_tfd: bool,
    pub openat2: bool,
    pub fdinfo_lock: bool,
    pub move_mount_set_group: bool,
    pub memfd_hugetlb: bool,
    pub sk_ns: bool,
    pub sk_unix_file: bool,
}

impl Features {
    pub fn get() -> Self {
        Self {
            pagemap_scan: has_pagemap_scan(),
            pagemap_scan_guard_pages: has_pagemap_scan_guard_pages(),
            dirty_track: dirty_track(),
            uffd_features: uffd_features(),
            clone3_set_tid: has_clone3_set_tid(),
            pidfd_open: has_pidfd_open(),
            pidfd_getfd: has_pidfd_getfd(),
            nspid: has_nspid(),
            timens: has_timens(),
            rseq_conf: libc_rseq_conf(),
            timer_cr_ids: has_timer_cr_ids(),
            kcmp_epoll_tfd: has_kcmp_epoll_tfd(),
            openat2: has_openat2(),
            fdinfo_lock: has_fdinfo_lock(),
            move_mount_set_group: has_move_mount_set_group(),
            memfd_hugetlb: has_memfd_hugetlb(),
            sk_ns: has_sk_ns(),
            sk_unix_file: has_sk_unix_file(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_error_formats_like_pr_perror() {
        let e = ProbeError::sys("Can't make eventfd", Errno::ENOENT);
        assert_eq!(e.to_string(), "Can't make eventfd: No such file or directory");
        assert_eq!(ProbeError::msg("TFD mismatch (or not met)").to_string(), "TFD mismatch (or not met)");
    }

    #[test]
    fn cached_answers_are_stable() {
        assert_eq!(has_nspid(), has_nspid());
        assert_eq!(dirty_track(), dirty_track());
    }

    #[test]
    fn features_summary_is_consistent() {
        let f = Features::get();
        assert_eq!(f.pagemap_scan, has_pagemap_scan());
        assert_eq!(f.uffd_features.is_some(), has_uffd());
        if f.dirty_track.uffd_wp_async {
            assert!(f.pagemap_scan);
        }
    }
}
