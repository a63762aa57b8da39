//! `criu check`: CRIU's kernel feature checks, on top of the `kerndat`
//! probes.
//!
//! Three categories, as CRIU:
//! 1. absolutely required (always checked; the first failure prints
//!    "Does not look good." and fails); CRIU's list plus seccomp suspend /
//!    filter dump and PTRACE_GET_RSEQ_CONFIGURATION, which CRIU only
//!    checks with --extra although dumping most tasks needs them,
//! 2. needed for specific cases (`--extra`),
//! 3. experimental (`--experimental`); `--all` is both.
//!
//! Failures in 2 and 3 only turn "Looks good." into CRIU's "Looks good
//! but ..." (exit code 1). `--feature NAME` checks just the named
//! features ("NAME is supported", exit 0, or exit 1), `--feature list`
//! prints the names.
//!
//! Each check reports its own problems with CRIU's wording and level
//! (error, warning, or a plain message on stdout) and returns whether the
//! feature is there.

use nix::errno::Errno;

use crate::kerndat::{self, ProbeError, files, mem, net, task};
use crate::log::msg;
use crate::opts::Opts;

const CHECK_GOOD: &str = "Looks good.";
const CHECK_BAD: &str = "Does not look good.";
const CHECK_MAYBE: &str = "Looks good but some kernel features are missing\n\
                           which, depending on your process tree, may cause\n\
                           dump or restore failure.";

/// One check: true when the feature is there.
type Check = fn() -> bool;

/// A feature `--feature` can name.
pub struct Feature {
    pub name: &'static str,
    check: Check,
}

const fn f(name: &'static str, check: Check) -> Feature {
    Feature { name, check }
}

/// CRIU 4.2's feature names, in its order.
pub const FEATURES: &[Feature] = &[
    f("mnt_id", check_mnt_id),
    f("mem_dirty_track", check_mem_dirty_track),
    f("aio_remap", check_aio_remap),
    f("timerfd", check_timerfd),
    f("tun", check_tun),
    f("tun_ns", check_tun_netns),
    f("userns", check_userns),
    f("fdinfo_lock", check_fdinfo_lock),
    f("seccomp_suspend", check_seccomp_suspend),
    f("seccomp_filters", check_seccomp_filters),
    f("loginuid", check_loginuid),
    f("cgroupns", check_cgroupns),
    f("autofs", check_autofs),
    f("tcp_half_closed", check_tcp_half_closed),
    f("compat_cr", check_compat_cr),
    f("uffd", check_uffd),
    f("uffd-noncoop", check_uffd_noncoop),
    f("can_map_vdso", check_can_map_vdso),
    f("sk_ns", check_sk_netns),
    f("sk_unix_file", check_sk_unix_file),
    f("net_diag_raw", check_net_diag_raw),
    f("nsid", check_nsid),
    f("link_nsid", check_link_nsid),
    f("kcmp_epoll", check_kcmp_epoll),
    f("timens", check_time_namespace),
    f("external_net_ns", check_external_net_ns),
    f("clone3_set_tid", check_clone3_set_tid),
    f("newifindex", check_newifindex),
    f("nftables", check_nftables_cr),
    f("has_ipt_legacy", check_ipt_legacy),
    f("pidfd_store", check_pidfd_store),
    f("ns_pid", check_ns_pid),
    f("apparmor_stacking", check_apparmor_stacking),
    f("network_lock_nftables", check_network_lock_nftables),
    f("sockopt_buf_lock", check_sockopt_buf_lock),
    f("memfd_hugetlb", check_memfd_hugetlb),
    f("move_mount_set_group", check_move_mount_set_group),
    f("openat2", check_openat2),
    f("get_rseq_conf", check_ptrace_get_rseq_conf),
    f("ipv6_freebind", check_ipv6_freebind),
    f("pagemap_scan", check_pagemap_scan),
    f("timer_cr_ids", check_timer_cr_ids),
    f("overlayfs_maps", check_overlayfs_maps),
    f("pagemap_scan_guard_pages", check_pagemap_scan_guard_pages),
    f("binfmt_misc_sandboxing", check_binfmt_misc_sandboxing),
];

