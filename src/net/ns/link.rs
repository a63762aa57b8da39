//! The links of a dumped network namespace (netdev-ID.img), both ways:
//! lo; veth devices whose peer is outside the namespace (restored with the
//! peer in criu's namespace, named by `--veth-pair IN=OUT`) or inside it
//! (the pair made once, with both ends' names, indexes and addresses);
//! bridges (`bridge`) and the links enslaved to them (`master`); macvlans
//! over a link of the namespace (`macvlan`); tun/tap devices (`tun`). The
//! fallback tunnels a tunnel module puts in every namespace (sit0, ...)
//! are skipped while down, as CRIU skips sit0. Any other kind of link, a
//! master that is not a bridge of the namespace, is refused by name.

use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage};
use tracing::{info, warn};

use super::rtnl::Rtnl;
use super::sysctl;
use crate::files::tun::Attached;
use crate::images::pb::{NdType, NetDeviceEntry, NetnsId, SysctlEntry};

/// The fallback devices tunnel modules make in every namespace.
const FALLBACK_TUNNELS: &[&str] = &["sit0", "tunl0", "gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0", "ip6tnl0", "ip6gre0"];

/// The links of the namespace the calling thread is in, and the ids it
/// gives the other dumped namespaces: none, as CRIU 4.2 (the only other
/// one it knows is criu's, which it does not count; a veth to it has no
/// peer_nsid, "external"). `ns_id` numbers this namespace; `attached` is
/// what the fd dump read of tun devices through the tree's files.
pub fn dump(ns_id: u32, root: i32, attached: Option<&Attached>) -> Result<(Vec<NetDeviceEntry>, Vec<NetnsId>)> {
    let mut nl = Rtnl::open()?;
    let links = nl.links()?;
    let nsids = Vec::new();
    let mut out = Vec::new();
    for l in &links {
        if let Some(nde) = dump_one(l, ns_id, &nsids, root, attached)? {
            out.push(nde);
        }
    }
    check_relations(&out, ns_id, root)?;
    Ok((out, nsids))
}

/// Masters must be bridges of the namespace, a macvlan's lower link a
/// link of it.
fn check_relations(out: &[NetDeviceEntry], ns_id: u32, root: i32) -> Result<()> {
    let by_index = |i: u32| out.iter().find(|n| n.ifindex == i);
    for n in out {
        let who = || format!("link {} ({}) of the network namespace of task {root}", n.ifindex, n.name);
        if let Some(m) = n.master {
            match by_index(m) {
                Some(b) if b.r#type == NdType::Bridge as i32 => {}
                Some(b) => bail!("{} is enslaved to link {m} ({}), which is not a bridge: not carried", who(), b.name),
                None => bail!("{} is enslaved to link {m}, which is not carried", who()),
            }
        }
        if n.r#type == NdType::Macvlan as i32 {
            let lower = n.peer_ifindex.unwrap_or(n.ifindex);
            if n.peer_nsid != Some(ns_id) || by_index(lower).is_none() || lower == n.ifindex {
                bail!("{} is a macvlan over a link outside the namespace: not carried (only over a link of the namespace)", who());
            }
        }
    }
    Ok(())
}

