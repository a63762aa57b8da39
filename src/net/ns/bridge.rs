//! Bridges of the namespace (ND_TYPE BRIDGE), as CRIU 4.2: the record
//! holds only that it is a bridge (its MAC, MTU, flags as any link); its
//! ports carry `master`. A bridge whose settings are not the kernel's
//! defaults (STP, timers, priority, VLAN filtering, multicast snooping,
//! netfilter calls, forward mask) has nothing to hold them: refused by name;
//! so is a port whose port settings are not a new port's (priority,
//! learning, flooding, hairpin, guard, isolation, ...: `check_port`).

use anyhow::{bail, Result};
use netlink_packet_route::link::{BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoPortData, LinkAttribute, LinkInfo, LinkMessage};

/// The data of the bridge's link info.
fn data(l: &LinkMessage) -> Vec<InfoBridge> {
    l.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::LinkInfo(i) => i.iter().find_map(|x| match x {
                LinkInfo::Data(InfoData::Bridge(d)) => Some(d.clone()),
                _ => None,
            }),
            _ => None,
        })
        .next()
        .unwrap_or_default()
}

/// The first setting of `d` that is not a new bridge's, by name.
pub fn changed_setting(d: &[InfoBridge]) -> Option<String> {
    d.iter().find_map(|x| {
        let bad = match x {
            InfoBridge::ForwardDelay(v) => *v != 1500,
            InfoBridge::HelloTime(v) => *v != 200,
            InfoBridge::MaxAge(v) => *v != 2000,
            InfoBridge::AgeingTime(v) => *v != 30000,
            InfoBridge::StpState(s) => *s != BridgeStpState::Disabled,
            InfoBridge::Priority(v) => *v != 0x8000,
            InfoBridge::VlanFiltering(v) => *v,
            InfoBridge::GroupFwdMask(v) => *v != 0,
            InfoBridge::MulticastSnooping(v) => !*v,
            InfoBridge::NfCallIpTables(v) | InfoBridge::NfCallIp6Tables(v) | InfoBridge::NfCallArpTables(v) => *v,
            InfoBridge::VlanDefaultPvid(v) => *v != 1,
            _ => false,
        };
        bad.then(|| format!("{x:?}"))
    })
}

/// Refuse bridge `who` when a setting is not the default.
pub fn check(l: &LinkMessage, who: &str) -> Result<()> {
    if let Some(s) = changed_setting(&data(l)) {
        bail!("{who} is a bridge with a setting other than the kernel's default ({s}): not carried (the image holds none)");
    }
    Ok(())
}

/// The first setting of port data `d` that is not a new port's, by name
/// (the path cost follows the link's speed: left out).
pub fn changed_port_setting(d: &[InfoBridgePort]) -> Option<String> {
    d.iter().find_map(|x| {
        let bad = match x {
            InfoBridgePort::Priority(v) => *v != 32,
            InfoBridgePort::Learning(v) | InfoBridgePort::UnicastFlood(v) | InfoBridgePort::MulticastFlood(v) | InfoBridgePort::BroadcastFlood(v) => !*v,
            InfoBridgePort::HairpinMode(v)
            | InfoBridgePort::Guard(v)
            | InfoBridgePort::Protect(v)
            | InfoBridgePort::FastLeave(v)
            | InfoBridgePort::ProxyARP(v)
            | InfoBridgePort::ProxyARPWifi(v)
            | InfoBridgePort::MulticastToUnicast(v)
            | InfoBridgePort::VlanTunnel(v)
            | InfoBridgePort::NeighSupress(v)
            | InfoBridgePort::Isolated(v)
            | InfoBridgePort::Locked(v)
            | InfoBridgePort::Mab(v) => *v,
            InfoBridgePort::GroupFwdMask(v) => *v != 0,
            InfoBridgePort::BackupPort(_) => true,
            _ => false,
        };
        bad.then(|| format!("{x:?}"))
    })
}

/// Refuse port `who` of a bridge when a port setting is not the default.
pub fn check_port(l: &LinkMessage, who: &str) -> Result<()> {
    let d = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => i.iter().find_map(|x| match x {
            LinkInfo::PortData(InfoPortData::BridgePort(d)) => Some(d),
            _ => None,
        }),
        _ => None,
    });
    if let Some(s) = d.and_then(|d| changed_port_setting(d)) {
        bail!("{who} is a bridge port with a setting other than a new port's ({s}): not carried (the image holds none)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_changes_are_named() {
        let d = vec![InfoBridge::ForwardDelay(1500), InfoBridge::StpState(BridgeStpState::Disabled), InfoBridge::VlanFiltering(false)];
        assert_eq!(changed_setting(&d), None);
        let d = vec![InfoBridge::ForwardDelay(1500), InfoBridge::StpState(BridgeStpState::KernelStp)];
        assert!(changed_setting(&d).is_some_and(|s| s.contains("StpState")));
        assert!(changed_setting(&[InfoBridge::AgeingTime(100)]).is_some());
        assert_eq!(changed_port_setting(&[InfoBridgePort::Priority(32), InfoBridgePort::Learning(true), InfoBridgePort::Cost(100)]), None);
        assert!(changed_port_setting(&[InfoBridgePort::HairpinMode(true)]).is_some_and(|s| s.contains("HairpinMode")));
    }
}
