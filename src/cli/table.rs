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

/// What accepting the option means here. Only `NotYet` refuses: an option
/// is refused where accepting it would silently fail to deliver what it
/// asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Yes,
    /// It permits a kind of object; a dump that meets one we cannot carry
    /// still refuses, naming the object.
    Permits,
    /// It only matters for something we refuse anyway (namespaces, mounts,
    /// TCP, the page server, cgroup images) or it only tunes how CRIU does
    /// something ours does exactly either way.
    NoEffect,
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
    /// Why the row has its [`Support`] class, where that is not obvious.
    pub why: &'static str,
}

impl OptSpec {
    /// The row with the reason for its class.
    const fn why(self, why: &'static str) -> OptSpec {
        OptSpec { why, ..self }
    }
}

const fn o(
    long: &'static str,
    short: Option<char>,
    kind: ArgKind,
    support: Support,
    value_name: &'static str,
    help: &'static str,
) -> OptSpec {
    OptSpec { long, short, kind, support, value_name, help, why: "" }
}

use ArgKind::{Bool, Flag, Optional, Required};
use Support::{NoEffect, NotYet, Permits, Yes};

/// Every option of CRIU 4.2 (criu/config.c and Documentation/criu.txt),
/// with what accepting it means here. `why` explains each non-obvious class.
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
    o("prev-images-dir", None, Required, NotYet, "DIR", "parent images directory for incremental dumps")
        .why("parent images (incremental dumps) are neither written nor read yet"),
    o("work-dir", Some('W'), Required, Yes, "DIR", "directory for logs, pidfiles and stats (default: -D)"),
    o("close", None, Required, Yes, "FD", "close FD before doing anything else"),
    o("libdir", Some('L'), Required, NotYet, "DIR", "plugins directory")
        .why("we load no plugins: what a plugin would carry (GPU state, ...) would be lost"),
    o("action-script", None, Required, Yes, "FILE", "run FILE at the action-script stages"),
    o("version", Some('V'), Flag, Yes, "", "print the version and exit"),
    o("help", Some('h'), Flag, Yes, "", "print help and exit"),
    o("deprecated", None, Bool, Yes, "", "allow deprecated functionality"),
    o("timeout", None, Required, Yes, "SECONDS", "bound the time spent collecting/restoring tasks"),
    o("stream", None, Bool, NotYet, "", "stream images through criu-image-streamer")
        .why("images would not go through the streamer"),
    // dump / pre-dump.
    o("tree", Some('t'), Required, Yes, "PID", "checkpoint the process tree rooted at PID"),
    o("leave-running", Some('R'), Flag, Yes, "", "leave tasks running after dump"),
    o("leave-stopped", Some('s'), Flag, Yes, "", "leave tasks stopped after dump/restore"),
    o("track-mem", None, Bool, NotYet, "", "turn on the memory changes tracker")
        .why("the next (incremental) dump could not rely on it"),
    o("pre-dump-mode", None, Required, NoEffect, "splice|read", "pre-dump memory transfer mode")
        .why("only pre-dump reads it (refused); dump and restore ignore it, as CRIU's do"),
    o("external", None, Required, Permits, "TYPE[ID]:VALUE", "dump/restore an external resource")
        .why("net/mnt/dev/veth/macvlan name namespace resources (refused anyway); file/tty/unix are refused"),
    o("freeze-cgroup", None, Required, Yes, "PATH", "use the cgroup freezer at PATH to collect tasks"),
    o("manage-cgroups", None, Optional, Permits, "MODE", "dump/restore cgroups (none|props|soft|full|strict|ignore)")
        .why("no cgroup images yet: a dump refuses a task in cgroups other than criu's own, as without the option (CRIU's default mode carries them); ignore: no check"),
    o("cgroup-props", None, Required, Permits, "SPEC", "cgroup controllers/properties to save")
        .why("shapes cgroup images; turns on the same check as --manage-cgroups"),
    o("cgroup-props-file", None, Required, Permits, "FILE", "like --cgroup-props, read from FILE")
        .why("shapes cgroup images; turns on the same check as --manage-cgroups"),
    o("cgroup-dump-controller", None, Required, Permits, "NAME", "dump only controller NAME")
        .why("shapes cgroup images; turns on the same check as --manage-cgroups"),
    o("cgroup-yard", None, Required, NoEffect, "PATH", "use a prepared cgroup yard")
        .why("where CRIU mounts hierarchies to restore cgroup images; ours restore none"),
    o("cgroup-root", None, Required, Permits, "[CTL:]/ROOT", "change the cgroup root of a controller")
        .why("restore: accepted when it names criu's own cgroup (runc moves criu there), else refused"),
    o("tcp-established", None, Bool, Permits, "", "checkpoint/restore established TCP connections")
        .why("without it an ESTABLISHED connection is refused by name (other connected states always are)"),
    o("skip-in-flight", None, Bool, Permits, "", "skip in-flight TCP connections")
        .why("a listener with connections not accepted yet is refused by name"),
    o("tcp-close", None, Bool, Yes, "", "restore connected TCP sockets closed"),
    o("evasive-devices", None, Bool, Permits, "", "use any path to a device file")
        .why("devices are reopened by their recorded path; a missing one fails the restore by name"),
    o("page-server", None, Bool, NotYet, "", "send pages to a page server")
        .why("pages would be written locally instead"),
    o("force-irmap", None, Bool, NoEffect, "", "force resolving inotify/fsnotify watch names")
        .why("how CRIU names watched inodes; ours restore the same watches or fail"),
    o("auto-dedup", None, Bool, NotYet, "", "deduplicate pages of previous dumps")
        .why("image space would not be freed"),
    o("file-locks", Some('l'), Bool, Yes, "", "dump/restore file locks"),
    o("link-remap", None, Bool, Yes, "", "allow linking unlinked files back")
        .why("an unlinked file that still has another link is refused by name"),
    o("ghost-limit", None, Required, Yes, "SIZE", "max size of a deleted file carried in images"),
    o("ghost-fiemap", None, Bool, NoEffect, "", "use fiemap to dump sparse ghost files")
        .why("how CRIU reads ghost contents; ours copies them whole"),
    o("shell-job", Some('j'), Bool, Yes, "", "allow dumping/restoring shell jobs"),
    o("cpu-cap", None, Optional, Yes, "CAPS", "CPU capabilities to write/check (fpu,cpu,ins,all,none)"),
    o("lazy-pages", None, Flag, NotYet, "", "post-copy memory migration")
        .why("memory would be restored eagerly, not served lazily"),
    o("ext-unix-sk", Some('x'), Optional, Permits, "INODE", "allow external unix sockets")
        .why("a unix socket whose peer is outside the tree is refused by name"),
    o("ext-mount-map", Some('M'), Required, NoEffect, "KEY:VAL", "external mount mapping")
        .why("mount namespaces are refused"),
    o("enable-external-sharing", None, Flag, NoEffect, "", "allow external shared mounts")
        .why("mount namespaces are refused"),
    o("enable-external-masters", None, Flag, NoEffect, "", "allow external slave mounts")
        .why("mount namespaces are refused"),
    o("skip-mnt", None, Required, NoEffect, "PATH", "ignore the mount at PATH")
        .why("mount namespaces are refused"),
    o("enable-fs", None, Required, NoEffect, "FS", "dump/restore mounts of FS (comma list, or all)")
        .why("mount namespaces are refused"),
    o("irmap-scan-path", None, Required, NoEffect, "PATH", "where to look for inotify watch names")
        .why("see --force-irmap"),
    o("file-validation", None, Required, NoEffect, "filesize|buildid", "how to validate files on restore")
        .why("restore always checks type, size and build-id; a mismatch is refused by name"),
    o("skip-file-rwx-check", None, Bool, NoEffect, "", "skip checking file permissions on restore")
        .why("restore makes no rwx check beyond opening the file"),
    o("network-lock", None, Required, Yes, "iptables|nftables|skip", "network locking method")
        .why("only locks a dumped net namespace or TCP sockets, both refused"),
    o("allow-uprobes", None, Bool, Yes, "", "allow dumping tasks with uprobes VMAs"),
    o("unprivileged", None, Bool, NoEffect, "", "run without CAP_SYS_ADMIN where possible")
        .why("ours carries the same state either way, or fails on a missing privilege"),
    o("weak-sysctls", None, Bool, Yes, "", "skip sysctls that are missing on restore"),
    o("empty-ns", None, Required, Yes, "net", "create an empty namespace"),
    o("join-ns", Some('J'), Required, NotYet, "NS:PATH[,OPT]", "join an existing namespace")
        .why("the tree would run in criu's namespaces instead"),
    // restore.
    o("restore-detached", Some('d'), Bool, Yes, "", "detach criu once restore is complete"),
    o("daemon", None, Bool, Yes, "", "run detached (restore, service, page-server)"),
    o("restore-sibling", Some('S'), Bool, Yes, "", "restore the root task as a sibling"),
    o("root", Some('r'), Required, NoEffect, "PATH", "root filesystem for restore")
        .why("only roots a restored mount namespace; a dump refuses mount namespaces"),
    o("inherit-fd", None, Required, Yes, "fd[N]:RES", "use an inherited fd for a resource"),
    o("exec-cmd", None, Flag, NotYet, "", "exec the given command after restore")
        .why("the command would not run"),
    o("veth-pair", None, Required, Yes, "IN=OUT", "outer name of a veth device"),
    o("lsm-profile", None, Required, NotYet, "TYPE:NAME", "LSM profile for restore")
        .why("we cannot apply an LSM profile: the tree would run unconfined"),
    o("lsm-mount-context", None, Required, NoEffect, "CTX", "SELinux mount context for restore")
        .why("only for mounts of a restored mount namespace"),
    o("mntns-compat-mode", None, Bool, NoEffect, "", "restore mount namespaces the pre-4.0 way")
        .why("mount namespaces are refused"),
    // check.
    o("feature", None, Required, Yes, "NAME", "check one kernel feature ('list' lists them)"),
    o("extra", None, Bool, Yes, "", "also check category 2 features"),
    o("experimental", None, Bool, Yes, "", "also check category 3 features"),
    o("all", None, Flag, Yes, "", "check categories 1, 2 and 3"),
    o("ms", None, Flag, Yes, "", "deprecated; use check options"),
    // page-server / lazy-pages / service.
    o("address", None, Required, Yes, "ADDR", "page server address"),
    o("port", None, Required, NoEffect, "PORT", "page server port")
        .why("only for --page-server and the page-server/lazy-pages commands, refused"),
    o("ps-socket", None, Required, NoEffect, "FD", "use FD as the page server socket")
        .why("only for --page-server and the page-server/lazy-pages commands, refused"),
    o("status-fd", None, Required, Yes, "FD", "write \\0 to FD when ready"),
    o("tls-cacert", None, Required, NoEffect, "FILE", "TLS CA certificate").why("only secures page-server connections"),
    o("tls-cacrl", None, Required, NoEffect, "FILE", "TLS certificate revocation list").why("only secures page-server connections"),
    o("tls-cert", None, Required, NoEffect, "FILE", "TLS certificate").why("only secures page-server connections"),
    o("tls-key", None, Required, NoEffect, "FILE", "TLS private key").why("only secures page-server connections"),
    o("tls", None, Bool, NoEffect, "", "secure remote connections with TLS").why("only secures page-server connections"),
    o("tls-no-cn-verify", None, Flag, NoEffect, "", "do not verify the TLS common name").why("only secures page-server connections"),
];