fn kind(l: &LinkMessage) -> Option<&InfoKind> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => i.iter().find_map(|x| match x {
            LinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

fn dump_one(l: &LinkMessage, ns_id: u32, nsids: &[NetnsId], root: i32, attached: Option<&Attached>) -> Result<Option<NetDeviceEntry>> {
    let idx = l.header.index;
    let ty: u16 = l.header.link_layer_type.into();
    info!("\tLD: Got link {idx}, type {ty}");
    let mut name = None;
    let (mut mtu, mut address, mut link, mut link_nsid, mut master) = (0, None, None, None, None);
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::Address(a) => address = Some(a.clone()),
            LinkAttribute::Link(p) => link = Some(*p),
            LinkAttribute::LinkNetNsId(n) => link_nsid = Some(*n),
            LinkAttribute::Controller(m) => master = Some(*m),
            _ => {}
        }
    }
    let name = name.with_context(|| format!("No name for link {idx}"))?;
    let who = format!("link {idx} ({name}) of the network namespace of task {root}");
    let lt = l.header.link_layer_type;
    let nd = if lt == LinkLayerType::Loopback {
        NdType::Loopback
    } else {
        match kind(l) {
            Some(InfoKind::Veth) if lt == LinkLayerType::Ether => NdType::Veth,
            Some(InfoKind::Bridge) if lt == LinkLayerType::Ether => NdType::Bridge,
            Some(InfoKind::MacVlan) if lt == LinkLayerType::Ether => NdType::Macvlan,
            Some(InfoKind::Tun) if lt == LinkLayerType::Ether || lt == LinkLayerType::None => NdType::Tun,
            Some(_) if FALLBACK_TUNNELS.contains(&name.as_str()) => {
                if l.header.flags.contains(LinkFlags::Up) || master.is_some() {
                    bail!("{who} is the fallback tunnel device the kernel makes, up or enslaved: not carried (only while down)");
                }
                info!("found {name}, ignoring");
                return Ok(None);
            }
            Some(k) => bail!("{who} is of kind {k:?}: not carried (lo, veth, bridge, macvlan and tun/tap links are)"),
            None => bail!("{who} has no kind (type {ty}): not carried"),
        }
    };
    let peer_ifindex = link.unwrap_or(idx);
    let peer_nsid = match link_nsid {
        None => Some(ns_id),
        Some(v) => nsids.iter().find(|n| n.netnsid_value == v).map(|n| n.target_ns_id),
    };
    info!("The peer link is in the {} netns with the {peer_ifindex} index", link_nsid.unwrap_or(-1));
    if nd == NdType::Veth && peer_nsid.is_none() {
        warn!("The {name} veth is in an external netns");
    }
    let mut nde = NetDeviceEntry {
        r#type: nd as i32,
        ifindex: idx,
        mtu,
        flags: l.header.flags.bits(),
        name: name.clone(),
        address: if nd == NdType::Loopback { None } else { address },
        conf4: sysctl::read_conf(false, &name)?,
        conf6: sysctl::read_conf(true, &name)?,
        peer_ifindex: Some(peer_ifindex),
        peer_nsid,
        master,
        ..Default::default()
    };
    if nde.master.is_some() {
        super::bridge::check_port(l, &who)?;
    }
    match nd {
        NdType::Bridge => super::bridge::check(l, &who)?,
        NdType::Macvlan => nde.macvlan = Some(super::macvlan::entry(l, &who)?),
        NdType::Tun => nde.tun = Some(super::tun::dump(&name, attached).with_context(|| who.clone())?),
        _ => {}
    }
    Ok(Some(nde))
}

/// The outer name `--veth-pair IN=OUT[@BRIDGE]` gives link `name`.
pub fn outer_name<'a>(veth_pairs: &'a [(String, String)], name: &str) -> Option<(&'a str, Option<&'a str>)> {
    veth_pairs.iter().find(|(i, _)| i == name).map(|(_, o)| match o.split_once('@') {
        Some((o, b)) => (o, Some(b)),
        None => (o.as_str(), None),
    })
}

fn base(nde: &NetDeviceEntry, index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::from_bits_retain(nde.flags);
    m.attributes.push(LinkAttribute::IfName(nde.name.clone()));
    m.attributes.push(LinkAttribute::Mtu(nde.mtu));
    m
}

