//! Established TCP connections through the kernel's repair mode
//! (TCP_REPAIR), as CRIU's libsoccr does: [`save`] reads a paused
//! connection's sequence numbers, queues, window and negotiated options
//! into a tcp_stream_entry and its queue bytes; [`restore`] puts them on a
//! new socket in repair mode. [`Paused`] holds the dumped sockets in repair
//! mode and takes them out of it again unless the dumped tree is gone.
//! The tcp-stream-INO.img files are read and written here too.

mod image;
mod save;
mod restore;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::images::pb::TcpStreamEntry;
use crate::sys::sockopt_raw::set_int;

pub use image::{read, write};
pub use restore::restore;
pub use save::save;

/// TCP_REPAIR_QUEUE selectors.
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
}

impl Drop for Paused {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for fd in &self.held {
            if let Err(e) = set_repair(fd.as_fd(), false) {
                tracing::error!("taking a TCP socket out of repair mode: {e}");
            }
        }
    }
}

/// --tcp-established for this dump.
pub fn allow(st: &mut crate::files::kind::State, on: bool) {
    st.get_mut::<Paused>().allowed = on;
}

/// The dump is over and its tasks do not run on (`stay`: dead, or left
/// stopped for the restore): keep their sockets in repair mode.
pub fn finish(st: &mut crate::files::kind::State, stay: bool) {
    if stay {
        st.get_mut::<Paused>().keep();
    }
}

#[cfg(test)]
mod tests;
