//! Reading a connection in repair mode: TCP_INFO (state, negotiated
//! options), the queue lengths (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD; our FIN,
//! queued in a closing state, is not data and is left out, as CRIU 4.2
//! leaves it out), MSS and
//! timestamp, the window (TCP_REPAIR_WINDOW), each queue's sequence
//! number (TCP_QUEUE_SEQ) and bytes (MSG_PEEK on the selected queue).
//! Checked against CRIU 4.2's dump of the same live connection: the same
//! fields, seqs, lengths and queue bytes.

use std::os::fd::BorrowedFd;

use anyhow::{bail, Context, Result};

use super::{state_bit, Stream, CARRIED, SNDQ_FIRST_FIN, SNDQ_SECOND_FIN, TCPI_OPT_WSCALE, TCP_RECV_QUEUE, TCP_SEND_QUEUE};
use crate::images::pb::TcpStreamEntry;
use crate::sys::sockopt_raw::{get_bytes, get_int, ioctl_int, recv, set_int};

const SIOCINQ: libc::c_ulong = libc::FIONREAD;
const SIOCOUTQ: libc::c_ulong = libc::TIOCOUTQ;
const SIOCOUTQNSD: libc::c_ulong = 0x894B;

/// The stream of connection `fd` (ESTABLISHED or a closing state the
/// restore carries), in repair mode already, and its state now (which the
/// inet record takes, as CRIU's). `who` names it in errors.
pub fn save(fd: BorrowedFd<'_>, who: &str) -> Result<(Stream, u32)> {
    let info = get_bytes(fd, libc::SOL_TCP, libc::TCP_INFO, 8).with_context(|| format!("getsockopt(TCP_INFO) on {who}"))?;
    if info.len() < 7 {
        bail!("{who}: TCP_INFO answered {} bytes", info.len());
    }
    let state = u32::from(info[0]);
    if state_bit(state) & CARRIED == 0 {
        bail!("{who} is in TCP state {} now: its state can't be carried", crate::sockets::inet::state_name(state));
    }
    let q = |req, what: &str| ioctl_int(fd, req).with_context(|| format!("ioctl({what}) on {who}")).map(|v| v as u32);
    let mut outq_len = q(SIOCOUTQ, "SIOCOUTQ")?;
    let mut unsq_len = q(SIOCOUTQNSD, "SIOCOUTQNSD")?;
    if state_bit(state) & (SNDQ_FIRST_FIN | SNDQ_SECOND_FIN) != 0 {
        outq_len = outq_len.saturating_sub(1);
        unsq_len = unsq_len.saturating_sub(1);
    }
    let inq_len = q(SIOCINQ, "SIOCINQ")?;
    let opt = |name, what: &str| get_int(fd, libc::SOL_TCP, name).with_context(|| format!("getsockopt({what}) on {who}"));
    let mss_clamp = opt(libc::TCP_MAXSEG, "TCP_MAXSEG")? as u32;
    let timestamp = opt(libc::TCP_TIMESTAMP, "TCP_TIMESTAMP")? as u32;
    let opt_mask = u32::from(info[5]);
    let (snd_wscale, rcv_wscale) =
        if opt_mask & TCPI_OPT_WSCALE != 0 { (u32::from(info[6] & 0xf), u32::from(info[6] >> 4)) } else { (0, 0) };
    let mut e = TcpStreamEntry {
        inq_len,
        outq_len,
        opt_mask,
        snd_wscale,
        mss_clamp,
        rcv_wscale: Some(rcv_wscale),
        timestamp: Some(timestamp),
        unsq_len: Some(unsq_len),
        ..Default::default()
    };
    match get_bytes(fd, libc::SOL_TCP, libc::TCP_REPAIR_WINDOW, 20) {
        Ok(w) if w.len() == 20 => {
            let at = |i: usize| u32::from_ne_bytes([w[i * 4], w[i * 4 + 1], w[i * 4 + 2], w[i * 4 + 3]]);
            e.snd_wl1 = Some(at(0));
            e.snd_wnd = Some(at(1));
            e.max_window = Some(at(2));
            e.rcv_wnd = Some(at(3));
            e.rcv_wup = Some(at(4));
        }
        Ok(w) => bail!("{who}: TCP_REPAIR_WINDOW answered {} bytes", w.len()),
        Err(nix::errno::Errno::ENOPROTOOPT) => {}
        Err(err) => return Err(err).with_context(|| format!("getsockopt(TCP_REPAIR_WINDOW) on {who}")),
    }
    let (inq_seq, inq) = queue(fd, TCP_RECV_QUEUE, inq_len, who)?;
    let (outq_seq, outq) = queue(fd, TCP_SEND_QUEUE, outq_len, who)?;
    (e.inq_seq, e.outq_seq) = (inq_seq, outq_seq);
    // TCP_NODELAY and TCP_CORK go in the inet record's tcp_opts (CRIU 4.2
    // writes them there, not here).
    Ok((Stream { entry: e, inq, outq }, state))
}

/// The sequence number at the end of queue `which` and its `len` bytes.
fn queue(fd: BorrowedFd<'_>, which: i32, len: u32, who: &str) -> Result<(u32, Vec<u8>)> {
    let name = if which == TCP_RECV_QUEUE { "receive" } else { "send" };
    set_int(fd, libc::SOL_TCP, libc::TCP_REPAIR_QUEUE, which).with_context(|| format!("selecting the {name} queue of {who}"))?;
    let seq = get_int(fd, libc::SOL_TCP, libc::TCP_QUEUE_SEQ).with_context(|| format!("getsockopt(TCP_QUEUE_SEQ) of the {name} queue of {who}"))?;
    let mut buf = vec![0u8; len as usize];
    if len != 0 {
        let n = recv(fd, &mut buf, libc::MSG_PEEK | libc::MSG_DONTWAIT).with_context(|| format!("reading the {name} queue of {who}"))?;
        if n != buf.len() {
            bail!("{who}: its {name} queue holds {len} bytes but {n} could be read");
        }
    }
    Ok((seq as u32, buf))
}