/// Category 1: CRIU's list in its order, plus the pagemap check CRIU's
/// kerndat start-up does before any command, PTRACE_SEIZE/INTERRUPT (how
/// we attach) and the ptrace requests every modern task needs.
const CATEGORY1: &[(&str, Check)] = &[
    ("pagemap", check_pagemap),
    ("map_files", check_map_files),
    ("sock_diag", check_sock_diag),
    ("ns_last_pid", check_ns_last_pid),
    ("sock_peek_off", check_sock_peek_off),
    ("kcmp", check_kcmp),
    ("prctl", check_prctl_cat1),
    ("fcntl", check_fcntl),
    ("proc_stat", check_proc_stat),
    ("tcp", check_tcp),
    ("fdinfo_ext", check_fdinfo_ext),
    ("unaligned_vmsplice", check_unaligned_vmsplice),
    ("tty", check_tty),
    ("so_gets", check_so_gets),
    ("ipc", check_ipc),
    ("sigqueuinfo", check_sigqueuinfo),
    ("ptrace_seize", check_ptrace_seize),
    ("ptrace_peeksiginfo", check_ptrace_peeksiginfo),
    ("special_mapping_mremap", check_special_mapping_mremap),
    // Not in CRIU's category 1, but dumping an ordinary process needs them
    // on today's systems (glibc registers rseq in every thread; seccomp
    // filters are common), so a kernel without them does not look good.
    ("seccomp_suspend", check_seccomp_suspend),
    ("seccomp_filters", check_seccomp_filters),
    ("get_rseq_conf", check_ptrace_get_rseq_conf),
];

/// Category 2, in CRIU's order.
const CATEGORY2: &[(&str, Check)] = &[
    ("prctl_cat2", check_prctl_cat2),
    ("seccomp_suspend", check_seccomp_suspend),
    ("seccomp_filters", check_seccomp_filters),
    ("mem_dirty_track", check_mem_dirty_track),
    ("posix_timers", check_posix_timers),
    ("tun", check_tun_cr_optional),
    ("timerfd", check_timerfd),
    ("mnt_id", check_mnt_id),
    ("aio_remap", check_aio_remap),
    ("fdinfo_lock", check_fdinfo_lock),
    ("clone_parent_vs_pid", check_clone_parent_vs_pid),
    ("cgroupns", check_cgroupns),
    ("tcp_window", check_tcp_window),
    ("tcp_half_closed", check_tcp_half_closed),
    ("userns", check_userns),
    ("loginuid", check_loginuid),
    ("can_map_vdso", check_can_map_vdso),
    ("uffd", check_uffd),
    ("uffd-noncoop", check_uffd_noncoop),
    ("sk_ns", check_sk_netns),
    ("kcmp_epoll", check_kcmp_epoll),
    ("net_diag_raw", check_net_diag_raw),
    ("clone3_set_tid", check_clone3_set_tid),
    ("timens", check_time_namespace),
    ("newifindex", check_newifindex),
    ("pidfd_store", check_pidfd_store),
    ("ns_pid", check_ns_pid),
    ("network_lock_nftables", check_network_lock_nftables),
    ("sockopt_buf_lock", check_sockopt_buf_lock),
    ("memfd_hugetlb", check_memfd_hugetlb),
    ("move_mount_set_group", check_move_mount_set_group),
    ("openat2", check_openat2),
    ("get_rseq_conf", check_ptrace_get_rseq_conf),
    ("ipv6_freebind", check_ipv6_freebind),
    ("pagemap_scan", check_pagemap_scan),
    ("overlayfs_maps", check_overlayfs_maps),
    ("timer_cr_ids", check_timer_cr_ids),
    ("pagemap_scan_guard_pages", check_pagemap_scan_guard_pages),
];

/// Category 3.
const CATEGORY3: &[(&str, Check)] = &[("autofs", check_autofs), ("compat_cr", check_compat_cr)];

