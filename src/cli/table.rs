//! The table of every option CRIU 4.2 accepts, with its argument shape and
//! whether our engine implements its behaviour yet.
//!
//! This table is the single source for the command-line parser, the config
//! file reader (which feeds the same parser) and the "not supported yet"
//! refusal. Adding an option means adding a row here and an arm in
//! [`crate::opts::Opts::apply`].

/// How an option takes its argument (getopt_long's three shapes, plus the
/// BOOL_OPT pair CRIU generates as `--X` / `--no-X`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// `--X` only.
    Flag,
    /// `--X` and `--no-X`.
    Bool,
    /// `--X VALUE` or `--X=VALUE` (`-cVALUE` / `-c VALUE` for short forms).
    Required,
    /// `--X` or `--X=VALUE` (`-cVALUE` for short forms; never a separate word).
    Optional,
}

/// Whether setting the option changes behaviour we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Yes,
    /// Parsed, but using it fails the command with "not supported yet".
    NotYet,
}

/// One row of the option table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptSpec {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: ArgKind,
    pub support: Support,
    pub value_name: &'static str,
    pub help: &'static str,
}

const fn o(
    long: &'static str,
    short: Option<char>,
    kind: ArgKind,
    support: Support,
    value_name: &'static str,
    help: &'static str,
) -> OptSpec {
    OptSpec { long, short, kind, support, value_name, help }
}

use ArgKind::{Bool, Flag, Optional, Required};
use Support::{NotYet, Yes};

