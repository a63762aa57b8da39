//! Sockets: unix sockets (`unix`) and inet/inet6 sockets (`inet`), found
//! out about through sock_diag over a small netlink client (`netlink`,
//! shared with the network probes of `criu check`; the few unix_diag and
//! inet_diag attributes we read did not call for a netlink crate); the
//! generic socket options both ways (`opts`).

pub mod inet;
pub mod netlink;
pub mod opts;
pub mod unix;