/// CRIU 4.2's getopt string of short options.
pub const SHORT_OPTS: &str = "dSsRt:hD:o:v::x::Vr:jJ:lW:L:M:";

/// The long options in the order of CRIU 4.2's `long_opts` table (a Bool
/// row stands for `--X` then `--no-X`). getopt_long scans this order: it
/// decides which option an abbreviation means and how an ambiguity is
/// listed. Read off the real binary's ambiguity messages.
pub const GETOPT_ORDER: &[&str] = &[
    "tree", "leave-stopped", "leave-running", "restore-detached", "restore-sibling", "daemon",
    "images-dir", "work-dir", "log-file", "join-ns", "root", "ext-unix-sk", "help",
    "tcp-established", "close", "log-pid", "version", "evasive-devices", "pidfile", "veth-pair",
    "action-script", "link-remap", "shell-job", "file-locks", "page-server", "address", "port",
    "prev-images-dir", "ms", "track-mem", "auto-dedup", "libdir", "cpu-cap", "force-irmap",
    "ext-mount-map", "exec-cmd", "manage-cgroups", "cgroup-root", "inherit-fd", "feature",
    "skip-mnt", "enable-fs", "enable-external-sharing", "enable-external-masters", "freeze-cgroup",
    "ghost-limit", "irmap-scan-path", "lsm-profile", "timeout", "external", "empty-ns",
    "lazy-pages", "extra", "experimental", "all", "cgroup-props", "cgroup-props-file",
    "cgroup-dump-controller", "skip-in-flight", "deprecated", "display-stats", "weak-sysctls",
    "status-fd", "tcp-close", "verbosity", "ps-socket", "stream", "config", "no-default-config",
    "tls-cacert", "tls-cacrl", "tls-cert", "tls-key", "tls", "tls-no-cn-verify", "cgroup-yard",
    "pre-dump-mode", "file-validation", "skip-file-rwx-check", "lsm-mount-context",
    "network-lock", "mntns-compat-mode", "unprivileged", "ghost-fiemap", "allow-uprobes",
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
    fn getopt_order_lists_every_option_once() {
        let mut order: Vec<&str> = GETOPT_ORDER.to_vec();
        order.sort();
        let mut rows: Vec<&str> = OPTIONS.iter().map(|s| s.long).collect();
        rows.sort();
        assert_eq!(order, rows);
    }

    #[test]
    fn every_class_but_implemented_says_why() {
        for s in OPTIONS {
            if matches!(s.support, Support::Permits | Support::NoEffect) {
                assert!(!s.why.is_empty(), "--{} needs a reason for its class", s.long);
            }
        }
    }

    #[test]
    fn docs_list_every_option_with_its_class() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/compatibility.md"));
        for s in OPTIONS {
            let name = if s.kind == ArgKind::Bool { format!("--[no-]{}`", s.long) } else { format!("--{}`", s.long) };
            let row = doc
                .lines()
                .find(|l| l.starts_with("| `") && l.split('|').nth(1).is_some_and(|c| c.trim().ends_with(&name)))
                .unwrap_or_else(|| panic!("docs/compatibility.md has no row for --{}", s.long));
            let class = match s.support {
                Support::Yes => "implemented",
                Support::Permits => "permits objects",
                Support::NoEffect => "no effect here",
                Support::NotYet => "not yet",
            };
            assert_eq!(row.split('|').nth(2).map(str::trim), Some(class), "--{}: {row}", s.long);
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
