//! The generic socket options of a netlink socket (sk_opts_entry) both
//! ways, with the fields CRIU 4.2 fills for one. Options the record has
//! no place for, or that we do not carry yet (a bound device, a BPF
//! filter, linger), are refused by name when set.

use std::os::fd::BorrowedFd;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::images::pb::SkOptsEntry;
use crate::sys::nlsock::{filter_len, get_int, set_int};

const SOL: i32 = libc::SOL_SOCKET;

fn int(fd: BorrowedFd<'_>, name: i32, what: &str) -> Result<i32> {
    get_int(fd, SOL, name).with_context(|| format!("getsockopt({what})"))
}

fn split(t: TimeVal) -> (u64, u64) {
    (t.tv_sec() as u64, t.tv_usec() as u64)
}

/// The record of socket `fd`'s options (`who` names it in refusals).
pub fn dump(fd: BorrowedFd<'_>, who: &str) -> Result<SkOptsEntry> {
    for (name, what) in [
        (libc::SO_TIMESTAMP, "SO_TIMESTAMP"),
        (libc::SO_TIMESTAMPNS, "SO_TIMESTAMPNS"),
        (libc::SO_TIMESTAMPING, "SO_TIMESTAMPING"),
        (libc::SO_RXQ_OVFL, "SO_RXQ_OVFL"),
        (libc::SO_SELECT_ERR_QUEUE, "SO_SELECT_ERR_QUEUE"),
    ] {
        if get_int(fd, SOL, name).unwrap_or(0) != 0 {
            bail!("{who} has {what} set, which the image has no place for");
        }
    }
    if filter_len(fd).context("getsockopt(SO_GET_FILTER)")? != 0 {
        bail!("{who} has a socket filter attached: not supported yet for netlink sockets");
    }
    if getsockopt(&fd, sockopt::Linger).context("getsockopt(SO_LINGER)")?.l_onoff != 0 {
        bail!("{who} has SO_LINGER set: not supported yet for netlink sockets");
    }
    let dev = getsockopt(&fd, sockopt::BindToDevice).context("getsockopt(SO_BINDTODEVICE)")?;
    if !dev.is_empty() {
        bail!("{who} is bound to device {dev:?}: not supported yet for netlink sockets");
    }
    let (snd_sec, snd_usec) = split(getsockopt(&fd, sockopt::SendTimeout).context("getsockopt(SO_SNDTIMEO)")?);
    let (rcv_sec, rcv_usec) = split(getsockopt(&fd, sockopt::ReceiveTimeout).context("getsockopt(SO_RCVTIMEO)")?);
    let flag = |name, what: &str| int(fd, name, what).map(|v| v != 0);
    let mark = int(fd, libc::SO_MARK, "SO_MARK")? as u32;
    Ok(SkOptsEntry {
        so_sndbuf: int(fd, libc::SO_SNDBUF, "SO_SNDBUF")? as u32,
        so_rcvbuf: int(fd, libc::SO_RCVBUF, "SO_RCVBUF")? as u32,
        so_snd_tmo_sec: snd_sec,
        so_snd_tmo_usec: snd_usec,
        so_rcv_tmo_sec: rcv_sec,
        so_rcv_tmo_usec: rcv_usec,
        reuseaddr: Some(flag(libc::SO_REUSEADDR, "SO_REUSEADDR")?),
        so_priority: Some(int(fd, libc::SO_PRIORITY, "SO_PRIORITY")? as u32),
        so_rcvlowat: Some(int(fd, libc::SO_RCVLOWAT, "SO_RCVLOWAT")? as u32),
        so_mark: (mark != 0).then_some(mark),
        so_passcred: Some(flag(libc::SO_PASSCRED, "SO_PASSCRED")?),
        so_passsec: Some(flag(libc::SO_PASSSEC, "SO_PASSSEC")?),
        so_dontroute: Some(flag(libc::SO_DONTROUTE, "SO_DONTROUTE")?),
        so_no_check: Some(flag(libc::SO_NO_CHECK, "SO_NO_CHECK")?),
        so_reuseport: Some(flag(libc::SO_REUSEPORT, "SO_REUSEPORT")?),
        so_broadcast: Some(flag(libc::SO_BROADCAST, "SO_BROADCAST")?),
        so_keepalive: Some(flag(libc::SO_KEEPALIVE, "SO_KEEPALIVE")?),
        so_oobinline: Some(u32::from(flag(libc::SO_OOBINLINE, "SO_OOBINLINE")?)),
        so_buf_lock: Some(int(fd, libc::SO_BUF_LOCK, "SO_BUF_LOCK")? as u32),
        ..Default::default()
    })
}

/// Set socket `fd`'s options from its record (`who` names it).
pub fn restore(fd: BorrowedFd<'_>, e: &SkOptsEntry, who: &str) -> Result<()> {
    if e.so_bound_dev.as_deref().is_some_and(|d| !d.is_empty()) || !e.so_filter.is_empty() || e.so_linger.is_some() {
        bail!("{who}: the image gives it a bound device, a socket filter or SO_LINGER, which we do not restore on netlink sockets yet");
    }
    let set = |name: i32, v: i32, what: &str| set_int(fd, SOL, name, v).with_context(|| format!("setsockopt({what}) on {who}"));
    // The kernel doubles what is set: the record holds the doubled value.
    set(libc::SO_SNDBUFFORCE, (e.so_sndbuf / 2) as i32, "SO_SNDBUFFORCE")?;
    set(libc::SO_RCVBUFFORCE, (e.so_rcvbuf / 2) as i32, "SO_RCVBUFFORCE")?;
    // After the FORCE calls, which lock both sizes.
    set(libc::SO_BUF_LOCK, e.so_buf_lock.unwrap_or(0) as i32, "SO_BUF_LOCK")?;
    for (v, name, what) in [
        (e.so_priority, libc::SO_PRIORITY, "SO_PRIORITY"),
        (e.so_rcvlowat, libc::SO_RCVLOWAT, "SO_RCVLOWAT"),
        (e.so_mark, libc::SO_MARK, "SO_MARK"),
        (e.so_oobinline, libc::SO_OOBINLINE, "SO_OOBINLINE"),
    ] {
        if let Some(v) = v {
            set(name, v as i32, what)?;
        }
    }
    for (on, name, what) in [
        (e.reuseaddr, libc::SO_REUSEADDR, "SO_REUSEADDR"),
        (e.so_passcred, libc::SO_PASSCRED, "SO_PASSCRED"),
        (e.so_passsec, libc::SO_PASSSEC, "SO_PASSSEC"),
        (e.so_dontroute, libc::SO_DONTROUTE, "SO_DONTROUTE"),
        (e.so_no_check, libc::SO_NO_CHECK, "SO_NO_CHECK"),
        (e.so_reuseport, libc::SO_REUSEPORT, "SO_REUSEPORT"),
        (e.so_broadcast, libc::SO_BROADCAST, "SO_BROADCAST"),
        (e.so_keepalive, libc::SO_KEEPALIVE, "SO_KEEPALIVE"),
    ] {
        if on == Some(true) {
            set(name, 1, what)?;
        }
    }
    let tv = |s: u64, u: u64| TimeVal::new(s as _, u as _);
    setsockopt(&fd, sockopt::SendTimeout, &tv(e.so_snd_tmo_sec, e.so_snd_tmo_usec)).with_context(|| format!("setsockopt(SO_SNDTIMEO) on {who}"))?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv(e.so_rcv_tmo_sec, e.so_rcv_tmo_usec)).with_context(|| format!("setsockopt(SO_RCVTIMEO) on {who}"))?;
    Ok(())
}
