//! inet and inet6 sockets (FD_TYPES INETSK): TCP listening, created or
//! bound; UDP, UDP-Lite and ICMP ping sockets (`ping`), bound or
//! connected; raw sockets; IPv4, IPv6 and IPv4-mapped IPv6 addresses,
//! with their IP, TCP and socket options, as CRIU 4.2 records them in
//! files.img; with --tcp-close, connected TCP sockets, which come back
//! closed. Connected TCP otherwise, queued datagrams and options the
//! image has no place for are refused at dump by name (`dump`).

mod addr;
mod diag;
mod dump;
mod ipopts;
mod mcast;
mod ping;
mod procnet;
mod restore;
mod uncarried;

pub use dump::state_name;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{Context, Result};

use crate::files::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{FdTypes, FileEntry};
use crate::images::ImageDir;
use crate::files::kind::{Images, State};
use crate::sockets::tcp_repair;

/// The inet socket kind. It claims the sockets whose protocol the kernel
/// names as an inet one (the unix kind takes the rest).
pub struct InetSk;

/// The kernel's names of inet protocols (the `system.sockprotoname` xattr).
const INET_PROTOS: &[&str] = &["TCP", "TCPv6", "UDP", "UDPv6", "UDP-Lite", "UDPLITEv6", "RAW", "RAWv6", "PING", "PINGv6"];

/// --tcp-close at restore (set by the restore in the images' state):
/// connected TCP sockets come back closed.
#[derive(Default)]
pub struct TcpClose(pub bool);

/// Restore: the streams of ESTABLISHED connections (tcp-stream-INO.img), by inode.
#[derive(Default)]
struct Streams(std::collections::HashMap<u32, tcp_repair::Stream>);

/// Sockets opened by this restore, by file id: their SO_REUSE* flags are
/// set as recorded once all are bound.
#[derive(Default)]
struct Opened(Vec<u32>);

impl FdKind for InetSk {
    fn name(&self) -> &'static str {
        "inet socket"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Inetsk
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_socket()
            && crate::sys::sockopt_raw::proto_name(&p.proc_path()).is_ok_and(|n| INET_PROTOS.contains(&n.as_str()))
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let ours = p.dup()?;
        let tcp_close = cx.fds.tcp_close;
        let paused = cx.fds.state.get_mut::<tcp_repair::Paused>();
        let (established, skip_in_flight) = (paused.allowed, paused.skip_in_flight);
        let found = cx.fds.state.get_mut::<dump::Collected>();
        found.1 .0 = established;
        found.2 .0 = skip_in_flight;
        let mut e = dump::entry(ours.as_fd(), p.md.ino() as u32, id, p.flags, found, tcp_close, &p.who())?;
        if established && tcp_repair::carried(e.state) && e.proto == libc::IPPROTO_TCP as u32 && e.dst_port != 0 {
            let who = format!("{} (a TCP connection, inode {})", p.who(), e.ino);
            // Locked before it is read (as CRIU): no packet reaches it until the restore.
            if let Some(c) = crate::net::lock::Conn::of(&e) {
                cx.fds.state.get_mut::<crate::net::lock::NetLock>().lock(&c).with_context(|| format!("locking {who}"))?;
            }
            let paused = cx.fds.state.get_mut::<tcp_repair::Paused>();
            let fd = paused.pause(ours).with_context(|| format!("TCP_REPAIR on {who}"))?;
            let (s, state) = tcp_repair::save(fd, &who)?;
            // The state read in repair mode is the one restored (as CRIU).
            e.state = state;
            paused.streams.push((e.ino, s));
        }
        Ok(FileEntry { r#type: FdTypes::Inetsk as i32, id, isk: Some(e), ..Default::default() })
    }

    fn open(&self, fe: &FileEntry, _fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let ie = fe.isk.as_ref().with_context(|| format!("file {} has no inet socket entry", fe.id))?;
        let tcp_close = cx.images.state.get::<TcpClose>().is_some_and(|t| t.0);
        // --tcp-close at restore: connections come back closed even when
        // their state was dumped (as CRIU 4.2).
        let stream = cx.images.state.get::<Streams>().and_then(|s| s.0.get(&ie.ino)).filter(|_| !tcp_close);
        let sk = restore::open_with(ie, tcp_close, stream)?;
        cx.state.get_mut::<Opened>().0.push(fe.id);
        Ok(Some(sk))
    }

    fn status_flags(&self, fe: &FileEntry) -> Option<u32> {
        fe.isk.as_ref().map(|i| i.flags)
    }

    fn opened_all(&self, cx: &mut OpenCx) -> Result<()> {
        let Some(ids) = cx.state.get::<Opened>() else { return Ok(()) };
        for id in &ids.0 {
            let (Some(fd), Some(ie)) = (cx.opened.get(id), cx.images.get(id).and_then(|f| f.isk.as_ref())) else { continue };
            restore::settle(fd.as_fd(), ie)?;
        }
        // Every connection of the tree exists: out of repair mode.
        for id in &ids.0 {
            let (Some(fd), Some(ie)) = (cx.opened.get(id), cx.images.get(id).and_then(|f| f.isk.as_ref())) else { continue };
            if cx.images.state.get::<Streams>().is_some_and(|s| s.0.contains_key(&ie.ino)) {
                tcp_repair::set_repair(fd.as_fd(), false).with_context(|| format!("leaving repair mode on inet socket {} (inode {})", ie.id, ie.ino))?;
            }
        }
        Ok(())
    }

    fn write_images(&self, st: &State, dir: &ImageDir) -> Result<()> {
        let Some(p) = st.get::<tcp_repair::Paused>() else { return Ok(()) };
        for (ino, s) in &p.streams {
            tcp_repair::write(dir, *ino, s)?;
        }
        Ok(())
    }

    fn load_images(&self, dir: &ImageDir, imgs: &mut Images) -> Result<()> {
        let mut found = std::collections::HashMap::new();
        for fe in imgs.entries.values() {
            let Some(ie) = fe.isk.as_ref().filter(|i| tcp_repair::carried(i.state) && i.proto == libc::IPPROTO_TCP as u32) else { continue };
            if let Some(s) = tcp_repair::read(dir, ie.ino)? {
                found.insert(ie.ino, s);
            }
        }
        imgs.state.get_mut::<Streams>().0 = found;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod ping_tests;
