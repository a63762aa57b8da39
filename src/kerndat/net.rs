//! Network probes: sock_diag, socket options and ioctls, TCP repair,
//! rtnetlink (netns ids, IFLA_NEW_IFINDEX, link netns ids).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockProtocol, SockType};

use netlink_packet_core::Emitable;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::{AddressFamily as RtFamily, RouteNetlinkMessage};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId};
use netlink_packet_sock_diag::unix::{ShowFlags, UnixRequest};

use crate::sockets::netlink::{DiagRequest, Netlink, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, SOCK_DIAG_BY_FAMILY};
use super::{Ctx, Probe, ProbeError};
use crate::sys::probe as k;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_UDPLITE: u8 = 136;
const IPPROTO_RAW: u8 = 255;
const NDIAG_PROTO_ALL: u8 = 255;

/// One sock_diag dump CRIU's socket collection makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagKind {
    pub family: u8,
    pub protocol: u8,
}

impl DiagKind {
    /// CRIU's names for the family and protocol.
    pub fn names(&self) -> (&'static str, &'static str) {
        let fam = match self.family as i32 {
            libc::AF_UNIX => "unix",
            libc::AF_INET => "inet",
            libc::AF_INET6 => "inet6",
            libc::AF_PACKET => "packet",
            libc::AF_NETLINK => "netlink",
            _ => "unknown",
        };
        let proto = match (self.family as i32, self.protocol) {
            (libc::AF_INET | libc::AF_INET6, IPPROTO_TCP) => "tcp",
            (libc::AF_INET | libc::AF_INET6, IPPROTO_UDP) => "udp",
            (libc::AF_INET | libc::AF_INET6, IPPROTO_UDPLITE) => "udplite",
            (libc::AF_INET | libc::AF_INET6, IPPROTO_RAW) => "raw",
            _ => "0",
        };
        (fam, proto)
    }

    pub fn is_raw(&self) -> bool {
        matches!(self.family as i32, libc::AF_INET | libc::AF_INET6) && self.protocol == IPPROTO_RAW
    }

    /// The request: unix and inet ones as netlink-packet-sock-diag makes
    /// them, packet and netlink ones (no crate models them) as the shared
    /// [`DiagRequest`].
    fn request(&self) -> Vec<u8> {
        let emit = |m: &dyn Emitable| {
            let mut v = vec![0; m.buffer_len()];
            m.emit(&mut v);
            v
        };
        match self.family as i32 {
            libc::AF_UNIX => emit(&UnixRequest {
                state_flags: unix_states(),
                inode: 0,
                show_flags: ShowFlags::NAME | ShowFlags::VFS | ShowFlags::PEER | ShowFlags::ICONS | ShowFlags::RQLEN,
                cookie: [0; 8],
            }),
            // packet: info, mclist, ring, fanout; netlink: groups
            libc::AF_PACKET => emit(&DiagRequest { cookie: [0; 2], ..DiagRequest::dump(self.family, self.protocol, 0xf) }),
            libc::AF_NETLINK => emit(&DiagRequest { cookie: [0; 2], ..DiagRequest::dump(self.family, self.protocol, 2) }),
            _ => {
                let states: u32 = if self.protocol == IPPROTO_TCP {
                    [10u32, 1, 4, 5, 8, 9, 11, 2].iter().map(|s| 1u32 << s).sum()
                } else {
                    u32::MAX
                };
                let socket_id = if self.family as i32 == libc::AF_INET6 { SocketId::new_v6() } else { SocketId::new_v4() };
                emit(&InetRequest {
                    family: self.family,
                    protocol: self.protocol,
                    extensions: ExtensionFlags::empty(),
                    states: netlink_packet_sock_diag::inet::StateFlags::from_bits_retain(states),
                    socket_id,
                })
            }
        }
    }
}

/// Every state, for the unix dump.
fn unix_states() -> netlink_packet_sock_diag::unix::StateFlags {
    netlink_packet_sock_diag::unix::StateFlags::from_bits_retain(u32::MAX)
}

/// The dumps socket collection makes, in CRIU's order.
pub fn diag_kinds(ipv6: bool) -> Vec<DiagKind> {
    let mut v = vec![DiagKind { family: libc::AF_UNIX as u8, protocol: 0 }];
    let inet = |family: i32| {
        [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IPPROTO_RAW]
            .map(move |p| DiagKind { family: family as u8, protocol: p })
    };
    v.extend(inet(libc::AF_INET));
    if ipv6 {
        v.extend(inet(libc::AF_INET6));
    }
    v.push(DiagKind { family: libc::AF_PACKET as u8, protocol: 0 });
    v.push(DiagKind { family: libc::AF_NETLINK as u8, protocol: NDIAG_PROTO_ALL });
    v
}

