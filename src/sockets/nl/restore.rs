//! A netlink socket made again from its record: bound to its port id
//! with its first 32 groups, subscribed to the others one by one (to
//! every group when it had no port id), connected (or disconnected) as
//! it was, its options set.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{bind, connect, getsockname, NetlinkAddr};

use super::opts;
use crate::images::pb::NetlinkSkEntry;
use crate::sys::sockopt_raw;

const NETLINK_ADD_MEMBERSHIP: i32 = 1;
/// sk_state of a socket connected somewhere.
const CONNECTED: u32 = 1;
/// sk_state after connect(AF_UNSPEC).
const DISCONNECTED: u32 = 0;

/// The group numbers (1-based) set in a group bitmap, from word `from` on.
pub fn groups_from(bitmap: &[u32], from: usize) -> Vec<u32> {
    let mut out = Vec::new();
    for (w, bits) in bitmap.iter().enumerate().skip(from) {
        for b in 0..32 {
            if bits >> b & 1 != 0 {
                out.push(w as u32 * 32 + b + 1);
            }
        }
    }
    out
}

/// The socket of record `ne`.
pub fn open(ne: &NetlinkSkEntry) -> Result<OwnedFd> {
    let who = format!("netlink socket {:#x} (file {})", ne.ino, ne.id);
    let sk = sockopt_raw::socket(libc::AF_NETLINK, libc::SOCK_RAW, ne.protocol as i32).with_context(|| format!("creating {who} (protocol {})", ne.protocol))?;
    if ne.portid != 0 {
        let first = ne.groups.first().copied().unwrap_or(0);
        bind(sk.as_raw_fd(), &NetlinkAddr::new(ne.portid, first)).with_context(|| format!("binding {who} to port id {} (groups {first:#x})", ne.portid))?;
        let got: NetlinkAddr = getsockname(sk.as_raw_fd()).with_context(|| format!("getsockname of {who}"))?;
        if got.pid() != ne.portid {
            bail!("{who} was bound to port id {} instead of {}", got.pid(), ne.portid);
        }
    }
    for g in groups_from(&ne.groups, usize::from(ne.portid != 0)) {
        sockopt_raw::set_int(sk.as_fd(), libc::SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g as i32).with_context(|| format!("subscribing {who} to group {g}"))?;
    }
    if ne.state == CONNECTED {
        if ne.dst_group > 32 {
            bail!("{who} is connected to group {}, beyond the 32 an address can name", ne.dst_group);
        }
        let group = if ne.dst_group == 0 { 0 } else { 1u32 << (ne.dst_group - 1) };
        connect(sk.as_raw_fd(), &NetlinkAddr::new(ne.dst_portid, group))
            .with_context(|| format!("connecting {who} to port id {} group {}", ne.dst_portid, ne.dst_group))?;
    } else if ne.state == DISCONNECTED && ne.portid != 0 {
        crate::sys::sockopt::disconnect(sk.as_fd()).with_context(|| format!("disconnecting {who}"))?;
    }
    opts::restore(sk.as_fd(), &ne.opts, &who)?;
    Ok(sk)
}
