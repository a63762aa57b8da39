//! `criu_opts` onto [`Opts`], in the order CRIU's setup_opts_from_req
//! applies them: each field that has a command-line twin goes through
//! [`Opts::apply`] with that option's table row, so an option we do not
//! support yet fails the request exactly as it fails the command line;
//! then `config_file` is applied over the RPC options; then the images
//! dir, work dir and log are set up. Fds the client names (images_dir_fd,
//! work_dir_fd, status_fd) are opened through `/proc/<peer>/fd/<n>`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use crate::cli::table::{self, ArgKind};
use crate::cli::Item;
use crate::opts::Opts;

use super::pb::CriuOpts;
use super::ReqError;

/// What the request is for (what CRIU keeps in opts.mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Dump,
    Restore,
    Check,
    /// CPUINFO_DUMP / CPUINFO_CHECK.
    Cpuinfo,
}

/// Who sent the request.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// SO_PEERCRED pid: whose fd table the fd options refer to.
    pub pid: i32,
    /// A `criu service` connection rather than a `criu swrk` socketpair.
    pub standalone: bool,
}

/// The options of one request, ready to run.
pub struct Setup {
    pub opts: Opts,
    /// `notify_scripts`: stages become NOTIFY messages.
    pub notify: bool,
    /// Descriptors opened from the client's table, kept open for the request.
    pub keep: Vec<OwnedFd>,
}

struct Builder {
    opts: Opts,
    unsupported: Vec<String>,
}

fn bad(msg: impl Into<String>) -> ReqError {
    ReqError::Bad(msg.into())
}

impl Builder {
    /// Apply `--long[=value]` (or `--no-long`) on behalf of RPC field `field`.
    fn apply(&mut self, field: &str, long: &str, negated: bool, value: Option<String>) -> Result<(), ReqError> {
        let spec = table::find(long).ok_or_else(|| bad(format!("internal: no option --{long} for RPC field {field}")))?;
        let item = Item::long(spec, negated, value);
        let before = self.opts.unsupported.len();
        self.opts.apply(&item).map_err(|e| bad(format!("RPC option {field}: {e}")))?;
        // What apply refused (the option, or one value of it: --external).
        let refused: Vec<String> = self.opts.unsupported.drain(before..).collect();
        for r in refused {
            self.unsupported.push(format!("{field} ({r})"));
        }
        Ok(())
    }

    fn val(&mut self, field: &str, long: &str, v: Option<impl ToString>) -> Result<(), ReqError> {
        match v {
            Some(v) => self.apply(field, long, false, Some(v.to_string())),
            None => Ok(()),
        }
    }

    fn each<T>(&mut self, field: &str, long: &str, items: &[T], f: impl Fn(&T) -> String) -> Result<(), ReqError> {
        items.iter().try_for_each(|i| self.apply(field, long, false, Some(f(i))))
    }

    /// A boolean field: true sets the option; false is `--no-X` for a
    /// `--X`/`--no-X` option and the default otherwise.
    fn flag(&mut self, field: &str, long: &str, v: Option<bool>) -> Result<(), ReqError> {
        let kind = table::find(long).map(|s| s.kind);
        match v {
            Some(true) => self.apply(field, long, false, None),
            Some(false) if kind == Some(ArgKind::Bool) => self.apply(field, long, true, None),
            _ => Ok(()),
        }
    }

    /// A field with no command-line twin that we cannot honour yet.
    fn refuse(&mut self, field: &str, set: bool) {
        if set {
            self.unsupported.push(field.to_string());
        }
    }
}

fn peer_fd(peer: Peer, fd: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{}/fd/{fd}", peer.pid))
}

fn peer_dir(peer: Peer, field: &str, fd: i32) -> Result<PathBuf, ReqError> {
    let p = peer_fd(peer, fd);
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => Ok(p),
        Ok(_) => Err(bad(format!("{field} {fd} is not a directory in the RPC client (pid {})", peer.pid))),
        Err(e) => Err(bad(format!("{field} {fd} is not an open directory in the RPC client (pid {}): {e}", peer.pid))),
    }
}

