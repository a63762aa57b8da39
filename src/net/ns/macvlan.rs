//! macvlan links of the namespace (ND_TYPE MACVLAN, macvlan_link_entry:
//! mode and flags), their lower link in IFLA_LINK (the record's
//! peer_ifindex/peer_nsid, as CRIU 4.2 writes them). Carried when the
//! lower link is a link of the namespace (made first at restore); one over
//! a link outside it is refused by name (CRIU 4.2 needs `--external
//! macvlan[NAME]:...` there).

use anyhow::{bail, Context, Result};
use netlink_packet_route::link::{InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, LinkMessage, MacVlanFlags, MacVlanMode};

use crate::images::pb::{MacvlanLinkEntry, NetDeviceEntry};

/// The macvlan_link_entry of link `l`.
pub fn entry(l: &LinkMessage, who: &str) -> Result<MacvlanLinkEntry> {
    let data = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => i.iter().find_map(|x| match x {
            LinkInfo::Data(InfoData::MacVlan(d)) => Some(d),
            _ => None,
        }),
        _ => None,
    });
    let data = data.with_context(|| format!("no data for macvlan {who}"))?;
    let mut mode = None;
    let mut flags = None;
    for x in data {
        match x {
            InfoMacVlan::Mode(m) => mode = Some(u32::from(*m)),
            InfoMacVlan::Flags(f) => flags = Some(u32::from(f.bits())),
            InfoMacVlan::MacAddrCount(n) if *n != 0 => bail!("{who} is a macvlan with {n} source MAC address(es): not carried"),
            _ => {}
        }
    }
    let mode = mode.with_context(|| format!("macvlan mode required for {who}"))?;
    Ok(MacvlanLinkEntry { mode, flags })
}

/// The link info of the RTM_NEWLINK making `nde` again.
pub fn link_info(nde: &NetDeviceEntry) -> Result<Vec<LinkInfo>> {
    let m = nde.macvlan.as_ref().with_context(|| format!("Missing macvlan link entry {} ({})", nde.ifindex, nde.name))?;
    let mut d = vec![InfoMacVlan::Mode(MacVlanMode::from(m.mode))];
    if let Some(f) = m.flags {
        d.push(InfoMacVlan::Flags(MacVlanFlags::from_bits_retain(f as u16)));
    }
    Ok(vec![LinkInfo::Kind(InfoKind::MacVlan), LinkInfo::Data(InfoData::MacVlan(d))])
}
