//! rtnetlink requests of the namespace code, on the rust-netlink crates
//! (netlink-sys for the socket, netlink-packet-route for the messages):
//! the link dump, link changes, the id given to another namespace. A socket
//! talks to the namespace of the thread that made it.

use anyhow::{bail, Context, Result};
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A route netlink socket of the calling thread's namespace.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE).context("Can't open rtnl sock")?;
        sock.bind_auto().context("Can't bind rtnl sock")?;
        sock.connect(&SocketAddr::new(0, 0)).context("Can't connect rtnl sock")?;
        Ok(Rtnl { sock, seq: 0x4352_0000 })
    }

    /// Send `msg` with `flags` and collect the replies (up to NLMSG_DONE
    /// for a dump, the ACK otherwise); a NACK is an error naming `what`.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16, what: &str) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        self.sock.send(&buf, 0).with_context(|| format!("{what}: send"))?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full().with_context(|| format!("{what}: recv"))?;
            let mut off = 0;
            while off < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| anyhow::anyhow!("{what}: bad reply: {e}"))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    bail!("{what}: a reply of length 0");
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out),
                        Some(c) => bail!("{what}: {}", std::io::Error::from_raw_os_error(-c.get())),
                    },
                    // A request's reply comes before its ACK.
                    NetlinkPayload::InnerMessage(i) => out.push(i),
                    _ => {}
                }
            }
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<LinkMessage>> {
        let replies = self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_REQUEST | NLM_F_DUMP, "Dumping netns links")?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    /// RTM_NEWLINK (create) `link`.
    pub fn new_link(&mut self, link: LinkMessage, what: &str) -> Result<()> {
        self.request(RouteNetlinkMessage::NewLink(link), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, what).map(drop)
    }

    /// RTM_SETLINK `link`.
    pub fn set_link(&mut self, link: LinkMessage, what: &str) -> Result<()> {
        self.request(RouteNetlinkMessage::SetLink(link), NLM_F_REQUEST | NLM_F_ACK, what).map(drop)
    }

    /// Give the namespace `fd` stands for the id `nsid` in this one.
    pub fn set_nsid(&mut self, fd: std::os::fd::BorrowedFd<'_>, nsid: i32) -> Result<()> {
        use std::os::fd::AsRawFd;
        let mut m = NsidMessage::default();
        m.attributes.push(NsidAttribute::Fd(fd.as_raw_fd() as u32));
        m.attributes.push(NsidAttribute::Id(nsid));
        self.request(RouteNetlinkMessage::NewNsId(m), NLM_F_REQUEST | NLM_F_ACK, &format!("RTM_NEWNSID {nsid}")).map(drop)
    }
}