/// Make the links of the image in the namespace the calling thread is in
/// (a new one), then their sysctls; `defaults` is the namespace's
/// "default" conf (a new link starts with it). Veth peers outside go to
/// `criu_ns`. A link waits for its master and a macvlan for its lower
/// link; a port goes into its bridge once both exist.
pub fn restore(
    links: &[NetDeviceEntry],
    defaults: (&[SysctlEntry], &[SysctlEntry]),
    veth_pairs: &[(String, String)],
    criu_ns: BorrowedFd<'_>,
    nsids: &[NetnsId],
    ns_id: u32,
) -> Result<()> {
    let mut nl = Rtnl::open()?;
    // The ids the namespace gave criu's (where the veth peers go), first.
    for n in nsids {
        if n.target_ns_id != crate::ns::NET_NS_ID {
            bail!("the namespace gave id {} to namespace {}, which is not in the images", n.netnsid_value, n.target_ns_id);
        }
        nl.set_nsid(criu_ns, n.netnsid_value)?;
    }
    // Made (as itself), and made as the peer of a veth made before.
    let mut made = vec![false; links.len()];
    let mut as_peer = vec![false; links.len()];
    let own_ns = Some(ns_id);
    let pos = |i: u32| links.iter().position(|n| n.ifindex == i);
    loop {
        let before = made.iter().filter(|m| **m).count();
        for (k, nde) in links.iter().enumerate() {
            if made[k] {
                continue;
            }
            let master = match nde.master {
                Some(m) => Some(pos(m).with_context(|| format!("Unable to find the {m} master of link {}", nde.name))?),
                None => None,
            };
            if master.is_some_and(|m| !made[m]) {
                continue;
            }
            if nde.r#type == NdType::Macvlan as i32 {
                let lower = nde.peer_ifindex.and_then(pos).with_context(|| format!("macvlan {}: its lower link {:?} is not in the image", nde.name, nde.peer_ifindex))?;
                if !made[lower] && !as_peer[lower] {
                    continue;
                }
            }
            let peer = make(&mut nl, links, k, veth_pairs, criu_ns, own_ns, as_peer[k])?;
            if let Some(p) = peer {
                as_peer[p] = true;
            }
            made[k] = true;
            write_confs(nde, defaults)?;
            if let Some(m) = master {
                let mut msg = LinkMessage::default();
                msg.header.index = nde.ifindex;
                msg.header.flags = LinkFlags::from_bits_retain(nde.flags);
                msg.attributes.push(LinkAttribute::Controller(links[m].ifindex));
                nl.set_link(msg, &format!("putting link {} into bridge {}", nde.name, links[m].name))?;
            }
        }
        let now = made.iter().filter(|m| **m).count();
        if now == links.len() {
            return bridge_mtus(&mut nl, links);
        }
        if now == before {
            let left: Vec<&str> = links.iter().zip(&made).filter(|(_, m)| !**m).map(|(n, _)| n.name.as_str()).collect();
            bail!("Unable to restore network links: {} wait for links that are never made", left.join(", "));
        }
    }
}

/// A bridge's MTU follows its ports' as they join (until set by hand):
/// set again where it moved.
fn bridge_mtus(nl: &mut Rtnl, links: &[NetDeviceEntry]) -> Result<()> {
    let now = nl.links()?;
    for b in links.iter().filter(|n| n.r#type == NdType::Bridge as i32) {
        let cur = now.iter().find(|l| l.header.index == b.ifindex).and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        });
        if cur.is_some_and(|m| m != b.mtu) {
            let mut m = LinkMessage::default();
            m.header.index = b.ifindex;
            m.attributes.push(LinkAttribute::Mtu(b.mtu));
            nl.set_link(m, &format!("setting the MTU {} of bridge {}", b.mtu, b.name))?;
        }
    }
    Ok(())
}

fn write_confs(nde: &NetDeviceEntry, defaults: (&[SysctlEntry], &[SysctlEntry])) -> Result<()> {
    let lo = nde.r#type == NdType::Loopback as i32;
    sysctl::write_conf(false, &nde.name, &nde.conf4, (!lo).then_some(defaults.0)).with_context(|| format!("the ipv4 conf of link {}", nde.name))?;
    sysctl::write_conf(true, &nde.name, &nde.conf6, (!lo).then_some(defaults.1)).with_context(|| format!("the ipv6 conf of link {}", nde.name))
}