/// The outcome of each sock_diag dump: how many sockets, or the errno.
pub type SockDiagReport = Vec<(DiagKind, Result<usize, Errno>)>;

/// Dump every socket kind through NETLINK_SOCK_DIAG.
pub fn probe_sock_diag() -> Probe<SockDiagReport> {
    let mut nl = Netlink::open(SockProtocol::NetlinkSockDiag).ctx("Can't make diag socket for check")?;
    Ok(diag_kinds(has_ipv6())
        .into_iter()
        .map(|kind| {
            let r = nl.request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &kind.request()).map(|m| m.len());
            (kind, r)
        })
        .collect())
}

/// Raw sockets (IPv4 and, when present, IPv6) can be dumped via sock_diag.
pub fn probe_net_diag_raw() -> Probe<bool> {
    Ok(probe_sock_diag()?.iter().filter(|(k, _)| k.is_raw()).all(|(_, r)| r.is_ok()))
}

/// IPv6 is enabled (/proc/sys/net/ipv6 exists).
pub fn has_ipv6() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

fn sock(family: AddressFamily, ty: SockType, proto: Option<SockProtocol>) -> Result<OwnedFd, Errno> {
    socket::socket(family, ty, SockFlag::SOCK_CLOEXEC, proto)
}

/// An IPv4 socket, or IPv6 where IPv4 is missing.
fn inet_sock(ty: SockType, proto: Option<SockProtocol>) -> Result<OwnedFd, Errno> {
    match sock(AddressFamily::Inet, ty, proto) {
        Err(Errno::EAFNOSUPPORT) => sock(AddressFamily::Inet6, ty, proto),
        other => other,
    }
}

/// SO_PEEK_OFF reads back as -1 on a fresh unix socket.
pub fn probe_sock_peek_off() -> Probe<()> {
    let s = sock(AddressFamily::Unix, SockType::Datagram, None).ctx("Can't create unix socket for check")?;
    match k::getsockopt_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF) {
        Ok((-1, 4)) => Ok(()),
        _ => Err(ProbeError::msg("SO_PEEK_OFF sockoption doesn't work.")),
    }
}

/// TCP_REPAIR mode and TCP_TIMESTAMP.
pub fn probe_tcp_repair() -> Probe<()> {
    let s = sock(AddressFamily::Inet, SockType::Stream, Some(SockProtocol::Tcp)).ctx("Can't create TCP socket :(")?;
    k::setsockopt_int(s.as_fd(), libc::SOL_TCP, libc::TCP_REPAIR, 1).ctx("Can't turn TCP repair mode ON")?;
    k::getsockopt_int(s.as_fd(), libc::SOL_TCP, libc::TCP_TIMESTAMP).ctx("Can't get TCP_TIMESTAMP")?;
    Ok(())
}

/// SO_GET_FILTER and SO_BINDTODEVICE can be read back.
pub fn probe_so_gets() -> Probe<()> {
    const SO_GET_FILTER: libc::c_int = libc::SO_ATTACH_FILTER;
    let s = sock(AddressFamily::Inet, SockType::Datagram, Some(SockProtocol::Udp)).ctx("No socket")?;
    k::getsockopt_bytes(s.as_fd(), libc::SOL_SOCKET, SO_GET_FILTER, &mut []).ctx("Can't get socket filter")?;
    let mut name = [0u8; libc::IFNAMSIZ];
    k::getsockopt_bytes(s.as_fd(), libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &mut name)
        .ctx("Can't get socket bound dev")?;
    Ok(())
}

/// TCP_REPAIR_WINDOW (Ok(false): the option or TCP_REPAIR is unavailable).
pub fn probe_tcp_repair_window() -> Probe<bool> {
    let s = inet_sock(SockType::Stream, None).ctx("Unable to create inet socket")?;
    match k::setsockopt_int(s.as_fd(), libc::SOL_TCP, libc::TCP_REPAIR, 1) {
        Ok(()) => {}
        Err(Errno::EPERM) => {
            tracing::warn!("TCP_REPAIR isn't available to unprivileged users");
            return Ok(false);
        }
        Err(e) => return Err(ProbeError::sys("Unable to set TCP_REPAIR", e)),
    }
    let mut buf = [0u8; 20];
    match k::getsockopt_bytes(s.as_fd(), libc::SOL_TCP, libc::TCP_REPAIR_WINDOW, &mut buf) {
        Ok(_) => Ok(true),
        Err(Errno::ENOPROTOOPT) => Ok(false),
        Err(e) => Err(ProbeError::sys("Unable to set TCP_REPAIR_WINDOW", e)),
    }
}

