//! `Opts`: the one options structure every source fills (config files, the
//! command line, and later RPC requests), and the semantics of each option
//! (what CRIU's `parse_options` switch does), in one place.

use std::path::PathBuf;

use crate::cli::table::Support;
use crate::cli::Item;

/// What happens to the dumped tree after a successful dump.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FinalState {
    #[default]
    Dead,
    Alive,
    Stopped,
}

/// `--manage-cgroups` modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgMode {
    Ignore,
    None,
    Props,
    #[default]
    Soft,
    Full,
    Strict,
}

/// CPU capability bits of `--cpu-cap` (CRIU's values).
pub mod cpu_cap {
    pub const NONE: u32 = 0;
    pub const FPU: u32 = 1;
    pub const CPU: u32 = 2;
    pub const INS: u32 = 4;
    /// Write cpuinfo.img on dump, check it on restore.
    pub const IMAGE: u32 = 1 << 3;
    pub const ALL: u32 = FPU | CPU | INS;
    pub const DEFAULT: u32 = FPU | INS;
}

/// CRIU's default log level (errors and warnings).
pub const DEFAULT_LOGLEVEL: i32 = 2;
/// CRIU's default --timeout, seconds.
pub const DEFAULT_TIMEOUT: u32 = 10;
/// CRIU's default --ghost-limit, bytes.
pub const DEFAULT_GHOST_LIMIT: u64 = 1 << 20;

