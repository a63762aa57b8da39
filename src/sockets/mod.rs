//! Sockets. Unix socket pairs for now (`unix`); the unix_diag queries
//! (sock_diag over netlink) that tell a socket's peer, state and queue.

pub mod unix;
