//! Sockets: unix sockets (`unix`), inet/inet6 sockets (`inet`),
//! netlink sockets (`nl`) and packet sockets (`packet`), found out about through sock_diag over a small
//! netlink client (`netlink`, shared with the network probes of `criu
//! check`; the few unix_diag, inet_diag and netlink_diag attributes we
//! read did not call for a netlink crate); the generic socket options
//! both ways (`opts`).

pub mod inet;
pub mod netlink;
pub mod nl;
pub mod opts;
pub mod packet;
pub mod tcp_repair;
pub mod unix;
