//! The generic socket options (sk_opts_entry) both ways, as CRIU 4.2
//! records and sets them: buffer sizes and their lock, priority, low-water
//! mark, mark, timeouts, the reuse/broadcast/keepalive/dontroute/no_check/
//! oobinline flags, linger, the bound device and a classic BPF filter.
//! Options the record has no place for, when set, are refused by name
//! (a restore would silently lose them).

use std::os::fd::BorrowedFd;

use anyhow::{bail, Context, Result};

use crate::images::pb::SkOptsEntry;
use crate::sys::sockopt_raw::{self as raw, get_int, set_int};

const SOL: i32 = libc::SOL_SOCKET;

fn flag(fd: BorrowedFd<'_>, name: i32, what: &str) -> Result<bool> {
    Ok(get_int(fd, SOL, name).with_context(|| format!("getsockopt({what})"))? != 0)
}

fn timeval(fd: BorrowedFd<'_>, name: i32, what: &str) -> Result<(u64, u64)> {
    let b = raw::get_bytes(fd, SOL, name, 16).with_context(|| format!("getsockopt({what})"))?;
    if b.len() != 16 {
        bail!("getsockopt({what}) gave {} bytes", b.len());
    }
    let sec = i64::from_ne_bytes(b[..8].try_into()?);
    let usec = i64::from_ne_bytes(b[8..].try_into()?);
    Ok((sec as u64, usec as u64))
}

/// One BPF instruction as the image holds it: code, jt, jf, k from the top
/// bits down (the layout CRIU uses across architectures).
pub fn encode_insn(f: &libc::sock_filter) -> u64 {
    (u64::from(f.code) << 48) | (u64::from(f.jt) << 40) | (u64::from(f.jf) << 32) | u64::from(f.k)
}

/// [`encode_insn`] backwards.
pub fn decode_insn(v: u64) -> libc::sock_filter {
    libc::sock_filter { code: (v >> 48) as u16, jt: (v >> 40) as u8, jf: (v >> 32) as u8, k: v as u32 }
}