/// Every option of CRIU 4.2 (criu/config.c and Documentation/criu.txt).
pub const OPTIONS: &[OptSpec] = &[
    // Common options.
    o("verbosity", Some('v'), Optional, Yes, "LEVEL", "raise verbosity (-v, -vv, ...) or set it (-vN, --verbosity=N; 0..4)"),
    o("config", None, Required, Yes, "FILE", "read options from FILE (disables the default config files)"),
    o("no-default-config", None, Flag, Yes, "", "do not read /etc/criu/default.conf or $HOME/.criu/default.conf"),
    o("pidfile", None, Required, Yes, "FILE", "write the root task, service or page-server pid to FILE"),
    o("log-file", Some('o'), Required, Yes, "FILE", "log to FILE (relative to -W, else -D; '-' is stderr)"),
    o("log-pid", None, Bool, Yes, "", "write a separate log file per process (FILE.PID)"),
    o("display-stats", None, Bool, Yes, "", "print dump/restore statistics at the end"),
    o("images-dir", Some('D'), Required, Yes, "DIR", "directory of the image files"),
    o("prev-images-dir", None, Required, NotYet, "DIR", "parent images directory for incremental dumps"),
    o("work-dir", Some('W'), Required, Yes, "DIR", "directory for logs, pidfiles and stats (default: -D)"),
    o("close", None, Required, Yes, "FD", "close FD before doing anything else"),
    o("libdir", Some('L'), Required, NotYet, "DIR", "plugins directory"),
    o("action-script", None, Required, Yes, "FILE", "run FILE at the action-script stages"),
    o("version", Some('V'), Flag, Yes, "", "print the version and exit"),
    o("help", Some('h'), Flag, Yes, "", "print help and exit"),
    o("deprecated", None, Bool, Yes, "", "allow deprecated functionality"),
    o("timeout", None, Required, Yes, "SECONDS", "bound the time spent collecting/restoring tasks"),
    o("stream", None, Bool, NotYet, "", "stream images through criu-image-streamer"),
    // dump / pre-dump.
    o("tree", Some('t'), Required, Yes, "PID", "checkpoint the process tree rooted at PID"),
    o("leave-running", Some('R'), Flag, Yes, "", "leave tasks running after dump"),
    o("leave-stopped", Some('s'), Flag, Yes, "", "leave tasks stopped after dump/restore"),
    o("track-mem", None, Bool, NotYet, "", "turn on the memory changes tracker"),
    o("pre-dump-mode", None, Required, NotYet, "splice|read", "pre-dump memory transfer mode"),
    o("external", None, Required, NotYet, "TYPE[ID]:VALUE", "dump/restore an external resource"),
    o("freeze-cgroup", None, Required, Yes, "PATH", "use the cgroup freezer at PATH to collect tasks"),
    o("manage-cgroups", None, Optional, NotYet, "MODE", "dump/restore cgroups (none|props|soft|full|strict|ignore)"),
    o("cgroup-props", None, Required, NotYet, "SPEC", "cgroup controllers/properties to save"),
    o("cgroup-props-file", None, Required, NotYet, "FILE", "like --cgroup-props, read from FILE"),
    o("cgroup-dump-controller", None, Required, NotYet, "NAME", "dump only controller NAME"),
    o("cgroup-yard", None, Required, NotYet, "PATH", "use a prepared cgroup yard"),
    o("cgroup-root", None, Required, NotYet, "[CTL:]/ROOT", "change the cgroup root of a controller"),
    o("tcp-established", None, Bool, NotYet, "", "checkpoint/restore established TCP connections"),
    o("skip-in-flight", None, Bool, NotYet, "", "skip in-flight TCP connections"),
    o("tcp-close", None, Bool, NotYet, "", "restore connected TCP sockets closed"),
    o("evasive-devices", None, Bool, NotYet, "", "use any path to a device file"),
    o("page-server", None, Bool, NotYet, "", "send pages to a page server"),
    o("force-irmap", None, Bool, NotYet, "", "force resolving inotify/fsnotify watch names"),
    o("auto-dedup", None, Bool, NotYet, "", "deduplicate pages of previous dumps"),
    o("file-locks", Some('l'), Bool, NotYet, "", "dump/restore file locks"),
    o("link-remap", None, Bool, NotYet, "", "allow linking unlinked files back"),
    o("ghost-limit", None, Required, Yes, "SIZE", "max size of a deleted file carried in images"),
    o("ghost-fiemap", None, Bool, NotYet, "", "use fiemap to dump sparse ghost files"),
    o("shell-job", Some('j'), Bool, Yes, "", "allow dumping/restoring shell jobs"),
    o("cpu-cap", None, Optional, Yes, "CAPS", "CPU capabilities to write/check (fpu,cpu,ins,all,none)"),
    o("lazy-pages", None, Flag, NotYet, "", "post-copy memory migration"),
    o("ext-unix-sk", Some('x'), Optional, NotYet, "INODE", "allow external unix sockets"),
    o("ext-mount-map", Some('M'), Required, NotYet, "KEY:VAL", "external mount mapping"),
    o("enable-external-sharing", None, Flag, NotYet, "", "allow external shared mounts"),
    o("enable-external-masters", None, Flag, NotYet, "", "allow external slave mounts"),
    o("skip-mnt", None, Required, NotYet, "PATH", "ignore the mount at PATH"),
    o("enable-fs", None, Required, NotYet, "FS", "dump/restore mounts of FS (comma list, or all)"),
    o("irmap-scan-path", None, Required, NotYet, "PATH", "where to look for inotify watch names"),
    o("file-validation", None, Required, NotYet, "filesize|buildid", "how to validate files on restore"),
    o("skip-file-rwx-check", None, Bool, NotYet, "", "skip checking file permissions on restore"),
    o("network-lock", None, Required, NotYet, "iptables|nftables|skip", "network locking method"),
    o("allow-uprobes", None, Bool, Yes, "", "allow dumping tasks with uprobes VMAs"),
    o("unprivileged", None, Bool, NotYet, "", "run without CAP_SYS_ADMIN where possible"),
    o("weak-sysctls", None, Bool, NotYet, "", "skip sysctls that are missing on restore"),
    o("empty-ns", None, Required, NotYet, "net", "create an empty namespace"),
    o("join-ns", Some('J'), Required, NotYet, "NS:PATH[,OPT]", "join an existing namespace"),
    // restore.
    o("restore-detached", Some('d'), Bool, Yes, "", "detach criu once restore is complete"),
    o("daemon", None, Bool, Yes, "", "run detached (restore, service, page-server)"),
    o("restore-sibling", Some('S'), Bool, Yes, "", "restore the root task as a sibling"),
    o("root", Some('r'), Required, NotYet, "PATH", "root filesystem for restore"),
    o("inherit-fd", None, Required, Yes, "fd[N]:RES", "use an inherited fd for a resource"),
    o("exec-cmd", None, Flag, NotYet, "", "exec the given command after restore"),
    o("veth-pair", None, Required, NotYet, "IN=OUT", "outer name of a veth device"),
    o("lsm-profile", None, Required, NotYet, "TYPE:NAME", "LSM profile for restore"),
    o("lsm-mount-context", None, Required, NotYet, "CTX", "SELinux mount context for restore"),
    o("mntns-compat-mode", None, Bool, NotYet, "", "restore mount namespaces the pre-4.0 way"),
    // check.
    o("feature", None, Required, Yes, "NAME", "check one kernel feature ('list' lists them)"),
    o("extra", None, Bool, Yes, "", "also check category 2 features"),
    o("experimental", None, Bool, Yes, "", "also check category 3 features"),
    o("all", None, Flag, Yes, "", "check categories 1, 2 and 3"),
    o("ms", None, Flag, Yes, "", "deprecated; use check options"),
    // page-server / lazy-pages / service.
    o("address", None, Required, Yes, "ADDR", "page server address"),
    o("port", None, Required, NotYet, "PORT", "page server port"),
    o("ps-socket", None, Required, NotYet, "FD", "use FD as the page server socket"),
    o("status-fd", None, Required, Yes, "FD", "write \\0 to FD when ready"),
    o("tls-cacert", None, Required, NotYet, "FILE", "TLS CA certificate"),
    o("tls-cacrl", None, Required, NotYet, "FILE", "TLS certificate revocation list"),
    o("tls-cert", None, Required, NotYet, "FILE", "TLS certificate"),
    o("tls-key", None, Required, NotYet, "FILE", "TLS private key"),
    o("tls", None, Bool, NotYet, "", "secure remote connections with TLS"),
    o("tls-no-cn-verify", None, Flag, NotYet, "", "do not verify the TLS common name"),
];

