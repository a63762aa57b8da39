//! Sockets. Unix socket pairs for now (`unix`), found out about through
//! sock_diag over a small netlink client (`netlink`, shared with the
//! network probes of `criu check`).

pub mod netlink;
pub mod unix;
