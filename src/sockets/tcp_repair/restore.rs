//! A connection made again on a new socket in repair mode, bound to its
//! address: each queue's first sequence number, connect (no SYN in repair
//! mode), the negotiated options and timestamp, the receive queue, the
//! send queue (its sent part in repair mode, the unsent part sent as
//! data), the window, TCP_NODELAY and TCP_CORK (kept here by CRIUs before
//! 4.x). A closing state then gets its FINs back in CRIU 4.2's order
//! (ours through shutdown() in repair mode, the send queue selected when
//! the peer had acknowledged it; the peer's as a segment from it), and the
//! socket must then be in the recorded state. The socket stays in repair
//! mode; the caller takes it out once the tree's sockets exist.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use anyhow::{bail, Context, Result};

use super::*;
use crate::sys::sockopt_raw::{connect, get_int, send, set_bytes};

/// Restore `s` on `fd` (in repair mode, bound to `src`), connected to
/// `dst`, in TCP state `state`.
pub fn restore(fd: BorrowedFd<'_>, s: &Stream, state: u32, src: &SocketAddr, dst: &SocketAddr, who: &str) -> Result<()> {
    if !carried(state) {
        bail!("{who}: TCP state {} can't be restored", crate::sockets::inet::state_name(state));
    }
    let mstate = state_bit(state);
    let mut e = s.entry;
    // The sequence numbers count the FINs; the queues do not hold them.
    if mstate & (RCVQ_FIRST_FIN | RCVQ_SECOND_FIN) != 0 {
        e.inq_seq = e.inq_seq.wrapping_sub(1);
    }
    if mstate & (SNDQ_FIRST_FIN | SNDQ_SECOND_FIN) != 0 {
        e.outq_seq = e.outq_seq.wrapping_sub(1);
    }
    let e = &e;
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
    // The queue goes back in skbs of other sizes than the ones the
    // kernel had built, which may take more of the send buffer: it is
    // made room for while the queue is refilled, then set back.
    let sndbuf = get_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).with_context(|| format!("getsockopt(SO_SNDBUF) on {who}"))?;
    let room = |v: i32, what: &str| set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, v).with_context(|| format!("setsockopt(SO_SNDBUFFORCE) on {who} {what}"));
    if e.outq_len != 0 {
        room(sndbuf.saturating_add(e.outq_len.saturating_mul(2).min(i32::MAX as u32) as i32), "for its send queue")?;
    }
    fill(fd, TCP_SEND_QUEUE, &s.outq[..sent], who)?;
    if unsent != 0 {
        // Never sent: given to the stack as new data, out of repair mode.
        repair_off_quiet(fd).with_context(|| format!("leaving repair mode on {who}"))?;
        push(fd, &s.outq[sent..]).with_context(|| format!("sending the unsent bytes of {who}"))?;
        set_repair(fd, true).with_context(|| format!("repair mode on {who}"))?;
    }
    if e.outq_len != 0 {
        // SO_SNDBUF answers twice what was asked (the kernel's doubling).
        room(sndbuf / 2, "back to its size")?;
    }
    if let (Some(wl1), Some(wnd), Some(max), Some(mut rwnd), Some(mut rwup)) = (e.snd_wl1, e.snd_wnd, e.max_window, e.rcv_wnd, e.rcv_wup) {
        if mstate & (RCVQ_FIRST_FIN | RCVQ_SECOND_FIN) != 0 {
            // The peer's FIN is not received yet: it takes one more.
            rwup = rwup.wrapping_sub(1);
            rwnd = rwnd.wrapping_add(1);
        }
        let w: Vec<u8> = [wl1, wnd, max, rwnd, rwup].iter().flat_map(|v| v.to_ne_bytes()).collect();
        set_bytes(fd, libc::SOL_TCP, libc::TCP_REPAIR_WINDOW, &w).with_context(|| format!("setsockopt(TCP_REPAIR_WINDOW) on {who}"))?;
    }
    fins(fd, e, mstate, src, dst, who)?;
    let now = wait_state(fd, state);
    if now != state {
        bail!(
            "{who}: restored in TCP state {} where the image has {}",
            crate::sockets::inet::state_name(now),
            crate::sockets::inet::state_name(state)
        );
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

/// The FINs of a closing state, in the order the state had them: ours
/// first (FIN_WAIT*, CLOSING), the peer's, ours second (LAST_ACK), then
/// the peer's acknowledgement of ours (FIN_WAIT2). `e` has the sequence
/// numbers without the FINs.
fn fins(fd: BorrowedFd<'_>, e: &crate::images::pb::TcpStreamEntry, mstate: u32, src: &SocketAddr, dst: &SocketAddr, who: &str) -> Result<()> {
    let acked = mstate & SNDQ_FIN_ACKED != 0;
    if mstate & SNDQ_FIRST_FIN != 0 {
        our_fin(fd, acked, who)?;
    }
    // The peer's segments carry the window it last advertised.
    let wscale = if e.opt_mask & TCPI_OPT_WSCALE != 0 { e.snd_wscale } else { 0 };
    let window = e.snd_wnd.map_or(0xffff, |w| (w >> wscale).min(0xffff)) as u16;
    let snd_una = e.outq_seq.wrapping_sub(e.outq_len);
    let seg = |seq, ack, flags| peer::Segment { from: *dst, to: *src, seq, ack, flags, window };
    if mstate & (RCVQ_FIRST_FIN | RCVQ_SECOND_FIN) != 0 {
        peer::send(&seg(e.inq_seq, snd_una, peer::TH_ACK | peer::TH_FIN), who)?;
    }
    if mstate & SNDQ_SECOND_FIN != 0 {
        our_fin(fd, acked, who)?;
    }
    if acked {
        // Our FIN is acknowledged: everything up to it and itself.
        let peer_next = if mstate & (RCVQ_FIRST_FIN | RCVQ_SECOND_FIN) != 0 { e.inq_seq.wrapping_add(1) } else { e.inq_seq };
        peer::send(&seg(peer_next, e.outq_seq.wrapping_add(1), peer::TH_ACK), who)?;
    }
    Ok(())
}

/// Our FIN, by shutdown(SHUT_WR) in repair mode; `acked`: as a segment
/// sent already (the send queue selected), else as one still to go.
fn our_fin(fd: BorrowedFd<'_>, acked: bool, who: &str) -> Result<()> {
    if acked {
        set_int(fd, libc::SOL_TCP, libc::TCP_REPAIR_QUEUE, TCP_SEND_QUEUE).with_context(|| format!("selecting the send queue of {who}"))?;
    }
    use std::os::fd::AsRawFd;
    nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write).with_context(|| format!("shutdown(SHUT_WR) of {who} for its FIN"))?;
    if acked {
        set_int(fd, libc::SOL_TCP, libc::TCP_REPAIR_QUEUE, TCP_NO_QUEUE).with_context(|| format!("selecting no queue of {who}"))?;
    }
    Ok(())
}

/// The TCP state of `fd` once it is `want` (the peer's segments are taken
/// in by the kernel's softirq, maybe not at once), or after a second.
fn wait_state(fd: BorrowedFd<'_>, want: u32) -> u32 {
    let t0 = std::time::Instant::now();
    loop {
        let now = crate::sys::sockopt_raw::get_bytes(fd, libc::SOL_TCP, libc::TCP_INFO, 8).ok().and_then(|i| i.first().copied()).map_or(0, u32::from);
        if now == want || t0.elapsed() > std::time::Duration::from_secs(1) {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
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
