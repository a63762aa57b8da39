//! `criu swrk FD`: serve RPC requests on the SOCK_SEQPACKET socket the
//! caller (runc, go-criu, libcriu, rust-criu) left at fd FD. The peer's
//! pid (SO_PEERCRED) names the fd table its fd options refer to. Also the
//! worker of `criu service`: a connection accepted on a named socket is a
//! standalone-service one (no rst_sibling, inherit_fd or ps.fd, as CRIU).

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, UnixAddr};

use crate::opts::Opts;
use crate::rpc::opts::Peer;
use crate::rpc::server;

/// Take the inherited socket `arg` (a decimal fd number).
fn socket_fd(arg: &str) -> Result<OwnedFd> {
    let fd: i32 = arg.parse().with_context(|| format!("swrk: '{arg}' is not an fd number"))?;
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).with_context(|| format!("swrk: fd {fd} is not open"))?;
    if !target.to_string_lossy().starts_with("socket:") {
        bail!("swrk: fd {fd} is {}, not a socket", target.display());
    }
    let sk = crate::sys::inherited::take(fd).with_context(|| format!("swrk: fd {fd}"))?;
    let ty = getsockopt(&sk, sockopt::SockType).with_context(|| format!("swrk: SO_TYPE of fd {fd}"))?;
    if ty != SockType::SeqPacket {
        bail!("swrk: fd {fd} is a {ty:?} socket; the RPC needs SOCK_SEQPACKET (socketpair(AF_UNIX, SOCK_SEQPACKET))");
    }
    Ok(sk)
}

/// Who is on the other end, and whether it came through `criu service`.
pub fn peer(sk: &OwnedFd) -> Result<Peer> {
    let cred = getsockopt(sk, sockopt::PeerCredentials).context("SO_PEERCRED of the RPC socket")?;
    let local: UnixAddr = getsockname(sk.as_raw_fd()).context("getsockname of the RPC socket")?;
    Ok(Peer { pid: cred.pid(), standalone: local.path().is_some() })
}

/// Run `criu swrk FD`.
pub fn run(opts: &Opts, args: &[String]) -> Result<i32> {
    let sk = socket_fd(args.first().map(String::as_str).unwrap_or(""))?;
    let peer = peer(&sk)?;
    tracing::info!("RPC: serving pid {} on fd {}", peer.pid, sk.as_raw_fd());
    // A `criu service` connection from a non-root user: its rights only.
    if peer.standalone
        && let Err(e) = crate::ops::auth::Caller::of_socket(&sk).and_then(|c| c.map(crate::ops::auth::install).transpose())
    {
        // Nothing runs for a caller whose rights we could not take.
        return Ok(server::refuse(&sk, e.context("the RPC client's credentials")));
    }
    Ok(server::serve(opts, &sk, peer))
}