/// The names `--feature` accepts (besides "list").
pub fn feature_names() -> impl Iterator<Item = &'static str> {
    FEATURES.iter().map(|f| f.name)
}

fn find_feature(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.name == name)
}

/// `criu check`: the exit code.
pub fn run(opts: &Opts) -> anyhow::Result<i32> {
    if !opts.check_features.is_empty() {
        return Ok(run_features(&opts.check_features));
    }

    for (name, check) in CATEGORY1 {
        tracing::debug!("Checking {name}");
        if !check() {
            tracing::warn!("{CHECK_BAD}");
            return Ok(1);
        }
    }

    let mut missing = false;
    if opts.check_extra_features {
        for (name, check) in CATEGORY2 {
            tracing::debug!("Checking {name}");
            missing |= !check();
        }
        if apparmor_is_lsm() {
            missing |= !check_apparmor_stacking();
        }
    }
    if opts.check_experimental_features {
        for (name, check) in CATEGORY3 {
            tracing::debug!("Checking {name}");
            missing |= !check();
        }
    }
    msg(if missing { CHECK_MAYBE } else { CHECK_GOOD });
    Ok(if missing { 1 } else { 0 })
}

/// `--feature NAME...`: names are validated in order ("list" prints the
/// names and stops there), then each named feature is checked.
fn run_features(names: &[String]) -> i32 {
    let mut picked = Vec::new();
    for name in names {
        if name == "list" {
            msg(&feature_names().collect::<Vec<_>>().join(" "));
            return 0;
        }
        match find_feature(name) {
            Some(feat) => picked.push(feat),
            None => {
                tracing::error!("Unknown feature {name}");
                return 1;
            }
        }
    }
    let mut code = 0;
    for feat in picked {
        tracing::debug!("Checking {}", feat.name);
        if (feat.check)() {
            msg(&format!("{} is supported", feat.name));
        } else {
            code = 1;
        }
    }
    code
}

// ---------------------------------------------------------------------------
// Reporting helpers
// ---------------------------------------------------------------------------

fn report_error(e: &ProbeError) {
    for line in e.to_string().lines() {
        tracing::error!("{line}");
    }
}

/// An error-level check: Ok passes, Err is printed as an error.
fn err_check<T>(r: Result<T, ProbeError>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => {
            report_error(&e);
            false
        }
    }
}

/// A yes/no probe: a broken probe is printed as an error, "no" runs
/// `missing` (CRIU's message for it, if any).
fn flag_check(r: Result<bool, ProbeError>, missing: impl FnOnce()) -> bool {
    match r {
        Ok(true) => true,
        Ok(false) => {
            missing();
            false
        }
        Err(e) => {
            report_error(&e);
            false
        }
    }
}

/// A "no" CRIU reports at info level only (silent by default).
fn quiet(what: &'static str) -> impl FnOnce() {
    move || tracing::info!("{what}")
}

// ---------------------------------------------------------------------------
// Category 1
// ---------------------------------------------------------------------------

fn check_pagemap() -> bool {
    match mem::probe_pagemap() {
        Ok(mem::PagemapMode::Disabled) => {
            tracing::info!("Pagemap disabled");
            true
        }
        Ok(mode) => {
            tracing::info!("Pagemap mode: {mode:?}");
            true
        }
        Err(e) => err_check::<()>(Err(e)),
    }
}

fn check_map_files() -> bool {
    err_check(task::probe_map_files())
}

fn check_sock_diag() -> bool {
    let report = match net::probe_sock_diag() {
        Ok(r) => r,
        Err(e) => return err_check::<()>(Err(e)),
    };
    let mut uncollected = false;
    for (kind, r) in &report {
        let (fam, proto) = kind.names();
        match r {
            Ok(n) => tracing::info!("Sockets collect procedure family {fam} proto {proto}: OK ({n})"),
            // Module not there (raw diag is optional), or an old kernel
            // without unix/packet/netlink diag.
            Err(e)
                if *e == Errno::ENOENT
                    || (*e == Errno::EINVAL
                        && matches!(kind.family as i32, libc::AF_UNIX | libc::AF_PACKET | libc::AF_NETLINK)) =>
            {
                tracing::debug!("Sockets collect procedure family {fam} proto {proto}: {}", -(*e as i32));
                uncollected |= !kind.is_raw();
            }
            Err(e) => {
                tracing::error!("Sockets collect procedure family {fam} proto {proto}: {}: {}", -(*e as i32), e.desc());
                uncollected = true;
            }
        }
    }
    if uncollected {
        // As CRIU: criu's own netns is not dumped, so this only fails a
        // dump that really meets such a socket.
        tracing::info!("Uncollected sockets! Will probably fail later.");
    }
    true
}

