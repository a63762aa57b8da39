//! A connection made again on a new socket in repair mode, bound to its
//! address: each queue's first sequence number, connect (no SYN in repair
//! mode), the negotiated options and timestamp, the receive queue, the
//! send queue (its sent part in repair mode, the unsent part sent as
//! data), the window, TCP_NODELAY and TCP_CORK (kept here by CRIUs before
//! 4.x). The socket stays in
//! repair mode; the caller takes it out once the tree's sockets exist.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use anyhow::{bail, Context, Result};

use super::*;
use crate::sys::sockopt_raw::{connect, send, set_bytes};

/// Restore `s` on `fd` (in repair mode, bound), connected to `dst`.
pub fn restore(fd: BorrowedFd<'_>, s: &Stream, dst: &SocketAddr, who: &str) -> Result<()> {
    let e = &s.entry;
    if s.inq.len() != e.inq_len as usize || s.outq.len() != e.outq_len as usize {
        bail!("{who}: the stream image holds {} and {} queued bytes for {} and {}", s.inq.len(), s.outq.len(), e.inq_len, e.outq_len);
    }
    let unsent = e.unsq_len.unwrap_or(0);
    if unsent > e.outq_len {
        bail!("{who}: {unsent} unsent bytes of a send queue of {}", e.outq_len);
    }
    seq(fd, TCP_RECV_QUEUE, e.inq_seq.wrapping_sub(e.inq_len), who)?;
    seq(fd, TCP_SEND_QUEUE, e.outq_seq.wrapping_sub(e.outq_len), who)?;
    connect(fd, dst).with_context(|| format!("connecting {who} to {dst} in repair mode"))?;
    let mut opts = vec![(TCPOPT_MAXSEG, e.mss_clamp)];
    if e.opt_mask & TCPI_OPT_WSCALE != 0 {
        opts.push((TCPOPT_WINDOW, e.snd_wscale + (e.rcv_wscale.unwrap_or(0) << 16)));
    }
    if e.opt_mask & TCPI_OPT_TIMESTAMPS != 0 {
        opts.push((TCPOPT_TIMESTAMP, 0));
    }
    if e.opt_mask & TCPI_OPT_SACK != 0 {
        opts.push((TCPOPT_SACK_PERM, 0));
    }
    let raw: Vec<u8> = opts.iter().flat_map(|(c, v)| c.to_ne_bytes().into_iter().chain(v.to_ne_bytes())).collect();
    set_bytes(fd, libc::SOL_TCP, libc::TCP_REPAIR_OPTIONS, &raw).with_context(|| format!("setsockopt(TCP_REPAIR_OPTIONS) on {who}"))?;
    if e.opt_mask & TCPI_OPT_TIMESTAMPS != 0 {
        let ts = e.timestamp.unwrap_or(0);
        set_bytes(fd, libc::SOL_TCP, libc::TCP_TIMESTAMP, &ts.to_ne_bytes()).with_context(|| format!("setsockopt(TCP_TIMESTAMP) on {who}"))?;
    }
    fill(fd, TCP_RECV_QUEUE, &s.inq, who)?;
    let sent = (e.outq_len - unsent) as usize;
    fill(fd, TCP_SEND_QUEUE, &s.outq[..sent], who)?;
    if unsent != 0 {
        // Never sent: given to the stack as new data, out of repair mode.
        repair_off_quiet(fd).with_context(|| format!("leaving repair mode on {who}"))?;
        push(fd, &s.outq[sent..]).with_context(|| format!("sending the unsent bytes of {who}"))?;
        set_repair(fd, true).with_context(|| format!("repair mode on {who}"))?;
    }
    if let (Some(wl1), Some(wnd), Some(max), Some(rwnd), Some(rwup)) = (e.snd_wl1, e.snd_wnd, e.max_window, e.rcv_wnd, e.rcv_wup) {
        let w: Vec<u8> = [wl1, wnd, max, rwnd, rwup].iter().flat_map(|v| v.to_ne_bytes()).collect();
        set_bytes(fd, libc::SOL_TCP, libc::TCP_REPAIR_WINDOW, &w).with_context(|| format!("setsockopt(TCP_REPAIR_WINDOW) on {who}"))?;
    }
    let set = |name, what: &str| set_int(fd, libc::SOL_TCP, name, 1).with_context(|| format!("setsockopt({what}) on {who}"));
    if e.nodelay == Some(true) {
        set(libc::TCP_NODELAY, "TCP_NODELAY")?;
    }
    if e.cork == Some(true) {
        set(libc::TCP_CORK, "TCP_CORK")?;
    }
    Ok(())
}

fn seq(fd: BorrowedFd<'_>, which: i32, v: u32, who: &str) -> Result<()> {
    set_int(fd, libc::SOL_TCP, libc::TCP_REPAIR_QUEUE, which).with_context(|| format!("selecting queue {which} of {who}"))?;
    set_int(fd, libc::SOL_TCP, libc::TCP_QUEUE_SEQ, v as i32).with_context(|| format!("setsockopt(TCP_QUEUE_SEQ) of queue {which} of {who}"))
}

/// Queue `data` into queue `which` in repair mode.
fn fill(fd: BorrowedFd<'_>, which: i32, data: &[u8], who: &str) -> Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    set_int(fd, libc::SOL_TCP, libc::TCP_REPAIR_QUEUE, which).with_context(|| format!("selecting queue {which} of {who}"))?;
    push(fd, data).with_context(|| format!("refilling queue {which} of {who} ({} bytes)", data.len()))
}

/// send() all of `data`, halving the chunk while the kernel refuses it.
fn push(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<()> {
    let mut chunk = data.len();
    while !data.is_empty() {
        match send(fd, &data[..chunk.min(data.len())], libc::MSG_DONTWAIT) {
            Ok(0) => bail!("send() took nothing"),
            Ok(n) => data = &data[n..],
            Err(e) if chunk > 1024 && matches!(e, nix::errno::Errno::ENOMEM | nix::errno::Errno::EAGAIN) => chunk /= 2,
            Err(e) => return Err(e).context("send()"),
        }
    }
    Ok(())
}