/// The record of socket `fd`'s options.
pub fn dump(fd: BorrowedFd<'_>) -> Result<SkOptsEntry> {
    for (name, what) in [
        (libc::SO_TIMESTAMP, "SO_TIMESTAMP"),
        (libc::SO_TIMESTAMPNS, "SO_TIMESTAMPNS"),
        (libc::SO_TIMESTAMPING, "SO_TIMESTAMPING"),
        (libc::SO_RXQ_OVFL, "SO_RXQ_OVFL"),
        (libc::SO_WIFI_STATUS, "SO_WIFI_STATUS"),
        (libc::SO_SELECT_ERR_QUEUE, "SO_SELECT_ERR_QUEUE"),
        (libc::SO_ZEROCOPY, "SO_ZEROCOPY"),
    ] {
        if get_int(fd, SOL, name).unwrap_or(0) != 0 {
            bail!("the socket has {what} set, which the image has no place for");
        }
    }
    let linger = raw::get_bytes(fd, SOL, libc::SO_LINGER, 8).context("getsockopt(SO_LINGER)")?;
    let (on, secs) = match linger.as_slice() {
        [a, b, c, d, e, f, g, h] => (i32::from_ne_bytes([*a, *b, *c, *d]), i32::from_ne_bytes([*e, *f, *g, *h])),
        _ => bail!("getsockopt(SO_LINGER) gave {} bytes", linger.len()),
    };
    let dev = raw::get_bytes(fd, SOL, libc::SO_BINDTODEVICE, libc::IFNAMSIZ).context("getsockopt(SO_BINDTODEVICE)")?;
    let dev = String::from_utf8_lossy(dev.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
    let filter = raw::get_filter(fd).context("getsockopt(SO_GET_FILTER)")?;
    let (snd_sec, snd_usec) = timeval(fd, libc::SO_SNDTIMEO, "SO_SNDTIMEO")?;
    let (rcv_sec, rcv_usec) = timeval(fd, libc::SO_RCVTIMEO, "SO_RCVTIMEO")?;
    let mark = get_int(fd, SOL, libc::SO_MARK).context("getsockopt(SO_MARK)")? as u32;
    // Only unix and netlink sockets take these (others: EOPNOTSUPP).
    let passcred = flag(fd, libc::SO_PASSCRED, "SO_PASSCRED").unwrap_or(false);
    let passsec = flag(fd, libc::SO_PASSSEC, "SO_PASSSEC").unwrap_or(false);
    let keepalive = flag(fd, libc::SO_KEEPALIVE, "SO_KEEPALIVE")?;
    Ok(SkOptsEntry {
        so_sndbuf: get_int(fd, SOL, libc::SO_SNDBUF).context("getsockopt(SO_SNDBUF)")? as u32,
        so_rcvbuf: get_int(fd, SOL, libc::SO_RCVBUF).context("getsockopt(SO_RCVBUF)")? as u32,
        so_snd_tmo_sec: snd_sec,
        so_snd_tmo_usec: snd_usec,
        so_rcv_tmo_sec: rcv_sec,
        so_rcv_tmo_usec: rcv_usec,
        reuseaddr: Some(flag(fd, libc::SO_REUSEADDR, "SO_REUSEADDR")?),
        so_priority: Some(get_int(fd, SOL, libc::SO_PRIORITY).context("getsockopt(SO_PRIORITY)")? as u32),
        so_rcvlowat: Some(get_int(fd, SOL, libc::SO_RCVLOWAT).context("getsockopt(SO_RCVLOWAT)")? as u32),
        so_mark: (mark != 0).then_some(mark),
        // CRIU 4.2 leaves these two out of inet records; kept when set.
        so_passcred: passcred.then_some(true),
        so_passsec: passsec.then_some(true),
        so_dontroute: Some(flag(fd, libc::SO_DONTROUTE, "SO_DONTROUTE")?),
        so_no_check: Some(flag(fd, libc::SO_NO_CHECK, "SO_NO_CHECK")?),
        so_bound_dev: (!dev.is_empty()).then_some(dev),
        so_filter: filter.iter().map(encode_insn).collect(),
        so_reuseport: Some(flag(fd, libc::SO_REUSEPORT, "SO_REUSEPORT")?),
        so_broadcast: Some(flag(fd, libc::SO_BROADCAST, "SO_BROADCAST")?),
        so_keepalive: Some(keepalive),
        so_oobinline: Some(u32::from(flag(fd, libc::SO_OOBINLINE, "SO_OOBINLINE")?)),
        so_linger: (on != 0).then_some(secs as u32),
        so_buf_lock: get_int(fd, SOL, libc::SO_BUF_LOCK).ok().map(|v| v as u32),
        ..Default::default()
    })
}

fn set_timeval(fd: BorrowedFd<'_>, name: i32, sec: u64, usec: u64) -> nix::Result<()> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&(sec as i64).to_ne_bytes());
    b.extend_from_slice(&(usec as i64).to_ne_bytes());
    raw::set_bytes(fd, SOL, name, &b)
}

/// Set socket `fd`'s options from its record, as CRIU 4.2's restore does
/// (SO_REUSEADDR and SO_REUSEPORT are the caller's: they are held on while
/// the sockets sharing a port are bound). `who` names the socket.
pub fn restore(fd: BorrowedFd<'_>, e: &SkOptsEntry, who: &str) -> Result<()> {
    let set = |level: i32, name: i32, v: i32, what: &str| set_int(fd, level, name, v).with_context(|| format!("setsockopt({what}) on {who}"));
    // The kernel doubles what is set; the record holds the doubled value.
    set(SOL, libc::SO_SNDBUFFORCE, (e.so_sndbuf / 2) as i32, "SO_SNDBUFFORCE")?;
    set(SOL, libc::SO_RCVBUFFORCE, (e.so_rcvbuf / 2) as i32, "SO_RCVBUFFORCE")?;
    if let Some(v) = e.so_buf_lock {
        set(SOL, libc::SO_BUF_LOCK, v as i32, "SO_BUF_LOCK")?;
    }
    if let Some(v) = e.so_priority {
        set(SOL, libc::SO_PRIORITY, v as i32, "SO_PRIORITY")?;
    }
    if let Some(v) = e.so_rcvlowat {
        set(SOL, libc::SO_RCVLOWAT, v as i32, "SO_RCVLOWAT")?;
    }
    if let Some(v) = e.so_mark {
        set(SOL, libc::SO_MARK, v as i32, "SO_MARK")?;
    }
    for (on, name, what) in [
        (e.so_passcred, libc::SO_PASSCRED, "SO_PASSCRED"),
        (e.so_passsec, libc::SO_PASSSEC, "SO_PASSSEC"),
        (e.so_dontroute, libc::SO_DONTROUTE, "SO_DONTROUTE"),
        (e.so_no_check, libc::SO_NO_CHECK, "SO_NO_CHECK"),
        (e.so_broadcast, libc::SO_BROADCAST, "SO_BROADCAST"),
        (e.so_oobinline.map(|v| v != 0), libc::SO_OOBINLINE, "SO_OOBINLINE"),
        (e.so_keepalive, libc::SO_KEEPALIVE, "SO_KEEPALIVE"),
    ] {
        if on == Some(true) {
            set(SOL, name, 1, what)?;
        }
    }
    if let Some(secs) = e.so_linger {
        let mut b = 1i32.to_ne_bytes().to_vec();
        b.extend_from_slice(&(secs as i32).to_ne_bytes());
        raw::set_bytes(fd, SOL, libc::SO_LINGER, &b).with_context(|| format!("setsockopt(SO_LINGER) on {who}"))?;
    }
    // Older images keep the keepalive knobs here (newer ones in tcp_opts).
    for (v, name, what) in [
        (e.tcp_keepcnt, libc::TCP_KEEPCNT, "TCP_KEEPCNT"),
        (e.tcp_keepidle, libc::TCP_KEEPIDLE, "TCP_KEEPIDLE"),
        (e.tcp_keepintvl, libc::TCP_KEEPINTVL, "TCP_KEEPINTVL"),
    ] {
        if let Some(v) = v {
            set(libc::SOL_TCP, name, v as i32, what)?;
        }
    }
    set_timeval(fd, libc::SO_SNDTIMEO, e.so_snd_tmo_sec, e.so_snd_tmo_usec).with_context(|| format!("setsockopt(SO_SNDTIMEO) on {who}"))?;
    set_timeval(fd, libc::SO_RCVTIMEO, e.so_rcv_tmo_sec, e.so_rcv_tmo_usec).with_context(|| format!("setsockopt(SO_RCVTIMEO) on {who}"))?;
    if let Some(dev) = e.so_bound_dev.as_deref().filter(|d| !d.is_empty()) {
        raw::set_bytes(fd, SOL, libc::SO_BINDTODEVICE, dev.as_bytes()).with_context(|| format!("binding {who} to device {dev}"))?;
    }
    if !e.so_filter.is_empty() {
        let prog: Vec<libc::sock_filter> = e.so_filter.iter().map(|&v| decode_insn(v)).collect();
        raw::attach_filter(fd, &prog).with_context(|| format!("SO_ATTACH_FILTER on {who}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_instruction_layout() {
        let f = libc::sock_filter { code: 0x15, jt: 1, jf: 2, k: 0x0800 };
        let v = encode_insn(&f);
        assert_eq!(v, 0x0015_0102_0000_0800);
        let g = decode_insn(v);
        assert_eq!((g.code, g.jt, g.jf, g.k), (0x15, 1, 2, 0x0800));
    }
}