/// TCP_REPAIR can be turned on for a half-closed (shutdown(WR)) socket.
pub fn probe_tcp_half_closed() -> Probe<bool> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .or_else(|_| std::net::TcpListener::bind("[::1]:0"))
        .ctx("Unable to bind a socket")?;
    let addr = l.local_addr().ctx("Unable to get a socket name")?;
    let c = std::net::TcpStream::connect(addr).ctx("Unable to connect a socket")?;
    c.shutdown(std::net::Shutdown::Write).ctx("Unable to shutdown a socket")?;
    match k::setsockopt_int(c.as_fd(), libc::SOL_TCP, libc::TCP_REPAIR, 1) {
        Ok(()) => Ok(true),
        Err(Errno::EPERM) => Ok(false),
        Err(e) => Err(ProbeError::sys("Unable to set TCP_REPAIR with setsockopt", e)),
    }
}

/// SIOCGSKNS: a socket's network namespace as an fd.
pub fn probe_sk_ns() -> Probe<bool> {
    let s = sock(AddressFamily::Unix, SockType::Datagram, None).ctx("Unable to create socket")?;
    Ok(k::socket_netns(s.as_fd()).is_ok())
}

/// SIOCUNIXFILE (ENOENT on an unbound socket still proves it exists).
pub fn probe_sk_unix_file() -> Probe<bool> {
    let s = sock(AddressFamily::Unix, SockType::Datagram, None).ctx("Unable to create socket")?;
    match k::unix_socket_file(s.as_fd()) {
        Ok(_) | Err(Errno::ENOENT) => Ok(true),
        Err(e) => {
            tracing::warn!("Unable to open a socket file: {}", e.desc());
            Ok(false)
        }
    }
}

/// SO_BUF_LOCK.
pub fn probe_sockopt_buf_lock() -> Probe<bool> {
    const SO_BUF_LOCK: libc::c_int = 72;
    let s = inet_sock(SockType::Stream, Some(SockProtocol::Tcp)).ctx("Unable to create a socket")?;
    match k::getsockopt_int(s.as_fd(), libc::SOL_SOCKET, SO_BUF_LOCK) {
        Ok(_) => Ok(true),
        Err(Errno::ENOPROTOOPT) => Ok(false),
        Err(e) => Err(ProbeError::sys("Unable to get SO_BUF_LOCK with getsockopt", e)),
    }
}

/// IPV6_FREEBIND.
pub fn probe_ipv6_freebind() -> Probe<bool> {
    if !has_ipv6() {
        return Ok(false);
    }
    let s = sock(AddressFamily::Inet6, SockType::Datagram, Some(SockProtocol::Udp))
        .ctx("Unable to create a ipv6 dgram socket")?;
    match k::setsockopt_int(s.as_fd(), libc::SOL_IPV6, libc::IPV6_FREEBIND, 1) {
        Ok(()) => Ok(true),
        Err(Errno::ENOPROTOOPT) => Ok(false),
        Err(e) => Err(ProbeError::sys("Unable to setsockopt ipv6_freebind", e)),
    }
}

/// RTM_GETNSID for our own pid answers with a NETNSA_NSID attribute.
pub fn probe_nsid() -> Probe<bool> {
    let Ok(mut nl) = Netlink::open(SockProtocol::NetlinkRoute) else {
        tracing::warn!("Unable to create a netlink socket: NSID can't be used.");
        return Ok(false);
    };
    let mut req = NsidMessage::default();
    req.attributes.push(NsidAttribute::Pid(nix::unistd::getpid().as_raw() as u32));
    let Ok(msgs) = nl.exchange(RouteNetlinkMessage::GetNsId(req), NLM_F_REQUEST) else { return Ok(false) };
    Ok(msgs.iter().any(|m| {
        matches!(m, RouteNetlinkMessage::NewNsId(n) if n.attributes.iter().any(|a| matches!(a, NsidAttribute::Id(_))))
    }))
}

/// A link message for link `index` with `attributes`.
fn link(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes = attributes;
    m
}

/// RTM_SETLINK with IFLA_NEW_IFINDEX = -1 on a missing link: ERANGE when
/// the attribute is known (its policy rejects -1), ENODEV when ignored.
pub fn probe_newifindex() -> Probe<bool> {
    let mut nl = Netlink::open(SockProtocol::NetlinkRoute).ctx("Unable to create a netlink socket")?;
    let req = link(0, vec![LinkAttribute::NewIfIndex(-1), LinkAttribute::IfName("criu-kdat".into())]);
    match nl.exchange(RouteNetlinkMessage::SetLink(req), NLM_F_REQUEST | NLM_F_CREATE).map_err(|e| e.errno()) {
        Err(Errno::ERANGE) => Ok(true),
        Err(Errno::ENODEV) => Ok(false),
        Ok(_) => Err(ProbeError::msg("Unexpected success of RTM_SETLINK on criu-kdat")),
        Err(e) => Err(ProbeError::sys("Unexpected error", e)),
    }
}

