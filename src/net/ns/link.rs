//! The links of a dumped network namespace (netdev-ID.img), both ways:
//! lo, and veth devices whose peer is outside the namespace (restored
//! with the peer in criu's namespace, named by `--veth-pair IN=OUT`).
//! Any other kind of link is refused by name at dump.

use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage};
use tracing::{info, warn};

use super::rtnl::Rtnl;
use super::sysctl;
use crate::images::pb::{NdType, NetDeviceEntry, NetnsId, SysctlEntry};

/// The links of the namespace the calling thread is in, and the ids it
/// gives the other dumped namespaces: none, as CRIU 4.2 (the only other
/// one it knows is criu's, which it does not count; a veth to it has no
/// peer_nsid, "external"). `ns_id` numbers this namespace.
pub fn dump(ns_id: u32, root: i32) -> Result<(Vec<NetDeviceEntry>, Vec<NetnsId>)> {
    let mut nl = Rtnl::open()?;
    let links = nl.links()?;
    let nsids = Vec::new();
    let mut out = Vec::new();
    for l in &links {
        out.push(dump_one(l, ns_id, &nsids, root)?);
    }
    Ok((out, nsids))
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

fn dump_one(l: &LinkMessage, ns_id: u32, nsids: &[NetnsId], root: i32) -> Result<NetDeviceEntry> {
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
    let nd = if l.header.link_layer_type == LinkLayerType::Loopback {
        NdType::Loopback
    } else {
        match kind(l) {
            Some(InfoKind::Veth) if l.header.link_layer_type == LinkLayerType::Ether => NdType::Veth,
            Some(k) => bail!("{who} is of kind {k:?}: only lo and veth links are carried"),
            None => bail!("{who} has no kind (type {ty}): only lo and veth links are carried"),
        }
    };
    if let Some(m) = master {
        bail!("{who} is enslaved to link {m} in the namespace: bridges and bonds inside it are not carried");
    }
    let peer_ifindex = link.unwrap_or(idx);
    let peer_nsid = match link_nsid {
        None => Some(ns_id),
        Some(v) => nsids.iter().find(|n| n.netnsid_value == v).map(|n| n.target_ns_id),
    };
    info!("The peer link is in the {} netns with the {peer_ifindex} index", link_nsid.unwrap_or(-1));
    if nd == NdType::Veth {
        match peer_nsid {
            Some(p) if p == ns_id => bail!("{who} is a veth whose peer is in the same namespace: not carried (only veths to the outside are)"),
            Some(_) => {}
            None => warn!("The {name} veth is in an external netns"),
        }
    }
    Ok(NetDeviceEntry {
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
        ..Default::default()
    })
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
/// "default" conf (a new link starts with it). Veth peers go to `criu_ns`.
pub fn restore(
    links: &[NetDeviceEntry],
    defaults: (&[SysctlEntry], &[SysctlEntry]),
    veth_pairs: &[(String, String)],
    criu_ns: BorrowedFd<'_>,
    nsids: &[NetnsId],
) -> Result<()> {
    let mut nl = Rtnl::open()?;
    // The ids the namespace gave criu's (where the veth peers go), first.
    for n in nsids {
        if n.target_ns_id != crate::ns::NET_NS_ID {
            bail!("the namespace gave id {} to namespace {}, which is not in the images", n.netnsid_value, n.target_ns_id);
        }
        nl.set_nsid(criu_ns, n.netnsid_value)?;
    }
    for nde in links {
        let ty = NdType::try_from(nde.r#type).ok();
        info!("Restoring link {} type {}", nde.name, nde.r#type);
        let what = format!("restoring link {} (index {})", nde.name, nde.ifindex);
        match ty {
            Some(NdType::Loopback) => nl.set_link(base(nde, 0), &what)?,
            Some(NdType::Veth) => {
                let mut m = base(nde, nde.ifindex);
                if let Some(a) = &nde.address {
                    m.attributes.push(LinkAttribute::Address(a.clone()));
                }
                let mut peer = LinkMessage::default();
                if let Some((out, _)) = outer_name(veth_pairs, &nde.name) {
                    peer.attributes.push(LinkAttribute::IfName(out.to_string()));
                }
                peer.attributes.push(LinkAttribute::NetNsFd(criu_ns.as_raw_fd()));
                m.attributes.push(LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Veth),
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
                ]));
                // The namespace dumped may still be going away with the
                // outer end of its veth (namespaces are torn down after
                // their last task): its name is free in a moment.
                let outer = outer_name(veth_pairs, &nde.name).map(|(o, _)| o.to_string());
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
            }
            _ => bail!("link {} (index {}) is of type {}: only lo and veth links can be restored", nde.name, nde.ifindex, nde.r#type),
        }
        let lo = ty == Some(NdType::Loopback);
        sysctl::write_conf(false, &nde.name, &nde.conf4, (!lo).then_some(defaults.0)).with_context(|| format!("the ipv4 conf of link {}", nde.name))?;
        sysctl::write_conf(true, &nde.name, &nde.conf6, (!lo).then_some(defaults.1)).with_context(|| format!("the ipv6 conf of link {}", nde.name))?;
    }
    Ok(())
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