/// Every option, typed. Field names follow CRIU's `struct cr_options`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opts {
    pub tree_id: Option<i32>,
    pub final_state: FinalState,
    pub restore_detach: bool,
    pub restore_sibling: bool,
    pub imgs_dir: Option<PathBuf>,
    pub img_parent: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
    pub output: Option<String>,
    pub log_level: i32,
    pub log_file_per_pid: bool,
    pub display_stats: bool,
    pub pidfile: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub libdir: Option<PathBuf>,
    pub scripts: Vec<String>,
    pub close_fds: Vec<i32>,
    pub deprecated_ok: bool,
    pub timeout: u32,
    pub stream: bool,
    pub track_mem: bool,
    pub pre_dump_read: bool,
    pub external: Vec<String>,
    pub freeze_cgroup: Option<String>,
    pub manage_cgroups: CgMode,
    /// `--manage-cgroups` was given (CRIU's default mode is soft as well,
    /// but only an explicit request turns on our cgroup check).
    pub manage_cgroups_given: bool,
    pub cgroup_props: Option<String>,
    pub cgroup_props_file: Option<String>,
    pub cgroup_dump_controllers: Vec<String>,
    pub cgroup_yard: Option<String>,
    pub new_cgroup_roots: Vec<(Option<String>, String)>,
    pub tcp_established_ok: bool,
    pub tcp_skip_in_flight: bool,
    pub tcp_close: bool,
    pub evasive_devices: bool,
    pub use_page_server: bool,
    pub force_irmap: bool,
    pub auto_dedup: bool,
    pub handle_file_locks: bool,
    pub link_remap_ok: bool,
    pub ghost_limit: u64,
    pub ghost_fiemap: bool,
    pub shell_job: bool,
    pub cpu_cap: u32,
    pub lazy_pages: bool,
    pub ext_unix_sk: bool,
    pub ext_unix_sk_ids: Vec<String>,
    pub ext_mount_map: Vec<(String, String)>,
    pub autodetect_ext_mounts: bool,
    pub enable_external_sharing: bool,
    pub enable_external_masters: bool,
    pub skip_mnt: Vec<String>,
    pub enable_fs: Vec<String>,
    pub irmap_scan_paths: Vec<String>,
    pub file_validation: Option<String>,
    pub skip_file_rwx_check: bool,
    pub network_lock: Option<String>,
    pub allow_uprobes: bool,
    pub unprivileged: bool,
    pub weak_sysctls: bool,
    pub empty_ns_net: bool,
    pub join_ns: Vec<String>,
    pub inherit_fds: Vec<String>,
    pub exec_cmd: bool,
    pub veth_pairs: Vec<(String, String)>,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
    pub mntns_compat_mode: bool,
    pub check_features: Vec<String>,
    pub check_extra_features: bool,
    pub check_experimental_features: bool,
    pub addr: Option<String>,
    pub port: Option<u16>,
    pub ps_socket: Option<i32>,
    pub status_fd: Option<i32>,
    pub tls_cacert: Option<String>,
    pub tls_cacrl: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls: bool,
    pub tls_no_cn_verify: bool,
    /// `-V`/`--version` was given.
    pub show_version: bool,
    /// `-h`/`--help` was given.
    pub show_help: bool,
    /// Options that were set and whose behaviour is not implemented yet,
    /// as spelled by the user (`--tcp-established`).
    pub unsupported: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            tree_id: None,
            final_state: FinalState::Dead,
            restore_detach: false,
            restore_sibling: false,
            imgs_dir: None,
            img_parent: None,
            work_dir: None,
            output: None,
            log_level: DEFAULT_LOGLEVEL,
            log_file_per_pid: false,
            display_stats: false,
            pidfile: None,
            root: None,
            libdir: None,
            scripts: Vec::new(),
            close_fds: Vec::new(),
            deprecated_ok: false,
            timeout: DEFAULT_TIMEOUT,
            stream: false,
            track_mem: false,
            pre_dump_read: false,
            external: Vec::new(),
            freeze_cgroup: None,
            manage_cgroups: CgMode::Soft,
            manage_cgroups_given: false,
            cgroup_props: None,
            cgroup_props_file: None,
            cgroup_dump_controllers: Vec::new(),
            cgroup_yard: None,
            new_cgroup_roots: Vec::new(),
            tcp_established_ok: false,
            tcp_skip_in_flight: false,
            tcp_close: false,
            evasive_devices: false,
            use_page_server: false,
            force_irmap: false,
            auto_dedup: false,
            handle_file_locks: false,
            link_remap_ok: false,
            ghost_limit: DEFAULT_GHOST_LIMIT,
            ghost_fiemap: false,
            shell_job: false,
            cpu_cap: cpu_cap::DEFAULT,
            lazy_pages: false,
            ext_unix_sk: false,
            ext_unix_sk_ids: Vec::new(),
            ext_mount_map: Vec::new(),
            autodetect_ext_mounts: false,
            enable_external_sharing: false,
            enable_external_masters: false,
            skip_mnt: Vec::new(),
            enable_fs: Vec::new(),
            irmap_scan_paths: Vec::new(),
            file_validation: None,
            skip_file_rwx_check: false,
            network_lock: None,
            allow_uprobes: false,
            unprivileged: false,
            weak_sysctls: false,
            empty_ns_net: false,
            join_ns: Vec::new(),
            inherit_fds: Vec::new(),
            exec_cmd: false,
            veth_pairs: Vec::new(),
            lsm_profile: None,
            lsm_mount_context: None,
            mntns_compat_mode: false,
            check_features: Vec::new(),
            check_extra_features: false,
            check_experimental_features: false,
            addr: None,
            port: None,
            ps_socket: None,
            status_fd: None,
            tls_cacert: None,
            tls_cacrl: None,
            tls_cert: None,
            tls_key: None,
            tls: false,
            tls_no_cn_verify: false,
            show_version: false,
            show_help: false,
            unsupported: Vec::new(),
        }
    }
}

/// A bad option value; the message names the option as it was spelled
/// (`-t` or `--tree`) and the value, in CRIU's words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid argument for {opt}: {value}")]
pub struct BadArg {
    pub opt: String,
    pub value: String,
}

impl BadArg {
    fn of(item: &Item, value: &str) -> BadArg {
        BadArg { opt: item.spelling(), value: value.to_string() }
    }
}

/// A problem applying an option.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptError {
    #[error(transparent)]
    BadArg(#[from] BadArg),
    #[error("{0}")]
    Other(String),
}

