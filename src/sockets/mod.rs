//! Sockets. Unix sockets for now (`unix`), found out about through
//! sock_diag over a small netlink client (`netlink`, shared with the
//! network probes of `criu check`; the few unix_diag attributes we read
//! did not call for a netlink crate).

pub mod netlink;
pub mod unix;
