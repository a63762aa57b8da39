//! The generic socket options of a netlink socket both ways: the shared
//! sk_opts_entry code (`sockets::opts`), with the record shaped as CRIU
//! 4.2 writes it for a netlink socket (SO_PASSCRED and SO_PASSSEC always
//! present) and SO_REUSEADDR/SO_REUSEPORT set back here (no port is
//! shared among netlink sockets).

use std::os::fd::BorrowedFd;

use anyhow::{Context, Result};

use crate::images::pb::SkOptsEntry;
use crate::sys::sockopt_raw::set_int;

/// The record of socket `fd`'s options (`who` names it in refusals).
pub fn dump(fd: BorrowedFd<'_>, who: &str) -> Result<SkOptsEntry> {
    let mut e = crate::sockets::opts::dump(fd).with_context(|| who.to_string())?;
    e.so_passcred = Some(e.so_passcred.unwrap_or(false));
    e.so_passsec = Some(e.so_passsec.unwrap_or(false));
    Ok(e)
}

/// Set socket `fd`'s options from its record (`who` names it).
pub fn restore(fd: BorrowedFd<'_>, e: &SkOptsEntry, who: &str) -> Result<()> {
    crate::sockets::opts::restore(fd, e, who)?;
    for (on, name, what) in [(e.reuseaddr, libc::SO_REUSEADDR, "SO_REUSEADDR"), (e.so_reuseport, libc::SO_REUSEPORT, "SO_REUSEPORT")] {
        if on == Some(true) {
            set_int(fd, libc::SOL_SOCKET, name, 1).with_context(|| format!("setsockopt({what}) on {who}"))?;
        }
    }
    Ok(())
}