/// C's `strtol(s, NULL, 10)`: leading white space, an optional sign, then
/// the longest run of digits; 0 without digits, saturated at the `long`
/// range. The flag says whether any digit was read (what `sscanf("%d")`
/// needs).
pub fn strtol(s: &str) -> (i64, bool) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let neg = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut v: i64 = 0;
    let mut saturated = false;
    while i < b.len() && b[i].is_ascii_digit() {
        let d = i64::from(b[i] - b'0');
        match v.checked_mul(10).and_then(|x| if neg { x.checked_sub(d) } else { x.checked_add(d) }) {
            Some(x) if !saturated => v = x,
            _ => {
                saturated = true;
                v = if neg { i64::MIN } else { i64::MAX };
            }
        }
        i += 1;
    }
    (v, i > start)
}

/// C's `atoi` (glibc: `(int) strtol(s, NULL, 10)`): `5x` is 5, `abc` is 0.
/// CRIU reads most numeric options this way.
pub fn atoi(s: &str) -> i32 {
    strtol(s).0 as i32
}

/// `--ghost-limit` sizes as CRIU reads them: `atol` of the value, times
/// 1 KiB, 1 MiB or 1 GiB when a `K`, `M` or `G` appears anywhere in it
/// (checked in that order; lower case is no unit).
pub fn parse_size(v: &str) -> u64 {
    let n = strtol(v).0;
    let shift = if v.contains('K') {
        10
    } else if v.contains('M') {
        20
    } else if v.contains('G') {
        30
    } else {
        0
    };
    n.wrapping_shl(shift) as u64
}

/// The inode list of `--ext-unix-sk=INO[,INO...]`: each a non-zero number.
fn parse_unix_ids(v: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let digits = part.trim_start();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.bytes().all(|b| b == b'0') {
            return None;
        }
        out.push(digits.to_string());
    }
    Some(out)
}

/// `--external` types that only name resources of namespaces (which a dump
/// refuses and our images never hold); other types would change how an fd
/// is carried, which we do not do yet.
const EXTERNAL_NS_TYPES: &[&str] = &["mnt[", "dev[", "net[", "pid[", "veth[", "macvlan["];

/// `--cpu-cap` list: `fpu`, `cpu`, `ins`, `all`, `none`, `^` inverts the next
/// item, `,` separates.
pub fn parse_cpu_cap(cur: u32, v: Option<&str>) -> Option<u32> {
    let Some(mut s) = v else { return Some(cur | cpu_cap::ALL | cpu_cap::IMAGE) };
    let mut caps = cur;
    let mut inverse = false;
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('^') {
            inverse = !inverse;
            s = r;
            continue;
        }
        if let Some(r) = s.strip_prefix(',') {
            inverse = false;
            s = r;
            continue;
        }
        let (bits, len) = if s.starts_with("fpu") {
            (cpu_cap::FPU, 3)
        } else if s.starts_with("all") {
            (cpu_cap::ALL, 3)
        } else if s.starts_with("cpu") {
            (cpu_cap::CPU, 3)
        } else if s.starts_with("ins") {
            (cpu_cap::INS, 3)
        } else if s.starts_with("none") {
            caps = if inverse { cpu_cap::ALL } else { cpu_cap::NONE };
            s = &s[4..];
            continue;
        } else {
            return None;
        };
        if inverse { caps &= !bits } else { caps |= bits }
        s = &s[len..];
    }
    if caps != cpu_cap::NONE {
        caps |= cpu_cap::IMAGE;
    }
    Some(caps)
}

/// `fd[N]:RESOURCE` of --inherit-fd.
pub fn parse_inherit_fd(v: &str) -> Option<(i32, &str)> {
    let rest = v.strip_prefix("fd[")?;
    let (n, res) = rest.split_once("]:")?;
    let n: i32 = n.parse().ok()?;
    (n >= 0 && !res.is_empty()).then_some((n, res))
}

fn split_once_req<'a>(item: &Item, v: &'a str, sep: char) -> Result<(&'a str, &'a str), BadArg> {
    v.split_once(sep).ok_or_else(|| BadArg::of(item, v))
}

