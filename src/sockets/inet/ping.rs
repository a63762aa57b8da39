//! ICMP "ping" sockets (SOCK_DGRAM with IPPROTO_ICMP or IPPROTO_ICMPV6):
//! no sock_diag module answers for them (their peer on port 0 comes from
//! `procnet`), and making one again needs net.ipv4.ping_group_range to
//! hold the restoring process's group: when it doesn't, the restore says
//! so. Their ident is the port they are bound to (the record's src_port).

use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};

use crate::sys::sockopt_raw as raw;

const RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// A new ping socket of `family`/`proto` for `who`; a refusal by
/// ping_group_range is named with the range and our groups.
pub fn socket(family: i32, proto: i32, who: &str) -> Result<OwnedFd> {
    match raw::socket(family, libc::SOCK_DGRAM, proto) {
        Ok(s) => Ok(s),
        Err(nix::errno::Errno::EACCES) => {
            let range = std::fs::read_to_string(RANGE).unwrap_or_default();
            let groups = nix::unistd::getgroups().map(|g| g.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(",")).unwrap_or_default();
            bail!(
                "{who} is a ping socket, which the kernel lets only groups in net.ipv4.ping_group_range make: the range is {:?}, we are gid {} (groups [{groups}]); widen it (sysctl net.ipv4.ping_group_range) to restore",
                range.trim(),
                nix::unistd::getegid()
            )
        }
        Err(e) => Err(e).with_context(|| format!("socket({family}, SOCK_DGRAM, {proto}) for {who}")),
    }
}
