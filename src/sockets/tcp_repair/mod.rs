//! TCP connections through the kernel's repair mode (TCP_REPAIR), as
//! CRIU's libsoccr does: [`save`] reads a paused connection's sequence
//! numbers, queues, window and negotiated options into a tcp_stream_entry
//! and its queue bytes; [`restore`] puts them on a new socket in repair
//! mode. Besides ESTABLISHED, the closing states CRIU 4.2 carries
//! (FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING): the FINs are
//! made again on the new socket, ours by shutdown() in repair mode, the
//! peer's by a segment `peer` sends it. [`Paused`] holds the dumped
//! sockets in repair mode and takes them out of it again unless the
//! dumped tree is gone. The tcp-stream-INO.img files are read and
//! written here too.

mod image;
mod peer;
mod save;
mod restore;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::images::pb::TcpStreamEntry;
use crate::sys::sockopt_raw::set_int;

pub use image::{read, write};
pub use restore::restore;
pub use save::save;

/// TCP states, and the sets of them (as bits `1 << state`) whose FINs
/// a restore makes again.
pub const TCP_ESTABLISHED: u32 = 1;
const TCP_FIN_WAIT1: u32 = 4;
const TCP_FIN_WAIT2: u32 = 5;
const TCP_CLOSE_WAIT: u32 = 8;
const TCP_LAST_ACK: u32 = 9;
const TCP_CLOSING: u32 = 11;

pub const fn state_bit(state: u32) -> u32 {
    if state < 32 { 1 << state } else { 0 }
}

/// The states whose connection is dumped with its state and restored.
pub const CARRIED: u32 = state_bit(TCP_ESTABLISHED)
    | state_bit(TCP_FIN_WAIT1)
    | state_bit(TCP_FIN_WAIT2)
    | state_bit(TCP_CLOSE_WAIT)
    | state_bit(TCP_LAST_ACK)
    | state_bit(TCP_CLOSING);
/// Our FIN is queued before the peer's arrives / after it.
const SNDQ_FIRST_FIN: u32 = state_bit(TCP_FIN_WAIT1) | state_bit(TCP_FIN_WAIT2) | state_bit(TCP_CLOSING);
const SNDQ_SECOND_FIN: u32 = state_bit(TCP_LAST_ACK);
/// The peer acknowledged our FIN.
const SNDQ_FIN_ACKED: u32 = state_bit(TCP_FIN_WAIT2);
/// The peer's FIN came before ours / after ours.
const RCVQ_FIRST_FIN: u32 = state_bit(TCP_CLOSE_WAIT) | state_bit(TCP_LAST_ACK);
const RCVQ_SECOND_FIN: u32 = state_bit(TCP_CLOSING);

/// Whether a connection in `state` is dumped with its state.
pub fn carried(state: u32) -> bool {
    state_bit(state) & CARRIED != 0
}

/// TCP_REPAIR_QUEUE selectors.
const TCP_NO_QUEUE: i32 = 0;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
/// tcp_info.tcpi_options bits (the image's opt_mask).
const TCPI_OPT_TIMESTAMPS: u32 = 1;
const TCPI_OPT_SACK: u32 = 2;
const TCPI_OPT_WSCALE: u32 = 4;
/// TCP option codes for TCP_REPAIR_OPTIONS.
const TCPOPT_MAXSEG: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;
/// TCP_REPAIR off without the window probe the kernel sends otherwise.
const TCP_REPAIR_OFF_NO_WP: i32 = -1;

/// One connection's state: the image entry, then the receive queue and
/// the send queue (unacknowledged, then unsent bytes).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stream {
    pub entry: TcpStreamEntry,
    pub inq: Vec<u8>,
    pub outq: Vec<u8>,
}

/// Put socket `fd` in repair mode (on) or take it out (off, with the
/// window probe that tells the peer the window).
pub fn set_repair(fd: BorrowedFd<'_>, on: bool) -> nix::Result<()> {
    set_int(fd, libc::SOL_TCP, libc::TCP_REPAIR, i32::from(on))
}

/// Take `fd` out of repair mode sending nothing.
pub fn repair_off_quiet(fd: BorrowedFd<'_>) -> nix::Result<()> {
    set_int(fd, libc::SOL_TCP, libc::TCP_REPAIR, TCP_REPAIR_OFF_NO_WP)
}

/// Dump: --tcp-established was given, the sockets paused so far (copies
/// of their descriptions) and their streams by inode. Dropped, it takes
/// the sockets out of repair mode, unless [`Paused::keep`] said the tree
/// does not run on (a socket closed in repair mode goes silently).
#[derive(Default)]
pub struct Paused {
    pub allowed: bool,
    /// --skip-in-flight: a listener's connections not accepted yet are
    /// left out (they are gone after a restore) instead of refused.
    pub skip_in_flight: bool,
    held: Vec<OwnedFd>,
    pub streams: Vec<(u32, Stream)>,
    keep: bool,
}

impl Paused {
    /// Pause `fd` (a copy of the description kept until the end).
    pub fn pause(&mut self, fd: OwnedFd) -> nix::Result<BorrowedFd<'_>> {
        set_repair(fd.as_fd(), true)?;
        self.held.push(fd);
        Ok(self.held.last().map(|f| f.as_fd()).unwrap_or_else(|| unreachable!()))
    }

    /// The dumped tasks do not run on: leave their sockets in repair mode.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Take every socket paused so far out of repair mode (once).
    pub fn resume(&mut self) {
        for fd in std::mem::take(&mut self.held) {
            if let Err(e) = set_repair(fd.as_fd(), false) {
                tracing::error!("taking a TCP socket out of repair mode: {e}");
            }
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if !self.keep {
            self.resume();
        }
    }
}

/// --tcp-established and --skip-in-flight for this dump.
pub fn allow(st: &mut crate::files::kind::State, on: bool, skip_in_flight: bool) {
    let p = st.get_mut::<Paused>();
    p.allowed = on;
    p.skip_in_flight = skip_in_flight;
}

/// The dump is over (or failed), before its tasks are let go: if they do
/// not run on (`stay`: dead, or left stopped for the restore) their
/// sockets stay in repair mode; else the sockets leave it now.
pub fn finish(st: &mut crate::files::kind::State, stay: bool) {
    let p = st.get_mut::<Paused>();
    if stay {
        p.keep();
    } else {
        p.resume();
    }
}

#[cfg(test)]
mod tests;