impl Opts {
    /// Apply one option occurrence, exactly as CRIU's parser would: numbers
    /// through `atoi` where CRIU uses it, CRIU's checks and messages.
    pub fn apply(&mut self, item: &Item) -> Result<(), OptError> {
        let spec = item.spec;
        let on = !item.negated;
        let val = item.value.as_deref();
        let req = || val.ok_or_else(|| BadArg::of(item, ""));
        let bad = |v: &str| OptError::from(BadArg::of(item, v));
        if on && spec.support == Support::NotYet {
            self.refuse(item.spelling());
        }
        match spec.long {
            "verbosity" => match val {
                None => self.log_level += 1,
                Some(v) if v.starts_with('v') => self.log_level += v.len() as i32 + 1,
                Some(v) => self.log_level = atoi(v),
            },
            "config" | "no-default-config" => {} // handled when sources are read
            "pidfile" => self.pidfile = Some(req()?.into()),
            "log-file" => self.output = Some(req()?.to_string()),
            "log-pid" => self.log_file_per_pid = on,
            "display-stats" => self.display_stats = on,
            "images-dir" => self.imgs_dir = Some(req()?.into()),
            "prev-images-dir" => self.img_parent = Some(req()?.into()),
            "work-dir" => self.work_dir = Some(req()?.into()),
            "close" => self.close_fds.push(atoi(req()?)),
            "libdir" => self.libdir = Some(req()?.into()),
            "action-script" => self.scripts.push(req()?.to_string()),
            "version" => self.show_version = true,
            "help" => self.show_help = true,
            "deprecated" => self.deprecated_ok = on,
            "timeout" => self.timeout = atoi(req()?) as u32,
            "stream" => self.stream = on,
            "tree" => {
                let v = req()?;
                let pid = atoi(v);
                if pid <= 0 {
                    return Err(bad(v));
                }
                self.tree_id = Some(pid);
            }
            "leave-running" => self.final_state = FinalState::Alive,
            "leave-stopped" => self.final_state = FinalState::Stopped,
            "track-mem" => self.track_mem = on,
            "pre-dump-mode" => match req()? {
                "read" => self.pre_dump_read = true,
                "splice" => {}
                _ => return Err(OptError::Other("Unable to parse value of --pre-dump-mode".into())),
            },
            "external" => {
                let v = req()?;
                if !EXTERNAL_NS_TYPES.iter().any(|t| v.starts_with(t)) {
                    self.refuse(format!("{} {v}", item.spelling()));
                }
                self.external.push(v.to_string());
            }
            "freeze-cgroup" => self.freeze_cgroup = Some(req()?.to_string()),
            "manage-cgroups" => {
                self.manage_cgroups = match val {
                    None => CgMode::Soft,
                    Some("none") => CgMode::None,
                    Some("props") => CgMode::Props,
                    Some("soft") => CgMode::Soft,
                    Some("full") => CgMode::Full,
                    Some("strict") => CgMode::Strict,
                    Some("ignore") => CgMode::Ignore,
                    Some(v) => return Err(OptError::Other(format!("Unknown cgroups mode `{v}' selected"))),
                };
                self.manage_cgroups_given = true;
            }
            "cgroup-props" => self.cgroup_props = Some(req()?.to_string()),
            "cgroup-props-file" => self.cgroup_props_file = Some(req()?.to_string()),
            "cgroup-dump-controller" => self.cgroup_dump_controllers.push(req()?.to_string()),
            "cgroup-yard" => self.cgroup_yard = Some(req()?.to_string()),
            "cgroup-root" => {
                let v = req()?;
                let root = match v.split_once(':') {
                    Some((ctl, path)) => (Some(ctl.to_string()), path.to_string()),
                    None => (None, v.to_string()),
                };
                self.new_cgroup_roots.push(root);
            }
            "tcp-established" => self.tcp_established_ok = on,
            "skip-in-flight" => self.tcp_skip_in_flight = on,
            "tcp-close" => self.tcp_close = on,
            "evasive-devices" => self.evasive_devices = on,
            "page-server" => self.use_page_server = on,
            "force-irmap" => self.force_irmap = on,
            "auto-dedup" => self.auto_dedup = on,
            "file-locks" => self.handle_file_locks = on,
            "link-remap" => self.link_remap_ok = on,
            "ghost-limit" => self.ghost_limit = parse_size(req()?),
            "ghost-fiemap" => self.ghost_fiemap = on,
            "shell-job" => self.shell_job = on,
            "cpu-cap" => {
                self.cpu_cap = parse_cpu_cap(self.cpu_cap, val)
                    .ok_or_else(|| OptError::Other(format!("Unknown FPU mode `{}' selected", val.unwrap_or(""))))?
            }
            "lazy-pages" => self.lazy_pages = true,
            "ext-unix-sk" => {
                if let Some(v) = val {
                    let ids = parse_unix_ids(v).ok_or_else(|| {
                        OptError::Other(format!("Failed to parse unix socket inode from optarg: {v}"))
                    })?;
                    self.ext_unix_sk_ids.extend(ids);
                }
                self.ext_unix_sk = true;
            }
            "ext-mount-map" => {
                let v = req()?;
                if v == "auto" {
                    self.autodetect_ext_mounts = true;
                } else {
                    let (k, m) = split_once_req(item, v, ':')?;
                    self.ext_mount_map.push((k.into(), m.into()));
                }
            }
            "enable-external-sharing" => self.enable_external_sharing = true,
            "enable-external-masters" => self.enable_external_masters = true,
            "skip-mnt" => self.skip_mnt.push(req()?.to_string()),
            "enable-fs" => self.enable_fs.extend(req()?.split(',').map(str::to_string)),
            "irmap-scan-path" => self.irmap_scan_paths.push(req()?.to_string()),
            "file-validation" => match req()? {
                v @ ("filesize" | "buildid") => self.file_validation = Some(v.to_string()),
                v => return Err(OptError::Other(format!("Unknown file validation method `{v}' selected"))),
            },
            "skip-file-rwx-check" => self.skip_file_rwx_check = on,
            "network-lock" => match req()? {
                v @ ("iptables" | "nftables" | "skip") => self.network_lock = Some(v.to_string()),
                v => return Err(OptError::Other(format!("Invalid value for --network-lock: {v}"))),
            },
            "allow-uprobes" => self.allow_uprobes = on,
            "unprivileged" => self.unprivileged = on,
            "weak-sysctls" => self.weak_sysctls = on,
            "empty-ns" => match req()? {
                "net" => self.empty_ns_net = true,
                v => return Err(OptError::Other(format!("Unsupported empty namespace: {v}"))),
            },
            "join-ns" => {
                let v = req()?;
                split_once_req(item, v, ':')?;
                self.join_ns.push(v.to_string());
            }
            "restore-detached" | "daemon" => self.restore_detach = on,
            "restore-sibling" => self.restore_sibling = on,
            "root" => self.root = Some(req()?.into()),
            "inherit-fd" => {
                let v = req()?;
                parse_inherit_fd(v).ok_or_else(|| OptError::Other(format!("Invalid inherit fd argument: {v}")))?;
                self.inherit_fds.push(v.to_string());
            }
            "exec-cmd" => self.exec_cmd = true,
            "veth-pair" => {
                let (i, o) = split_once_req(item, req()?, '=')?;
                self.veth_pairs.push((i.into(), o.into()));
            }
            "lsm-profile" => self.lsm_profile = Some(req()?.to_string()),
            "lsm-mount-context" => self.lsm_mount_context = Some(req()?.to_string()),
            "mntns-compat-mode" => self.mntns_compat_mode = on,
            "feature" => self.check_features.push(req()?.to_string()),
            "extra" => self.check_extra_features = on,
            "experimental" => self.check_experimental_features = on,
            "all" => {
                self.check_extra_features = true;
                self.check_experimental_features = true;
            }
            "ms" => {
                return Err(OptError::Other(
                    "--ms is deprecated; see \"Check options\" of criu --help".into(),
                ))
            }
            "address" => self.addr = Some(req()?.to_string()),
            "port" => {
                // CRIU keeps the port in 16 bits: 65536 reads as 0, refused.
                let v = req()?;
                let p = atoi(v) as u16;
                if p == 0 {
                    return Err(bad(v));
                }
                self.port = Some(p);
            }
            "ps-socket" => self.ps_socket = Some(atoi(req()?)),
            "status-fd" => match strtol(req()?) {
                (fd, true) => self.status_fd = Some(fd as i32),
                _ => return Err(OptError::Other("Unable to parse a value of --status-fd".into())),
            },
            "tls-cacert" => self.tls_cacert = Some(req()?.to_string()),
            "tls-cacrl" => self.tls_cacrl = Some(req()?.to_string()),
            "tls-cert" => self.tls_cert = Some(req()?.to_string()),
            "tls-key" => self.tls_key = Some(req()?.to_string()),
            "tls" => self.tls = on,
            "tls-no-cn-verify" => self.tls_no_cn_verify = true,
            other => return Err(OptError::Other(format!("option --{other} has no handler"))),
        }
        Ok(())
    }

