//! Netlink sockets of any protocol (route, generic, uevent, ...), as
//! CRIU 4.2 records them (netlink_sk_entry in files.img): protocol, bound
//! port id, groups, the port id and group it is connected to, state, file
//! flags and generic socket options. What the record has no place for is
//! refused at dump by name, leaving the tree running: messages queued to
//! read or a pending error (CRIU 4.2 refuses queued data too), a dump the
//! kernel is still producing, NETLINK_* options (PKTINFO, EXT_ACK, ...),
//! SOCK_DGRAM sockets (the record has no type: they would come back
//! SOCK_RAW), and sockets of another network namespace; socket options as
//! `sockets::opts` carries and refuses them. Groups above 32
//! are carried (CRIU 4.2 refuses them); a socket subscribed without a port
//! id gets its groups back without being bound. A socket in flight in a
//! unix socket's queue is carried the same way.

mod diag;
mod opts;
mod restore;

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

pub use diag::Diag;

use crate::files::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{FdTypes, FileEntry, NetlinkSkEntry};
use crate::sys::nlsock;
use crate::sys::sockopt_raw::{get_int, proto_name};

/// The netlink socket kind (FD_TYPES NETLINKSK).
pub struct NetlinkSk;

/// Every netlink socket the kernel lists, read once per dump.
#[derive(Default)]
struct Listed(Option<HashMap<u32, Diag>>);

/// SOL_NETLINK options with no place in the record, each refused when on.
const NL_OPTS: &[(i32, &str)] = &[
    (3, "NETLINK_PKTINFO"),
    (4, "NETLINK_BROADCAST_ERROR"),
    (5, "NETLINK_NO_ENOBUFS"),
    (8, "NETLINK_LISTEN_ALL_NSID"),
    (10, "NETLINK_CAP_ACK"),
    (11, "NETLINK_EXT_ACK"),
    (12, "NETLINK_GET_STRICT_CHK"),
];

/// Refuse what a restore would lose: another network namespace, a type
/// other than SOCK_RAW, queued messages or a pending error, NETLINK_*
/// options. `who` names the socket.
fn check_carriable(fd: BorrowedFd<'_>, who: &str) -> Result<()> {
    let ours = std::fs::metadata("/proc/self/ns/net").context("our network namespace")?.ino();
    if nlsock::netns_ino(fd).with_context(|| format!("the network namespace of {who}"))? != ours {
        bail!("{who} lives in another network namespace: not supported");
    }
    let ty = get_int(fd, libc::SOL_SOCKET, libc::SO_TYPE).with_context(|| format!("SO_TYPE of {who}"))?;
    if ty != libc::SOCK_RAW {
        bail!("{who} is of type {ty} (SOCK_DGRAM): the image has no place for the type (it would come back SOCK_RAW)");
    }
    let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut pfd, PollTimeout::ZERO).with_context(|| format!("poll of {who}"))?;
    let ev = pfd[0].revents().unwrap_or(PollFlags::empty());
    if ev.contains(PollFlags::POLLIN) {
        bail!("{who} has messages queued to read: they can't be carried (CRIU 4.2 refuses them too)");
    }
    if ev.contains(PollFlags::POLLERR) {
        bail!("{who} has a pending error (a lost message, ENOBUFS): it can't be carried");
    }
    for (opt, name) in NL_OPTS {
        if get_int(fd, libc::SOL_NETLINK, *opt).unwrap_or(0) != 0 {
            bail!("{who} has {name} set, which the image has no place for");
        }
    }
    Ok(())
}

/// The record of netlink socket `fd` (inode `ino`, file `id`), from what
/// the kernel lists of it (None: neither bound nor subscribed).
fn entry(fd: BorrowedFd<'_>, ino: u32, id: u32, file_flags: u32, d: Option<&Diag>, who: &str) -> Result<NetlinkSkEntry> {
    let mut e = NetlinkSkEntry { id, ino, flags: file_flags, ..Default::default() };
    match d {
        Some(d) => {
            if d.flags & diag::FLAG_CB_RUNNING != 0 {
                bail!("{who} is being sent a dump by the kernel (a request still answering): it can't be carried");
            }
            e.protocol = d.protocol;
            e.state = d.state;
            e.portid = d.portid;
            e.groups = d.groups.clone();
            e.dst_portid = d.dst_portid;
            e.dst_group = d.dst_group;
            e.ns_id = Some(crate::ns::sock_net_ns_id());
        }
        None => e.protocol = get_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL).with_context(|| format!("SO_PROTOCOL of {who}"))? as u32,
    }
    e.opts = opts::dump(fd, who)?;
    Ok(e)
}

impl FdKind for NetlinkSk {
    fn name(&self) -> &'static str {
        "netlink socket"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Netlinksk
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_socket() && proto_name(&p.proc_path()).is_ok_and(|n| n == "NETLINK")
    }

    /// A netlink socket passed in a unix socket's queue (SCM_RIGHTS) is carried too.
    fn travels(&self) -> bool {
        true
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let ino = p.md.ino() as u32;
        let ours = p.dup()?;
        let who = format!("netlink socket {ino:#x} ({})", p.who());
        check_carriable(ours.as_fd(), &who)?;
        let listed = cx.fds.state.get_mut::<Listed>();
        if listed.0.is_none() {
            listed.0 = Some(diag::all().context("listing the netlink sockets")?);
        }
        let d = listed.0.as_ref().and_then(|all| all.get(&ino));
        let e = entry(ours.as_fd(), ino, id, p.flags, d, &who)?;
        Ok(FileEntry { r#type: FdTypes::Netlinksk as i32, id, nlsk: Some(e), ..Default::default() })
    }

    fn open(&self, fe: &FileEntry, _fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let ne = fe.nlsk.as_ref().with_context(|| format!("file {} has no netlink socket entry", fe.id))?;
        restore::open(ne).map(Some)
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.nlsk.as_ref().map(|n| n.flags)
    }
}

#[cfg(test)]
mod tests;