/// The commands CRIU 4.2 knows.
pub const COMMANDS: &[&str] = &[
    "dump",
    "pre-dump",
    "restore",
    "check",
    "page-server",
    "service",
    "swrk",
    "lazy-pages",
    "dedup",
    "cpuinfo",
    // Removed in CRIU; kept so we can say what to use instead.
    "exec",
    "show",
];

/// Look an option up by its long name.
pub fn find(long: &str) -> Option<&'static OptSpec> {
    OPTIONS.iter().find(|s| s.long == long)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_shorts_are_unique() {
        let mut longs = HashSet::new();
        let mut shorts = HashSet::new();
        for s in OPTIONS {
            assert!(longs.insert(s.long), "duplicate --{}", s.long);
            if s.kind == ArgKind::Bool {
                assert!(longs.insert(Box::leak(format!("no-{}", s.long).into_boxed_str())));
            }
            if let Some(c) = s.short {
                assert!(shorts.insert(c), "duplicate -{c}");
            }
        }
    }

    #[test]
    fn criu_short_options_are_all_present() {
        // getopt string of CRIU 4.2: "dSsRt:hD:o:v::x::Vr:jJ:lW:L:M:"
        for (c, kind) in [
            ('d', None),
            ('S', None),
            ('s', None),
            ('R', None),
            ('t', Some(ArgKind::Required)),
            ('h', None),
            ('D', Some(ArgKind::Required)),
            ('o', Some(ArgKind::Required)),
            ('v', Some(ArgKind::Optional)),
            ('x', Some(ArgKind::Optional)),
            ('V', None),
            ('r', Some(ArgKind::Required)),
            ('j', None),
            ('J', Some(ArgKind::Required)),
            ('l', None),
            ('W', Some(ArgKind::Required)),
            ('L', Some(ArgKind::Required)),
            ('M', Some(ArgKind::Required)),
        ] {
            let spec = OPTIONS.iter().find(|s| s.short == Some(c)).unwrap_or_else(|| panic!("-{c}"));
            match kind {
                None => assert!(matches!(spec.kind, ArgKind::Flag | ArgKind::Bool), "-{c}"),
                Some(k) => assert_eq!(spec.kind, k, "-{c}"),
            }
        }
    }
}