fn check_ns_last_pid() -> bool {
    err_check(task::probe_ns_last_pid())
}

fn check_sock_peek_off() -> bool {
    match net::probe_sock_peek_off() {
        Ok(()) => true,
        Err(e) => {
            msg(&e.to_string());
            false
        }
    }
}

fn check_kcmp() -> bool {
    err_check(task::probe_kcmp())
}

fn check_prctl_cat1() -> bool {
    if !err_check(task::probe_tid_address()) {
        return false;
    }
    match task::probe_mm_map_size() {
        Ok(size) => {
            tracing::debug!("prctl: struct prctl_mm_map is {size} bytes");
            true
        }
        Err(e) => {
            // Kernels before 3.18: CRIU falls back to per-field PR_SET_MM,
            // which needs CAP_SYS_RESOURCE; we only restore through the map.
            msg("Info  prctl: PR_SET_MM_MAP_SIZE is not supported");
            report_error(&e);
            false
        }
    }
}

fn check_fcntl() -> bool {
    err_check(task::probe_fcntl_owner_uids())
}

fn check_proc_stat() -> bool {
    match task::probe_proc_stat() {
        Ok(()) => true,
        Err(e) => {
            msg(&e.to_string());
            false
        }
    }
}

fn check_tcp() -> bool {
    err_check(net::probe_tcp_repair())
}

fn check_fdinfo_ext() -> bool {
    let errs = files::probe_fdinfo_ext();
    for e in &errs {
        report_error(e);
    }
    if errs.is_empty() {
        tracing::info!("Eventfd, epoll, signalfd and inotify fdinfo work OK");
    }
    errs.is_empty()
}

fn check_unaligned_vmsplice() -> bool {
    let ok = err_check(files::probe_unaligned_vmsplice());
    if ok {
        tracing::info!("Unaligned vmsplice works OK");
    }
    ok
}

fn check_tty() -> bool {
    err_check(files::probe_tty())
}

fn check_so_gets() -> bool {
    err_check(net::probe_so_gets())
}

fn check_ipc() -> bool {
    // As CRIU 4.x: non-root users can't pass access() here even with
    // CAP_CHECKPOINT_RESTORE, so only root is checked.
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    err_check(task::probe_ipc())
}

fn check_sigqueuinfo() -> bool {
    err_check(task::probe_sigqueueinfo())
}

fn check_ptrace_seize() -> bool {
    err_check(task::probe_ptrace_seize())
}

fn check_ptrace_peeksiginfo() -> bool {
    err_check(task::probe_ptrace_peeksiginfo())
}

fn check_special_mapping_mremap() -> bool {
    err_check(mem::probe_special_mapping_mremap())
}

// ---------------------------------------------------------------------------
// Category 2 and named features
// ---------------------------------------------------------------------------

fn check_prctl_cat2() -> bool {
    match task::probe_mm_map_size() {
        Ok(_) => true,
        Err(_) => {
            tracing::warn!("prctl: PR_SET_MM_MAP_SIZE is not supported");
            false
        }
    }
}

fn check_seccomp_suspend() -> bool {
    err_check(task::probe_seccomp_suspend())
}

fn check_seccomp_filters() -> bool {
    err_check(task::probe_seccomp_filters())
}

