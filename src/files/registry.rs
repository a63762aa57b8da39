//! The table of file kinds: one line per kind. At dump, the first kind
//! that claims an fd records it (order matters where two could: memfds
//! before regular files, O_PATH before anything else, regular files and devices before terminals); at
//! restore, a record goes to the kind of its fd type.

use super::kind::FdKind;
use crate::images::pb::FdTypes;

/// Every kind of file description we carry.
pub static KINDS: &[&dyn FdKind] = &[
    &super::memfd::Memfd,
    &super::nsfile::NsFile,
    &super::tun::Tun,
    &super::reg::Reg,
    &super::pipe::Pipe,
    &super::fifo::Fifo,
    &super::tty::Tty,
    &crate::sockets::inet::InetSk,
    &crate::sockets::nl::NetlinkSk,
    &crate::sockets::packet::PacketSk,
    &crate::sockets::unix::UnixSk,
    &super::inotify::Inotify,
    &super::fanotify::Fanotify,
    &super::epoll::Epoll,
    &super::signalfd::Signalfd,
    &super::timerfd::Timerfd,
    &super::eventfd::Eventfd,
    &super::pidfd::Pidfd,
];

/// The kind whose records carry `ty`.
pub fn by_type(ty: i32) -> Option<&'static dyn FdKind> {
    KINDS.iter().copied().find(|k| k.fd_type() as i32 == ty)
}

/// The name of fd type `ty`, for errors.
pub fn type_name(ty: i32) -> String {
    match FdTypes::try_from(ty) {
        Ok(t) => format!("{t:?}"),
        Err(_) => format!("#{ty}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_kind_per_fd_type() {
        let mut seen = Vec::new();
        for k in super::KINDS {
            assert!(!seen.contains(&k.fd_type()), "{} shares its fd type with another kind", k.name());
            seen.push(k.fd_type());
        }
        assert!(super::by_type(crate::images::pb::FdTypes::Pipe as i32).is_some_and(|k| k.name() == "pipe"));
    }
}
