//! The sysctls a network namespace carries, as CRIU 4.2 lists them: the
//! ipv4 and ipv6 per-device confs ("all", "default" and each link's), the
//! unix datagram queue length and the ping group range. Read and written
//! under /proc/sys/net by a thread that is in the namespace (the files
//! show the namespace of whoever opens them).

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use tracing::debug;

use crate::images::pb::{SysctlEntry, SysctlType};

/// The ipv4 conf keys of a device, in the image's order.
pub const CONF4: &[&str] = &[
    "accept_local",
    "accept_redirects",
    "accept_source_route",
    "arp_accept",
    "arp_announce",
    "arp_filter",
    "arp_ignore",
    "arp_notify",
    "bootp_relay",
    "disable_policy",
    "disable_xfrm",
    "force_igmp_version",
    "forwarding",
    "igmpv2_unsolicited_report_interval",
    "igmpv3_unsolicited_report_interval",
    "log_martians",
    "medium_id",
    "promote_secondaries",
    "proxy_arp",
    "proxy_arp_pvlan",
    "route_localnet",
    "rp_filter",
    "secure_redirects",
    "send_redirects",
    "shared_media",
    "src_valid_mark",
    "tag",
    "ignore_routes_with_linkdown",
    "drop_gratuitous_arp",
    "drop_unicast_in_l2_multicast",
];

/// The ipv6 conf keys of a device, in the image's order (stable_secret is
/// the one string).
pub const CONF6: &[&str] = &[
    "accept_dad",
    "accept_ra",
    "accept_ra_defrtr",
    "accept_ra_from_local",
    "accept_ra_min_hop_limit",
    "accept_ra_mtu",
    "accept_ra_pinfo",
    "accept_ra_rt_info_max_plen",
    "accept_ra_rtr_pref",
    "accept_redirects",
    "accept_source_route",
    "autoconf",
    "dad_transmits",
    "disable_ipv6",
    "drop_unicast_in_l2_multicast",
    "drop_unsolicited_na",
    "force_mld_version",
    "force_tllao",
    "forwarding",
    "hop_limit",
    "ignore_routes_with_linkdown",
    "keep_addr_on_down",
    "max_addresses",
    "max_desync_factor",
    "mldv1_unsolicited_report_interval",
    "mldv2_unsolicited_report_interval",
    "mtu",
    "ndisc_notify",
    "optimistic_dad",
    "proxy_ndp",
    "regen_max_retry",
    "router_probe_interval",
    "router_solicitation_delay",
    "router_solicitation_interval",
    "router_solicitations",
    "stable_secret",
    "suppress_frag_ndisc",
    "temp_prefered_lft",
    "temp_valid_lft",
    "use_oif_addrs_only",
    "use_optimistic",
    "use_tempaddr",
];

const STR_KEY: &str = "stable_secret";

/// The unix sysctls (net/unix/...), in the image's order.
pub const UNIX: &[&str] = &["max_dgram_qlen"];

/// The ping group range's path and its value in a new namespace.
const PING_GROUP_RANGE: &str = "ipv4/ping_group_range";
const PING_DEFAULT: &str = "1\t0";

fn path(rel: &str) -> String {
    format!("/proc/sys/net/{rel}")
}