/// CRIU needs soft-dirty bits here; we also accept PAGEMAP_SCAN with
/// asynchronous userfaultfd write-protect, which tracks the same thing on
/// kernels built without CONFIG_MEM_SOFT_DIRTY.
fn check_mem_dirty_track() -> bool {
    let soft = mem::probe_soft_dirty().unwrap_or_else(|e| {
        tracing::debug!("{e}");
        false
    });
    if soft {
        tracing::info!("Dirty track supported on kernel");
        return true;
    }
    tracing::info!("Dirty tracking support is OFF");
    let scan = mem::probe_pagemap_scan().unwrap_or(false);
    match mem::probe_uffd_wp_async_tracking() {
        Ok(true) if scan => {
            tracing::info!("Memory changes are tracked with PAGEMAP_SCAN and userfaultfd write-protect");
            true
        }
        r => {
            if let Err(e) = r {
                tracing::debug!("{e}");
            }
            tracing::warn!("Dirty tracking is OFF. Memory snapshot will not work.");
            false
        }
    }
}

fn check_posix_timers() -> bool {
    match task::probe_posix_timers() {
        Ok(()) => true,
        Err(e) => {
            msg(&e.to_string());
            false
        }
    }
}

/// `--feature tun`: no tun at all is an error here.
fn check_tun() -> bool {
    match files::probe_tun() {
        Ok(()) => true,
        Err(files::TunError::NoDevice(e) | files::TunError::NoSupport(e)) => {
            report_error(&e);
            false
        }
    }
}

/// The `--extra` tun check: C/R works without tun, just not of tun.
fn check_tun_cr_optional() -> bool {
    match files::probe_tun() {
        Ok(()) => true,
        Err(files::TunError::NoDevice(e)) => {
            report_error(&e);
            true
        }
        Err(files::TunError::NoSupport(e)) => {
            report_error(&e);
            false
        }
    }
}

fn check_tun_netns() -> bool {
    flag_check(files::probe_tun_netns(), || tracing::warn!("Unable to get tun network namespace"))
}

fn check_timerfd() -> bool {
    err_check(files::probe_timerfd())
}

fn check_mnt_id() -> bool {
    err_check(files::probe_mnt_id())
}

fn check_aio_remap() -> bool {
    err_check(mem::probe_aio_remap())
}

fn check_fdinfo_lock() -> bool {
    flag_check(files::probe_fdinfo_lock(), || tracing::error!("fdinfo doesn't contain the lock field"))
}

fn check_clone_parent_vs_pid() -> bool {
    flag_check(task::probe_clone_parent_vs_pid(), || tracing::error!("CLONE_PARENT | CLONE_NEWPID don't work together"))
}

fn check_cgroupns() -> bool {
    err_check(task::probe_cgroupns())
}

fn check_tcp_window() -> bool {
    flag_check(net::probe_tcp_repair_window(), || tracing::error!("The TCP_REPAIR_WINDOW option isn't supported."))
}

fn check_tcp_half_closed() -> bool {
    flag_check(net::probe_tcp_half_closed(), || tracing::error!("TCP_REPAIR can't be enabled for half-closed sockets"))
}

fn check_userns() -> bool {
    err_check(task::probe_userns())
}

fn check_loginuid() -> bool {
    match task::probe_loginuid() {
        Ok(task::Loginuid::Full) => true,
        Ok(_) => {
            tracing::warn!("Loginuid restore is OFF.");
            false
        }
        Err(e) => err_check::<()>(Err(e)),
    }
}

fn check_can_map_vdso() -> bool {
    flag_check(mem::probe_can_map_vdso(), || {
        tracing::warn!("Do not have API to map vDSO - will use mremap() to restore vDSO")
    })
}

fn check_uffd() -> bool {
    flag_check(mem::probe_uffd(), || tracing::error!("UFFD is not supported"))
}

fn check_uffd_noncoop() -> bool {
    if !check_uffd() {
        return false;
    }
    flag_check(mem::probe_uffd_noncoop(), || tracing::error!("Non-cooperative UFFD is not supported"))
}

fn check_sk_netns() -> bool {
    flag_check(net::probe_sk_ns(), || tracing::warn!("Unable to get socket network namespace"))
}

fn check_sk_unix_file() -> bool {
    flag_check(net::probe_sk_unix_file(), quiet("SIOCUNIXFILE isn't supported"))
}