/// In two throw-away network namespaces (of a helper thread), create a veth
/// pair across them and expect RTM_GETLINK to report IFLA_LINK_NETNSID.
pub fn probe_link_nsid() -> Probe<bool> {
    let r = std::thread::spawn(|| -> Probe<bool> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).ctx("Unable create a network namespace")?;
        let peer_ns = std::fs::File::open("/proc/thread-self/ns/net").ctx("Can't open ns/net")?;
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).ctx("Unable create a network namespace")?;
        let mut nl = Netlink::open(SockProtocol::NetlinkRoute).ctx("Unable to create a netlink socket")?;
        let peer = link(11, vec![LinkAttribute::NetNsFd(peer_ns.as_raw_fd())]);
        let info = vec![LinkInfo::Kind(InfoKind::Veth), LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer)))];
        let req = link(
            10,
            vec![LinkAttribute::IfName("veth".into()), LinkAttribute::Mtu(1500), LinkAttribute::LinkInfo(info)],
        );
        nl.exchange(RouteNetlinkMessage::NewLink(req), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.errno())
            .ctx("Unable to create a veth pair")?;
        let mut all = LinkMessage::default();
        all.header.interface_family = RtFamily::Packet;
        let links = nl
            .exchange(RouteNetlinkMessage::GetLink(all), NLM_F_REQUEST | NLM_F_DUMP)
            .map_err(|e| e.errno())
            .ctx("check_link_nsid failed")?;
        Ok(links.iter().any(|m| {
            matches!(m, RouteNetlinkMessage::NewLink(l) if l.attributes.iter().any(|a| matches!(a, LinkAttribute::LinkNetNsId(_))))
        }))
    })
    .join()
    .map_err(|_| ProbeError::msg("link_nsid probe thread panicked"))?;
    match r {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::debug!("{e}");
            tracing::warn!("NSID isn't reported for network links");
            Ok(false)
        }
    }
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// An iptables binary that uses the legacy (xtables) API: `iptables-legacy`
/// (`ip6tables-legacy`), or a plain `iptables` whose version string does
/// not say nf_tables.
pub fn find_legacy_iptables(ipv6: bool) -> Option<PathBuf> {
    let (legacy, plain) = if ipv6 { ("ip6tables-legacy", "ip6tables") } else { ("iptables-legacy", "iptables") };
    if let Some(p) = in_path(legacy) {
        return Some(p);
    }
    let p = in_path(plain)?;
    let out = std::process::Command::new(&p).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    (out.status.success() && !text.contains("nf_tables")).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diag_requests_have_kernel_sizes() {
        for k in diag_kinds(true) {
            let want = match k.family as i32 {
                libc::AF_UNIX => 24,
                libc::AF_PACKET | libc::AF_NETLINK => 20,
                _ => 56,
            };
            assert_eq!(k.request().len(), want, "{:?}", k.names());
        }
        assert_eq!(diag_kinds(false).len(), 7);
        assert_eq!(diag_kinds(true).len(), 11);
    }

    #[test]
    fn sock_diag_core_families_answer() {
        let report = probe_sock_diag().unwrap();
        for (kind, r) in &report {
            if !kind.is_raw() {
                assert!(r.is_ok(), "{:?}: {:?}", kind.names(), r);
            }
        }
        // A unix socket of ours is always there to be found.
        let (_, unix) = &report[0];
        assert!(*unix.as_ref().unwrap() > 0);
    }

    #[test]
    fn category_one_net_probes_pass() {
        probe_sock_peek_off().unwrap();
        probe_tcp_repair().unwrap();
        probe_so_gets().unwrap();
    }

    #[test]
    fn extra_net_probes_match_this_kernel() {
        assert!(probe_tcp_repair_window().unwrap());
        assert!(probe_tcp_half_closed().unwrap());
        assert!(probe_sk_ns().unwrap());
        assert!(probe_sk_unix_file().unwrap());
        assert!(probe_sockopt_buf_lock().unwrap());
        assert!(probe_nsid().unwrap());
        assert!(probe_newifindex().unwrap());
        assert!(probe_link_nsid().unwrap());
        probe_ipv6_freebind().unwrap();
        probe_net_diag_raw().unwrap();
    }

    #[test]
    fn netlink_constants() {
        assert_eq!(crate::sockets::netlink::align(17), 20);
    }
}