/// Make link `k` (`made_as_peer`: it exists already, the peer of a veth
/// made before: only its settings). Some(index in `links`) of a veth peer
/// made with it.
fn make(
    nl: &mut Rtnl,
    links: &[NetDeviceEntry],
    k: usize,
    veth_pairs: &[(String, String)],
    criu_ns: BorrowedFd<'_>,
    own_ns: Option<u32>,
    made_as_peer: bool,
) -> Result<Option<usize>> {
    let nde = &links[k];
    let ty = NdType::try_from(nde.r#type).ok();
    info!("Restoring link {} type {}", nde.name, nde.r#type);
    let what = format!("restoring link {} (index {})", nde.name, nde.ifindex);
    let with_addr = |index: u32| {
        let mut m = base(nde, index);
        if let Some(a) = &nde.address {
            m.attributes.push(LinkAttribute::Address(a.clone()));
        }
        m
    };
    if made_as_peer {
        nl.set_link(with_addr(nde.ifindex), &what)?;
        return Ok(None);
    }
    match ty {
        Some(NdType::Loopback) => nl.set_link(base(nde, 0), &what)?,
        Some(NdType::Veth) => {
            // A peer inside the namespace (its record here) is made with it.
            let inside = nde.peer_nsid.is_some() && nde.peer_nsid == own_ns && nde.peer_ifindex != Some(nde.ifindex);
            let peer_k = if inside { nde.peer_ifindex.and_then(|i| links.iter().position(|n| n.ifindex == i)) } else { None };
            if inside && peer_k.is_none() {
                bail!("veth {} has its peer {:?} in the namespace, but no record of it", nde.name, nde.peer_ifindex);
            }
            let mut m = with_addr(nde.ifindex);
            let mut peer = LinkMessage::default();
            if let Some(p) = peer_k.map(|p| &links[p]) {
                peer.header.index = p.ifindex;
                peer.attributes.push(LinkAttribute::IfName(p.name.clone()));
                peer.attributes.push(LinkAttribute::Mtu(p.mtu));
                if let Some(a) = &p.address {
                    peer.attributes.push(LinkAttribute::Address(a.clone()));
                }
            } else {
                if let Some((out, _)) = outer_name(veth_pairs, &nde.name) {
                    peer.attributes.push(LinkAttribute::IfName(out.to_string()));
                }
                peer.attributes.push(LinkAttribute::NetNsFd(criu_ns.as_raw_fd()));
            }
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]));
            // The namespace dumped may still be going away with the
            // outer end of its veth (namespaces are torn down after
            // their last task): its name is free in a moment.
            let outer = if peer_k.is_none() { outer_name(veth_pairs, &nde.name).map(|(o, _)| o.to_string()) } else { None };
            let mut tries = 0;
            loop {
                match nl.new_link(m.clone(), &what) {
                    Err(e) if tries < 100 && outer.is_some() && format!("{e:#}").contains("File exists") => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(30));
                    }
                    r => break r?,
                }
            }
            return Ok(peer_k);
        }
        Some(NdType::Bridge) => {
            let mut m = with_addr(nde.ifindex);
            m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
            nl.new_link(m, &what)?;
        }
        Some(NdType::Macvlan) => {
            let mut m = with_addr(nde.ifindex);
            let lower = nde.peer_ifindex.with_context(|| format!("macvlan {} has no lower link", nde.name))?;
            m.attributes.push(LinkAttribute::Link(lower));
            m.attributes.push(LinkAttribute::LinkInfo(super::macvlan::link_info(nde)?));
            nl.new_link(m, &what)?;
        }
        Some(NdType::Tun) => super::tun::restore(nde, nl, with_addr(nde.ifindex))?,
        _ => bail!("link {} (index {}) is of type {}: it can't be restored", nde.name, nde.ifindex, nde.r#type),
    }
    Ok(None)
}

/// In criu's namespace: put the outer end of each `--veth-pair
/// IN=OUT@BRIDGE` into its bridge and up.
pub fn move_to_bridges(veth_pairs: &[(String, String)]) -> Result<()> {
    let wanted: Vec<(&str, &str)> = veth_pairs
        .iter()
        .filter_map(|(_, o)| o.split_once('@'))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut nl = Rtnl::open()?;
    let links = nl.links()?;
    let index = |n: &str| {
        links.iter().find(|l| l.attributes.iter().any(|a| matches!(a, LinkAttribute::IfName(x) if x == n))).map(|l| l.header.index)
    };
    for (out, br) in wanted {
        info!("\tMoving dev {out} to bridge {br}");
        let dev = index(out).with_context(|| format!("Can't get index of {out}"))?;
        let brx = index(br).with_context(|| format!("Can't add interface {out} to bridge {br}: no such bridge"))?;
        let mut m = LinkMessage::default();
        m.header.index = dev;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::Controller(brx));
        nl.set_link(m, &format!("adding {out} to bridge {br}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_pair_values() {
        let p = vec![("eth0".to_string(), "veth9@br0".to_string()), ("eth1".to_string(), "v1".to_string())];
        assert_eq!(outer_name(&p, "eth0"), Some(("veth9", Some("br0"))));
        assert_eq!(outer_name(&p, "eth1"), Some(("v1", None)));
        assert_eq!(outer_name(&p, "eth2"), None);
    }
}
