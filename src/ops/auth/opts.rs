//! Options a confined caller may not use (whatever set them: a request
//! field or its config_file): those that run programs (action scripts,
//! --exec-cmd: an exec'd program gets root's filesystem ids back), join or
//! make namespaces (--join-ns, --veth-pair, --empty-ns), set LSM labels,
//! mount cgroup trees or write their properties, put connections in TCP
//! repair mode (--tcp-established, which also runs the network lock's
//! iptables/nft as root), restore into criu's own session and terminal
//! (--shell-job on restore) or use another root.

use anyhow::Result;

use super::Caller;
use crate::opts::Opts;

/// The first option `opts` sets that a confined caller may not use.
fn forbidden(opts: &Opts, restore: bool) -> Option<&'static str> {
    let root_elsewhere = opts.root.as_ref().is_some_and(|r| r != std::path::Path::new("/"));
    [
        (!opts.scripts.is_empty(), "action-script (scripts would run as root)"),
        (opts.exec_cmd, "exec-cmd"),
        (!opts.join_ns.is_empty(), "join-ns"),
        (!opts.veth_pairs.is_empty(), "veth-pair"),
        (opts.empty_ns_net, "empty-ns"),
        (opts.lsm_profile.is_some(), "lsm-profile"),
        (opts.lsm_mount_context.is_some(), "lsm-mount-context"),
        (opts.cgroup_yard.is_some(), "cgroup-yard"),
        (opts.cgroup_props.is_some() || opts.cgroup_props_file.is_some(), "cgroup-props"),
        (opts.tcp_established_ok, "tcp-established (TCP repair mode and the network lock need CAP_NET_ADMIN)"),
        (restore && opts.shell_job, "shell-job on restore (the tasks would join criu's session and terminal)"),
        (root_elsewhere, "root"),
    ]
    .into_iter()
    .find_map(|(set, name)| set.then_some(name))
}

/// Refuse a request of `c` whose options go beyond its rights.
pub fn check(c: Option<&Caller>, opts: &Opts, restore: bool) -> Result<()> {
    let Some(c) = c else { return Ok(()) };
    match forbidden(opts, restore) {
        Some(name) => Err(c.deny(format!("use option {name}")).into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::forbidden;
    use crate::opts::Opts;

    #[test]
    fn privileged_options_are_named() {
        let o = Opts::default();
        assert_eq!(forbidden(&o, true), None);
        assert_eq!(forbidden(&Opts { shell_job: true, ..o.clone() }, false), None, "a dump may be a shell job");
        assert_eq!(forbidden(&Opts { shell_job: true, ..o.clone() }, true).map(|n| &n[..9]), Some("shell-job"));
        assert_eq!(forbidden(&Opts { scripts: vec!["/tmp/x".into()], ..o.clone() }, false).map(|n| &n[..13]), Some("action-script"));
        assert_eq!(forbidden(&Opts { join_ns: vec!["net:/x".into()], ..o.clone() }, false), Some("join-ns"));
        assert_eq!(forbidden(&Opts { root: Some("/".into()), ..o.clone() }, true), None);
        assert_eq!(forbidden(&Opts { root: Some("/srv".into()), ..o }, true), Some("root"));
    }
}