fn check_net_diag_raw() -> bool {
    flag_check(net::probe_net_diag_raw(), quiet("Raw sockets can't be collected via sock_diag"))
}

fn check_nsid() -> bool {
    flag_check(net::probe_nsid(), || tracing::warn!("NSID isn't supported"))
}

fn check_link_nsid() -> bool {
    flag_check(net::probe_link_nsid(), || tracing::warn!("NSID isn't supported"))
}

fn check_kcmp_epoll() -> bool {
    flag_check(task::probe_kcmp_epoll_tfd(), quiet("kcmp(KCMP_EPOLL_TFD) isn't supported"))
}

fn check_time_namespace() -> bool {
    flag_check(task::probe_timens(), || tracing::error!("Time namespaces are not supported"))
}

/// Not a kernel check: tells users this version handles external network
/// namespaces.
fn check_external_net_ns() -> bool {
    true
}

fn check_clone3_set_tid() -> bool {
    flag_check(task::probe_clone3_set_tid(), || tracing::warn!("clone3() with set_tid not supported"))
}

fn check_newifindex() -> bool {
    flag_check(net::probe_newifindex(), || tracing::error!("IFLA_NEW_IFINDEX isn't supported"))
}

/// Like a CRIU built without libnftables: nftables rules are not dumped.
fn check_nftables_cr() -> bool {
    tracing::warn!("CRIU was built without nftables support - nftables rules will not be preserved during C/R");
    false
}

fn check_ipt_legacy() -> bool {
    let Some(bin) = net::find_legacy_iptables(false) else {
        tracing::warn!("Couldn't find iptables version which is using iptables legacy API");
        return false;
    };
    tracing::info!("iptables cmd: {}", bin.display());
    if !net::has_ipv6() {
        return true;
    }
    let Some(bin6) = net::find_legacy_iptables(true) else {
        tracing::warn!("Couldn't find ip6tables version which is using iptables legacy API");
        return false;
    };
    tracing::info!("ip6tables cmd: {}", bin6.display());
    true
}

fn check_pidfd_store() -> bool {
    if !flag_check(task::probe_pidfd_open(), || {
        tracing::warn!("Pidfd store requires pidfd_open syscall which is not supported")
    }) {
        return false;
    }
    flag_check(task::probe_pidfd_getfd(), || {
        tracing::warn!("Pidfd store requires pidfd_getfd syscall which is not supported")
    })
}

fn check_ns_pid() -> bool {
    flag_check(task::probe_nspid(), quiet("No NSpid: line in /proc/PID/status"))
}

fn apparmor_is_lsm() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm").is_ok_and(|l| l.split(',').any(|m| m.trim() == "apparmor"))
}

/// AppArmor namespace (stacking) dumping is not implemented here, so this
/// is never supported.
fn check_apparmor_stacking() -> bool {
    tracing::info!("AppArmor namespace dumping is not supported");
    false
}

/// Network locking with nftables: `nft` runs and the kernel takes the
/// lock's table with its concatenated sets (a dry run, nothing applied).
fn check_network_lock_nftables() -> bool {
    let ok = crate::net::lock::nftables_usable();
    if !ok {
        tracing::warn!("Nftables based locking requires nft and set concatenations support");
    }
    ok
}

fn check_sockopt_buf_lock() -> bool {
    flag_check(net::probe_sockopt_buf_lock(), quiet("SO_BUF_LOCK isn't supported"))
}

fn check_memfd_hugetlb() -> bool {
    flag_check(mem::probe_memfd_hugetlb(), quiet("memfd_create(MFD_HUGETLB) isn't supported"))
}

fn check_move_mount_set_group() -> bool {
    flag_check(files::probe_move_mount_set_group(), quiet("No MOVE_MOUNT_SET_GROUP kernel feature"))
}

fn check_openat2() -> bool {
    flag_check(files::probe_openat2(), quiet("No openat2 syscall support"))
}