/// Fields applied in CRIU's order, before `config_file`.
fn apply_fields(b: &mut Builder, r: &CriuOpts, peer: Peer, mode: Mode) -> Result<(), ReqError> {
    b.flag("unprivileged", "unprivileged", r.unprivileged)?;
    if r.leave_running == Some(true) {
        b.apply("leave_running", "leave-running", false, None)?;
    }
    if r.leave_stopped == Some(true) {
        b.apply("leave_stopped", "leave-stopped", false, None)?;
    }
    if mode == Mode::Dump {
        let pid = r.pid.unwrap_or(peer.pid);
        b.apply("pid", "tree", false, Some(pid.to_string()))?;
    }
    if r.ext_unix_sk == Some(true) {
        let inos: Vec<String> = r.unix_sk_ino.iter().map(|u| u.inode.to_string()).collect();
        b.apply("ext_unix_sk", "ext-unix-sk", false, (!inos.is_empty()).then(|| inos.join(",")))?;
    }
    b.val("root", "root", r.root.as_ref())?;
    if let Some(sib) = r.rst_sibling {
        if peer.standalone {
            return Err(bad("rst_sibling is not allowed in standalone service (use criu swrk)"));
        }
        b.flag("rst_sibling", "restore-sibling", Some(sib))?;
    }
    for (field, long, v) in [
        ("tcp_established", "tcp-established", r.tcp_established),
        ("tcp_skip_in_flight", "skip-in-flight", r.tcp_skip_in_flight),
        ("tcp_close", "tcp-close", r.tcp_close),
        ("weak_sysctls", "weak-sysctls", r.weak_sysctls),
        ("evasive_devices", "evasive-devices", r.evasive_devices),
        ("shell_job", "shell-job", r.shell_job),
        ("skip_file_rwx_check", "skip-file-rwx-check", r.skip_file_rwx_check),
        ("file_locks", "file-locks", r.file_locks),
        ("track_mem", "track-mem", r.track_mem),
        ("link_remap", "link-remap", r.link_remap),
        ("auto_dedup", "auto-dedup", r.auto_dedup),
        ("force_irmap", "force-irmap", r.force_irmap),
        ("lazy_pages", "lazy-pages", r.lazy_pages),
    ] {
        b.flag(field, long, v)?;
    }
    if !r.exec_cmd.is_empty() {
        b.apply("exec_cmd", "exec-cmd", false, None)?;
    }
    match r.pre_dump_mode {
        None => {}
        Some(1) => b.apply("pre_dump_mode", "pre-dump-mode", false, Some("splice".into()))?,
        Some(2) => b.apply("pre_dump_mode", "pre-dump-mode", false, Some("read".into()))?,
        Some(m) => return Err(bad(format!("RPC option pre_dump_mode: unknown mode {m}"))),
    }
    match r.network_lock {
        None => {}
        Some(m @ 1..=3) => {
            let name = ["iptables", "nftables", "skip"][(m - 1) as usize];
            b.apply("network_lock", "network-lock", false, Some(name.into()))?
        }
        Some(m) => return Err(bad(format!("RPC option network_lock: unknown method {m}"))),
    }
    if let Some(ps) = &r.ps {
        if let Some(port) = ps.port {
            b.apply("ps.port", "port", false, Some(port.to_string()))?;
        }
        b.val("ps.address", "address", ps.address.as_ref())?;
        if !b.opts.lazy_pages {
            b.apply("ps", "page-server", false, None)?;
            if let Some(fd) = ps.fd {
                if peer.standalone {
                    return Err(bad("ps.fd is not allowed in standalone service (use criu swrk)"));
                }
                b.apply("ps.fd", "ps-socket", false, Some(fd.to_string()))?;
            }
        }
    }
    b.each("veths", "veth-pair", &r.veths, |v| format!("{}={}", v.if_in, v.if_out))?;
    b.each("ext_mnt", "ext-mount-map", &r.ext_mnt, |m| format!("{}:{}", m.key, m.val))?;
    b.each("join_ns", "join-ns", &r.join_ns, |j| match &j.extra_opt {
        Some(x) => format!("{}:{},{x}", j.ns, j.ns_file),
        None => format!("{}:{}", j.ns, j.ns_file),
    })?;
    if !r.inherit_fd.is_empty() && peer.standalone {
        return Err(bad("inherit_fd is not allowed in standalone service (use criu swrk)"));
    }
    b.each("inherit_fd", "inherit-fd", &r.inherit_fd, |i| format!("fd[{}]:{}", i.fd, i.key))?;
    b.each("external", "external", &r.external, |e| e.clone())?;
    b.each("cg_root", "cgroup-root", &r.cg_root, |c| match &c.ctrl {
        Some(ctl) => format!("{ctl}:{}", c.path),
        None => c.path.clone(),
    })?;
    b.each("enable_fs", "enable-fs", &r.enable_fs, |f| f.clone())?;
    b.each("skip_mnt", "skip-mnt", &r.skip_mnt, |m| m.clone())?;
    if let Some(caps) = r.cpu_cap {
        b.apply("cpu_cap", "cpu-cap", false, None)?;
        b.opts.cpu_cap = caps | crate::opts::cpu_cap::IMAGE;
    }
    if let Some(m) = r.manage_cgroups {
        b.apply("manage_cgroups", "manage-cgroups", false, Some(if m { "soft" } else { "ignore" }.into()))?;
    }
    if let Some(m) = r.manage_cgroups_mode {
        let name = match m {
            0 => "ignore",
            1 => "none",
            2 => "props",
            3 => "soft",
            4 => "full",
            5 => "strict",
            6 => "soft",
            m => return Err(bad(format!("RPC option manage_cgroups_mode: unknown mode {m}"))),
        };
        b.apply("manage_cgroups_mode", "manage-cgroups", false, Some(name.into()))?;
    }
    b.val("freeze_cgroup", "freeze-cgroup", r.freeze_cgroup.as_ref())?;
    b.val("lsm_profile", "lsm-profile", r.lsm_profile.as_ref())?;
    b.val("lsm_mount_context", "lsm-mount-context", r.lsm_mount_context.as_ref())?;
    b.val("timeout", "timeout", r.timeout)?;
    b.val("cgroup_props", "cgroup-props", r.cgroup_props.as_ref())?;
    b.val("cgroup_props_file", "cgroup-props-file", r.cgroup_props_file.as_ref())?;
    b.each("cgroup_dump_controller", "cgroup-dump-controller", &r.cgroup_dump_controller, |c| c.clone())?;
    b.val("cgroup_yard", "cgroup-yard", r.cgroup_yard.as_ref())?;
    b.val("tls_cacert", "tls-cacert", r.tls_cacert.as_ref())?;
    b.val("tls_cacrl", "tls-cacrl", r.tls_cacrl.as_ref())?;
    b.val("tls_cert", "tls-cert", r.tls_cert.as_ref())?;
    b.val("tls_key", "tls-key", r.tls_key.as_ref())?;
    b.flag("tls", "tls", r.tls.filter(|t| *t))?;
    b.flag("tls_no_cn_verify", "tls-no-cn-verify", r.tls_no_cn_verify)?;
    if r.auto_ext_mnt == Some(true) {
        b.apply("auto_ext_mnt", "ext-mount-map", false, Some("auto".into()))?;
    }
    b.flag("ext_sharing", "enable-external-sharing", r.ext_sharing)?;
    b.flag("ext_masters", "enable-external-masters", r.ext_masters)?;
    b.val("ghost_limit", "ghost-limit", r.ghost_limit)?;
    if let Some(ns) = r.empty_ns {
        if ns & !(libc::CLONE_NEWNET as u32) != 0 {
            return Err(bad(format!("RPC option empty_ns: {ns:#x} has bits other than CLONE_NEWNET")));
        }
        if ns != 0 {
            b.apply("empty_ns", "empty-ns", false, Some("net".into()))?;
        }
    }
    // orphan_pts_master (runc, on every request): a pty slave whose master
    // is outside the tree is refused by name at dump (without shell_job),
    // so no image of ours needs a new master on restore.
    b.refuse("pidfd_store_sk", r.pidfd_store_sk.is_some());
    b.flag("display_stats", "display-stats", r.display_stats)?;
    b.each("irmap_scan_paths", "irmap-scan-path", &r.irmap_scan_paths, |p| p.clone())?;
    b.flag("mntns_compat_mode", "mntns-compat-mode", r.mntns_compat_mode.filter(|m| *m))?;
    Ok(())
}

