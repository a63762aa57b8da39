//! An inet/inet6 socket made again from its inet_sk_entry, in CRIU 4.2's
//! order: socket (a ping socket's through `ping`), IPV6_V6ONLY,
//! SO_REUSEADDR/SO_REUSEPORT held on (sockets of the tree may share a
//! port), bind (through IP_FREEBIND when recorded, and for IPv6, as the
//! address may still be tentative), listen, connect (datagram sockets to
//! port 0 too), the IP and socket options, shutdown. [`settle`] gives each socket its own
//! SO_REUSEADDR/SO_REUSEPORT once every socket is bound.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket;

use super::{addr, ipopts};
use super::dump::{TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN};
use crate::sockets::tcp_repair::{self, Stream};
use crate::images::pb::InetSkEntry;
use crate::sys::sockopt_raw::{self as raw, set_int};

/// The socket of record `ie` again (its file status flags are the
/// caller's). A connected TCP socket is refused unless `tcp_close`
/// (--tcp-close): then it comes back as CRIU restores it, a TCP socket
/// neither bound nor connected, shut both ways.
#[cfg(test)]
pub fn open(ie: &InetSkEntry, tcp_close: bool) -> Result<OwnedFd> {
    open_with(ie, tcp_close, None)
}

/// [`open`], with the stream of an ESTABLISHED connection (from its
/// tcp-stream image): the connection comes back through repair mode, and
/// stays in it (the caller takes it out once every socket exists).
pub fn open_with(ie: &InetSkEntry, tcp_close: bool, stream: Option<&Stream>) -> Result<OwnedFd> {
    let who = format!("inet socket {} (inode {})", ie.id, ie.ino);
    let (family, ty, proto) = (ie.family as i32, ie.r#type as i32, ie.proto as i32);
    if family != libc::AF_INET && family != libc::AF_INET6 {
        bail!("{who} has family {family}: not an inet socket");
    }
    if ty != libc::SOCK_STREAM && ty != libc::SOCK_DGRAM && ty != libc::SOCK_RAW {
        bail!("{who} has type {ty}: not supported");
    }
    let v6 = family == libc::AF_INET6;
    let n = if v6 { 4 } else { 1 };
    if ie.src_addr.len() < n || ie.dst_addr.len() < n || (v6 && (ie.src_addr.len() != 4 || ie.dst_addr.len() != 4)) {
        bail!("{who}: addresses of {} and {} word(s) for family {family}", ie.src_addr.len(), ie.dst_addr.len());
    }
    let tcp = proto == libc::IPPROTO_TCP && ty == libc::SOCK_STREAM;
    let stream = stream.filter(|_| tcp && tcp_repair::carried(ie.state) && ie.dst_port != 0);
    let closed = tcp && ie.dst_port != 0 && stream.is_none();
    if closed && !tcp_close {
        bail!("{who} is a connected TCP socket (state {}): not supported yet (--tcp-close restores it closed)", ie.state);
    }
    let ping = ty == libc::SOCK_DGRAM && (proto == libc::IPPROTO_ICMP || proto == libc::IPPROTO_ICMPV6);
    let sk = if ping {
        super::ping::socket(family, proto, &who)?
    } else {
        raw::socket(family, ty, proto).with_context(|| format!("socket({family}, {ty}, {proto}) for {who}"))?
    };
    let fd = sk.as_fd();
    let set = |level: i32, name: i32, v: i32, what: &str| set_int(fd, level, name, v).with_context(|| format!("setsockopt({what}) on {who}"));
    if stream.is_some() {
        tcp_repair::set_repair(fd, true).with_context(|| format!("TCP_REPAIR on {who}"))?;
    }
    if ie.v6only == Some(true) {
        set(libc::SOL_IPV6, libc::IPV6_V6ONLY, 1, "IPV6_V6ONLY")?;
    }
    set(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1, "SO_REUSEADDR")?;
    set(libc::SOL_SOCKET, libc::SO_REUSEPORT, 1, "SO_REUSEPORT")?;
    let freebind = ie.ip_opts.as_ref().and_then(|o| o.freebind) == Some(true);
    if ie.src_port != 0 && !closed {
        let scope = match ie.ifname.as_deref() {
            Some(dev) => std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .with_context(|| format!("{who} is bound through device {dev}, which is not here"))?,
            None => 0,
        };
        let a = addr::from_image(ie.family, ie.src_port, &ie.src_addr, scope).with_context(|| who.clone())?;
        let tentative = v6 && ty != libc::SOCK_RAW;
        // IP_FREEBIND as recorded before bind: the address may not be local.
        if tentative || freebind {
            set(libc::SOL_IP, libc::IP_FREEBIND, 1, "IP_FREEBIND")?;
        }
        raw::bind(fd, &a).with_context(|| format!("binding {who} to {a}"))?;
        if tentative && !freebind {
            set(libc::SOL_IP, libc::IP_FREEBIND, 0, "IP_FREEBIND")?;
        }
    }
    if ie.state == TCP_LISTEN {
        if proto != libc::IPPROTO_TCP {
            bail!("{who} is listening but its protocol is {proto}");
        }
        raw::listen(fd, ie.backlog as i32).with_context(|| format!("listen on {who}"))?;
    }
    // A datagram socket connected to port 0 (a ping or raw socket's usual
    // peer) has only its state and address to say so.
    let dgram_peer = !tcp && ie.state == TCP_ESTABLISHED && ie.dst_addr.iter().any(|w| *w != 0);
    if (ie.dst_port != 0 || dgram_peer) && !closed {
        let a = addr::from_image(ie.family, ie.dst_port, &ie.dst_addr, 0).with_context(|| who.clone())?;
        match stream {
            Some(s) => {
                // The queues go back into buffers of their recorded sizes.
                set(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, (ie.opts.so_sndbuf / 2) as i32, "SO_SNDBUFFORCE")?;
                set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, (ie.opts.so_rcvbuf / 2) as i32, "SO_RCVBUFFORCE")?;
                let src = addr::from_image(ie.family, ie.src_port, &ie.src_addr, 0).with_context(|| who.clone())?;
                tcp_repair::restore(fd, s, ie.state, &src, &a, &who)?
            }
            None => raw::connect(fd, &a).with_context(|| format!("connecting {who} to {a}"))?,
        }
    }
    if freebind {
        set(libc::SOL_IP, libc::IP_FREEBIND, 1, "IP_FREEBIND")?;
    }
    if let Some(o) = &ie.ip_opts {
        ipopts::restore_ip(fd, o, v6, proto, &who)?;
    }
    crate::sockets::opts::restore(fd, &ie.opts, &who)?;
    if let Some(t) = ie.tcp_opts.as_ref().filter(|_| proto == libc::IPPROTO_TCP && ty == libc::SOCK_STREAM) {
        ipopts::restore_tcp(fd, t, &who)?;
    }
    let shut = if closed { Some(3) } else { ie.shutdown.filter(|s| *s != 0) };
    if let Some(how) = shut {
        let how = match how & 3 {
            1 => socket::Shutdown::Read,
            2 => socket::Shutdown::Write,
            _ => socket::Shutdown::Both,
        };
        use std::os::fd::AsRawFd;
        match socket::shutdown(fd.as_raw_fd(), how) {
            Ok(()) => {}
            // A socket never connected takes the bits and says ENOTCONN.
            Err(nix::errno::Errno::ENOTCONN) if ie.state == TCP_CLOSE || closed => {}
            Err(e) => return Err(e).with_context(|| format!("shutdown({how:?}) of {who}")),
        }
    }
    Ok(sk)
}

/// Once every socket of the tree is bound: SO_REUSEADDR and SO_REUSEPORT
/// as recorded.
pub fn settle(fd: BorrowedFd<'_>, ie: &InetSkEntry) -> Result<()> {
    let who = format!("inet socket {} (inode {})", ie.id, ie.ino);
    for (on, name, what) in [
        (ie.opts.reuseaddr, libc::SO_REUSEADDR, "SO_REUSEADDR"),
        (ie.opts.so_reuseport, libc::SO_REUSEPORT, "SO_REUSEPORT"),
    ] {
        if on != Some(true) {
            set_int(fd, libc::SOL_SOCKET, name, 0).with_context(|| format!("setsockopt({what}) on {who}"))?;
        }
    }
    Ok(())
}