fn check_ptrace_get_rseq_conf() -> bool {
    flag_check(task::probe_ptrace_get_rseq_conf_supported(), || {
        tracing::warn!(
            "ptrace(PTRACE_GET_RSEQ_CONFIGURATION) isn't supported. C/R of processes which are using rseq() won't work."
        )
    })
}

fn check_ipv6_freebind() -> bool {
    flag_check(net::probe_ipv6_freebind(), quiet("IPV6_FREEBIND isn't supported"))
}

fn check_pagemap_scan() -> bool {
    flag_check(mem::probe_pagemap_scan(), quiet("PAGEMAP_SCAN isn't supported"))
}

fn check_timer_cr_ids() -> bool {
    flag_check(task::probe_timer_cr_ids(), quiet("PR_TIMER_CREATE_RESTORE_IDS isn't supported"))
}

fn check_overlayfs_maps() -> bool {
    err_check(files::probe_overlayfs_maps())
}

fn check_pagemap_scan_guard_pages() -> bool {
    let guard_pages = mem::probe_pagemap_scan_guard_pages();
    if matches!(guard_pages, Ok(false)) && mem::probe_madv_guard().unwrap_or(false) {
        tracing::warn!(
            "ioctl(PAGEMAP_SCAN) doesn't support PAGE_IS_GUARD flag. CRIU dump will fail if dumped processes use \
             madvise(MADV_GUARD_INSTALL). Please, consider updating your kernel."
        );
    }
    flag_check(guard_pages, quiet("PAGEMAP_SCAN doesn't report guard pages"))
}

fn check_binfmt_misc_sandboxing() -> bool {
    flag_check(files::probe_binfmt_misc_sandboxing(), quiet("binfmt_misc sandboxing isn't supported"))
}

// ---------------------------------------------------------------------------
// Category 3
// ---------------------------------------------------------------------------

fn check_autofs() -> bool {
    err_check(files::probe_autofs())
}

/// 32-bit (compat) tasks can't be dumped or restored by this
/// implementation, whatever the kernel offers.
fn check_compat_cr() -> bool {
    let kernel = kerndat::mem::probe_can_map_vdso().unwrap_or(false);
    tracing::debug!("kernel has the compat vDSO API: {kernel}");
    tracing::warn!("CRIU built without CONFIG_COMPAT - can't C/R compatible tasks");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_are_unique_and_include_the_required_ones() {
        let names: Vec<_> = feature_names().collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for want in [
            "mem_dirty_track",
            "uffd",
            "uffd-noncoop",
            "pidfd_store",
            "ns_pid",
            "clone3_set_tid",
            "pagemap_scan",
            "timens",
            "get_rseq_conf",
            "openat2",
            "kcmp_epoll",
            "move_mount_set_group",
            "memfd_hugetlb",
            "tun",
            "userns",
            "fdinfo_lock",
            "seccomp_suspend",
            "seccomp_filters",
            "autofs",
            "compat_cr",
            "sk_unix_file",
            "nsid",
        ] {
            assert!(names.contains(&want), "{want}");
        }
        assert!(!names.contains(&"list"));
    }

    #[test]
    fn every_category_check_is_a_known_probe() {
        // Categories 2/3 reuse the feature checks where CRIU does.
        for (name, _) in CATEGORY2.iter().chain(CATEGORY3) {
            let known = find_feature(name).is_some()
                || matches!(*name, "prctl_cat2" | "posix_timers" | "clone_parent_vs_pid" | "tcp_window");
            assert!(known, "{name}");
        }
    }

    #[test]
    fn unknown_and_list_features() {
        assert_eq!(run_features(&["no_such_feature".to_string()]), 1);
        assert_eq!(run_features(&["list".to_string()]), 0);
        assert_eq!(run_features(&["no_such_feature".to_string(), "list".to_string()]), 1);
    }

    #[test]
    fn required_features_are_supported_here() {
        for name in
            ["mem_dirty_track", "uffd", "uffd-noncoop", "pidfd_store", "ns_pid", "clone3_set_tid", "pagemap_scan"]
        {
            assert!((find_feature(name).unwrap().check)(), "{name}");
        }
    }
}