/// `config_file`: applied over the RPC options. Its images-dir, work-dir
/// and log-file win over the request's; otherwise the request's stand.
struct ConfigOverrides {
    imgs_dir: bool,
    work_dir: bool,
    output: bool,
}

fn apply_config_file(b: &mut Builder, path: &str) -> Result<ConfigOverrides, ReqError> {
    // CRIU fopen()s the file and reads it as options when it opens; when it
    // does not (missing, unreadable), the request goes on without it. runc
    // and Podman name /etc/criu/runc.conf in every request, usually absent.
    let text = match std::fs::read(path) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) => {
            if e.kind() == std::io::ErrorKind::NotFound {
                tracing::debug!("RPC config_file {path} does not exist; going on without it");
            } else {
                tracing::warn!("can't read RPC config_file {path} ({e}); going on without it, as CRIU");
            }
            String::new()
        }
    };
    let items = crate::config::parse_config_text(path, &text).map_err(|e| bad(e.to_string()))?;
    let (out, work) = (b.opts.output.take(), b.opts.work_dir.take());
    b.opts.imgs_dir = None;
    for item in &items {
        let before = b.opts.unsupported.len();
        b.opts.apply(item).map_err(|e| bad(format!("config file {path}: {e}")))?;
        let refused: Vec<String> = b.opts.unsupported.drain(before..).collect();
        for r in refused {
            b.unsupported.push(format!("{r} (config file {path})"));
        }
    }
    let o = ConfigOverrides { imgs_dir: b.opts.imgs_dir.is_some(), work_dir: b.opts.work_dir.is_some(), output: b.opts.output.is_some() };
    if !o.output {
        b.opts.output = out;
    }
    if !o.work_dir {
        b.opts.work_dir = work;
    }
    Ok(o)
}