/// One sysctl's value; None where the kernel has no such file (or, for a
/// string, refuses to show it: an unset stable_secret reads EIO).
fn read_one(rel: &str, string: bool) -> Result<SysctlEntry> {
    let p = path(rel);
    let ty = if string { SysctlType::CtlStr } else { SysctlType::Ctl32 };
    let mut e = SysctlEntry { r#type: ty as i32, iarg: None, sarg: None };
    match std::fs::read_to_string(&p) {
        Ok(v) => {
            let v = v.trim_end_matches('\n');
            if string {
                e.sarg = Some(v.to_string());
            } else {
                e.iarg = Some(v.trim().parse().with_context(|| format!("{p}: not a number: {v:?}"))?);
            }
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) if string && err.raw_os_error() == Some(libc::EIO) => {}
        Err(err) => return Err(err).with_context(|| format!("can't read {p}")),
    }
    Ok(e)
}

/// The ipv4 (`v6` false) or ipv6 conf of `dev` ("all", "default" or a
/// link's name).
pub fn read_conf(v6: bool, dev: &str) -> Result<Vec<SysctlEntry>> {
    let (proto, keys) = if v6 { ("ipv6", CONF6) } else { ("ipv4", CONF4) };
    keys.iter().map(|k| read_one(&format!("{proto}/conf/{dev}/{k}"), *k == STR_KEY)).collect()
}

pub fn read_unix() -> Result<Vec<SysctlEntry>> {
    UNIX.iter().map(|k| read_one(&format!("unix/{k}"), false)).collect()
}

/// The ipv4 sysctls of the image: the ping group range, its value left
/// out when it is a new namespace's (as CRIU 4.2 writes it).
pub fn read_ipv4() -> Result<Vec<SysctlEntry>> {
    let mut e = read_one(PING_GROUP_RANGE, true)?;
    if e.sarg.as_deref().is_some_and(|v| v.split_whitespace().eq(PING_DEFAULT.split_whitespace())) {
        e.sarg = None;
    }
    Ok(vec![e])
}

fn same(a: &SysctlEntry, b: &SysctlEntry) -> bool {
    a.r#type == b.r#type
        && match SysctlType::try_from(a.r#type) {
            Ok(SysctlType::Ctl32) => a.iarg.is_some() && a.iarg == b.iarg,
            Ok(SysctlType::CtlStr) => a.sarg.is_some() && a.sarg == b.sarg,
            Err(_) => false,
        }
}

fn write_one(rel: &str, e: &SysctlEntry) -> Result<()> {
    let v = match SysctlType::try_from(e.r#type) {
        Ok(SysctlType::Ctl32) => match e.iarg {
            Some(i) => i.to_string(),
            None => return Ok(()),
        },
        Ok(SysctlType::CtlStr) => match &e.sarg {
            Some(s) => s.clone(),
            None => return Ok(()),
        },
        Err(_) => return Ok(()),
    };
    let p = path(rel);
    debug!("sysctl {p} = {v}");
    match std::fs::write(&p, &v) {
        Err(e) if WEAK.load(Ordering::Relaxed) => {
            tracing::warn!("--weak-sysctls: can't write {v:?} to {p}: {e}");
            Ok(())
        }
        r => r.with_context(|| format!("can't write {v:?} to {p}")),
    }
}

/// `--weak-sysctls`: a sysctl the restore can't write is only warned about.
pub static WEAK: AtomicBool = AtomicBool::new(false);

/// Write the ipv4/ipv6 conf `conf` of `dev` back. With `defaults` (a
/// link other than lo), values equal to the namespace's "default" are
/// left as the new link has them (but mtu, which disable_ipv6 changes);
/// accept_redirects goes last (it depends on forwarding).
pub fn write_conf(v6: bool, dev: &str, conf: &[SysctlEntry], defaults: Option<&[SysctlEntry]>) -> Result<()> {
    let (proto, keys) = if v6 { ("ipv6", CONF6) } else { ("ipv4", CONF4) };
    if conf.len() > keys.len() {
        tracing::warn!("The image contains unknown sysctl-s");
    }
    let mut last = None;
    for (i, (key, e)) in keys.iter().zip(conf).enumerate() {
        if let Some(d) = defaults.and_then(|d| d.get(i))
            && same(e, d)
            && *key != "mtu"
        {
            continue;
        }
        if *key == "accept_redirects" {
            last = Some(e);
            continue;
        }
        write_one(&format!("{proto}/conf/{dev}/{key}"), e)?;
    }
    if let Some(e) = last {
        write_one(&format!("{proto}/conf/{dev}/accept_redirects"), e)?;
    }
    Ok(())
}

pub fn write_unix(conf: &[SysctlEntry]) -> Result<()> {
    UNIX.iter().zip(conf).try_for_each(|(k, e)| write_one(&format!("unix/{k}"), e))
}

pub fn write_ipv4(conf: &[SysctlEntry]) -> Result<()> {
    // The image holds only the ping group range (when not the default).
    conf.iter().take(1).try_for_each(|e| write_one(PING_GROUP_RANGE, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_lists_match_the_image_sizes() {
        // CRIU 4.2 writes 30 ipv4 and 42 ipv6 entries per device.
        assert_eq!(CONF4.len(), 30);
        assert_eq!(CONF6.len(), 42);
        assert_eq!(CONF6.iter().position(|k| *k == STR_KEY), Some(35));
    }

    #[test]
    fn same_needs_a_value() {
        let a = SysctlEntry { r#type: SysctlType::Ctl32 as i32, iarg: Some(1), sarg: None };
        let none = SysctlEntry { r#type: SysctlType::Ctl32 as i32, iarg: None, sarg: None };
        assert!(same(&a, &a.clone()));
        assert!(!same(&none, &none.clone()));
        assert!(!same(&a, &SysctlEntry { iarg: Some(2), ..a.clone() }));
    }
}