    /// Note an option we would silently fail to honour, as spelled.
    fn refuse(&mut self, spelling: String) {
        if !self.unsupported.contains(&spelling) {
            self.unsupported.push(spelling);
        }
    }

    /// Whether cgroup membership is to be carried: CRIU's default mode
    /// (soft) carries it, as does any `--manage-cgroups` but `ignore`, or
    /// cgroup properties. With no cgroup images yet, a dump then refuses a
    /// task whose cgroups are not criu's own (rather than restore it into
    /// criu's).
    pub fn cgroups_checked(&self) -> bool {
        self.manage_cgroups != CgMode::Ignore
            || self.cgroup_props.is_some()
            || self.cgroup_props_file.is_some()
            || !self.cgroup_dump_controllers.is_empty()
    }

    /// Checks CRIU makes once all sources are applied.
    pub fn check(&self) -> Result<(), OptError> {
        if self.restore_sibling && !self.restore_detach {
            return Err(OptError::Other("--restore-sibling only makes sense with --restore-detached".into()));
        }
        Ok(())
    }

    /// The log level clamped to CRIU's range 0..=4. CRIU keeps the level
    /// unsigned, so a negative one (`-v-1`) logs everything.
    pub fn effective_log_level(&self) -> i32 {
        if self.log_level < 0 {
            4
        } else {
            self.log_level.min(4)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_criu_reads_them() {
        for (v, want) in [
            ("10", 10u64),
            ("4K", 4096),
            ("100M", 100 << 20),
            ("2G", 2 << 30),
            (" 3K", 3 << 10),
            ("1k", 1), // lower case is no unit
            ("K1", 0), // atol of "K1"
            ("5KM", 5 << 10),
            ("x", 0),
            ("", 0),
        ] {
            assert_eq!(parse_size(v), want, "{v:?}");
        }
    }

    #[test]
    fn atoi_as_c() {
        for (v, want) in [
            ("5", 5),
            ("5x", 5),
            ("  -7", -7),
            ("+3", 3),
            ("\t\n12", 12),
            ("abc", 0),
            ("", 0),
            ("erbosity=0", 0),
            ("- 1", 0),
            ("99999999999", 1215752191), // strtol, then truncated to int
            ("99999999999999999999", -1), // saturated at LONG_MAX, truncated
        ] {
            assert_eq!(atoi(v), want, "{v:?}");
        }
        assert_eq!(strtol("x"), (0, false));
        assert_eq!(strtol(" 0"), (0, true));
    }

    #[test]
    fn cpu_caps() {
        use cpu_cap::*;
        assert_eq!(parse_cpu_cap(DEFAULT, None), Some(DEFAULT | ALL | IMAGE));
        assert_eq!(parse_cpu_cap(NONE, Some("fpu")), Some(FPU | IMAGE));
        assert_eq!(parse_cpu_cap(ALL, Some("^cpu")), Some(FPU | INS | IMAGE));
        assert_eq!(parse_cpu_cap(DEFAULT, Some("none")), Some(NONE));
        assert_eq!(parse_cpu_cap(DEFAULT, Some("bogus")), None);
    }
}