/// Build the options of one request and set up its images dir, work dir
/// (criu's cwd, as CRIU) and log.
pub fn setup(base: &Opts, req: Option<&CriuOpts>, peer: Peer, mode: Mode) -> Result<Setup, ReqError> {
    let mut b = Builder { opts: base.clone(), unsupported: Vec::new() };
    b.opts.unsupported.clear();
    let mut keep = Vec::new();
    let default = CriuOpts::default();
    let r = req.unwrap_or(&default);
    if mode == Mode::Restore {
        // CRIU restores under the service task, detached, always.
        b.opts.restore_detach = true;
    }
    if mode == Mode::Check && (r.log_file.is_none() || r.log_to_stderr == Some(true)) {
        b.opts.output = None;
        b.opts.log_level = r.log_level.unwrap_or(crate::opts::DEFAULT_LOGLEVEL);
        return finish(b, keep, false);
    }
    if mode != Mode::Check {
        apply_fields(&mut b, r, peer, mode)?;
        if let Some(fd) = r.status_fd {
            tracing::warn!("status_fd is obsoleted; use status-ready notification instead");
            let p = peer_fd(peer, fd);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|e| bad(format!("can't reopen status_fd {fd} of the RPC client ({}): {e}", p.display())))?;
            let f = OwnedFd::from(f);
            b.apply("status_fd", "status-fd", false, Some(f.as_raw_fd().to_string()))?;
            keep.push(f);
        }
    }
    let conf = match &r.config_file {
        Some(path) => apply_config_file(&mut b, path)?,
        None => ConfigOverrides { imgs_dir: false, work_dir: false, output: false },
    };

    // Images dir: the RPC config file's, else images_dir_fd, else images_dir.
    let imgs: Option<PathBuf> = if conf.imgs_dir {
        b.opts.imgs_dir.clone()
    } else if r.images_dir_fd != -1 {
        Some(peer_dir(peer, "images_dir_fd", r.images_dir_fd)?)
    } else if let Some(d) = &r.images_dir {
        Some(PathBuf::from(d))
    } else if mode == Mode::Check {
        None
    } else {
        return Err(bad("Neither images_dir_fd nor images_dir was passed by RPC client"));
    };
    if let Some(d) = imgs.as_ref().filter(|d| mode != Mode::Check && !d.is_dir()) {
        return Err(bad(format!("images directory {} does not exist or is not a directory", d.display())));
    }
    b.opts.imgs_dir = imgs.clone();
    if let Some(p) = &r.parent_img {
        b.apply("parent_img", "prev-images-dir", false, Some(p.clone()))?;
    }
    let work = if conf.work_dir {
        b.opts.work_dir.clone()
    } else if let Some(fd) = r.work_dir_fd {
        Some(peer_dir(peer, "work_dir_fd", fd)?)
    } else {
        b.opts.work_dir.clone().or(imgs)
    };
    let Some(work) = work else { return Err(bad("images-dir or work-dir is required when using log file")) };
    std::env::set_current_dir(&work).map_err(|e| bad(format!("can't chdir to the work dir {}: {e}", work.display())))?;
    b.opts.work_dir = Some(work);

    // Log: log_file (a plain name in the work dir), or stderr, or criu.log.
    match (&r.log_file, r.log_to_stderr) {
        (Some(f), _) if !conf.output => {
            if f.contains('/') {
                return Err(bad(format!("RPC option log_file {f:?}: no subdirs are allowed in log_file name")));
            }
            b.opts.output = Some(f.clone());
        }
        (None, Some(true)) if !conf.output => b.opts.output = None,
        _ if b.opts.output.is_none() => b.opts.output = Some("criu.log".into()),
        _ => {}
    }
    b.opts.log_level = r.log_level.unwrap_or(crate::opts::DEFAULT_LOGLEVEL);
    let notify = r.notify_scripts == Some(true);
    finish(b, keep, notify)
}

fn finish(mut b: Builder, keep: Vec<OwnedFd>, notify: bool) -> Result<Setup, ReqError> {
    crate::log::init(&b.opts).map_err(|e| bad(format!("can't open the log: {e}")))?;
    if !b.unsupported.is_empty() {
        let list = b.unsupported.join(", ");
        return Err(bad(format!("RPC option(s) not supported yet: {list}")));
    }
    b.opts.check().map_err(|e| bad(e.to_string()))?;
    b.opts.unsupported.clear();
    Ok(Setup { opts: b.opts, notify, keep })
}
