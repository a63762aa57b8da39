//! tun/tap links of the namespace (ND_TYPE TUN, tun_link_entry), as CRIU
//! 4.2: flags, owner and group from the namespace's sysfs; vnet header
//! size and send buffer through a file attached to the device (one of the
//! tree's, kept by `files::tun` during the fd dump, or, for a persistent
//! device no task holds, our own attached for the reading). Restore: the
//! device made again through /dev/net/tun with its index and flags, owner,
//! group, send buffer, header size, persistent (the task's file drops
//! that when the device had none: `files::tun`), then its MTU, address
//! and flags by netlink.

use std::fs::OpenOptions;
use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};

use super::rtnl::Rtnl;
use crate::files::tun::{link_params, Attached, LinkParams};
use crate::images::pb::{NetDeviceEntry, TunLinkEntry};
use crate::sys::tun as ioc;

/// What the namespace's sysfs shows of device `name`: tun_flags, owner
/// and group (-1: none), read through a detached sysfs mounted by the
/// calling thread (in the namespace; criu's /sys shows criu's).
fn sysfs(name: &str) -> Result<(u32, i32, i32)> {
    use std::os::fd::AsRawFd;
    let m = crate::sys::fsmount::detached(c"sysfs").context("Can't mount the namespace's sysfs")?;
    let read = |f: &str| -> Result<String> {
        let p = format!("/proc/thread-self/fd/{}/class/net/{name}/{f}", m.as_raw_fd());
        Ok(std::fs::read_to_string(&p).with_context(|| format!("Can't open ns' class/net/{name}/{f}"))?.trim().to_string())
    };
    let flags = read("tun_flags")?;
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).with_context(|| format!("tun_flags of {name}: {flags:?}"))?;
    let num = |f: &str| -> Result<i32> {
        let v = read(f)?;
        v.parse::<i64>().map(|n| n as i32).with_context(|| format!("{f} of {name}: {v:?}"))
    };
    Ok((flags, num("owner")?, num("group")?))
}

/// The tun_link_entry of device `name` (the calling thread in its
/// namespace).
pub fn dump(name: &str, attached: Option<&Attached>) -> Result<TunLinkEntry> {
    let (flags, owner, group) = sysfs(name)?;
    let lp: LinkParams = match attached.and_then(|a| a.0.get(name)) {
        Some(lp) => *lp,
        None => {
            if flags & libc::IFF_PERSIST as u32 == 0 {
                bail!("tun device {name} is not persistent and no task of the tree holds a file of it (a task outside the tree does)");
            }
            // Attached with its own flags (not IFF_NOFILTER, which is
            // IFF_NO_PI's bit: it would change the device).
            let f = OpenOptions::new().read(true).write(true).open("/dev/net/tun").context("Can't open tun device")?;
            ioc::set_iff(f.as_fd(), name, flags)
                .with_context(|| format!("Can't attach to persistent tun device {name} to read its settings (a file outside the tree holds it?)"))?;
            link_params(f.as_fd(), name, flags)?
        }
    };
    Ok(TunLinkEntry { flags, owner, group, vnethdr: lp.vnethdr, sndbuf: lp.sndbuf })
}

/// Make device `nde` again in the namespace of the calling thread, then
/// its link settings (`base`: the RTM_SETLINK of its index, name, MTU,
/// flags and address).
pub fn restore(nde: &NetDeviceEntry, nl: &mut Rtnl, base: netlink_packet_route::link::LinkMessage) -> Result<()> {
    let t = nde.tun.as_ref().with_context(|| format!("Corrupted TUN link entry {:x} ({})", nde.ifindex, nde.name))?;
    tracing::info!("Restoring tun device {}", nde.name);
    let name = &nde.name;
    let f = OpenOptions::new().read(true).write(true).open("/dev/net/tun").context("Can't open tun device")?;
    if nde.ifindex != 0 {
        ioc::set_ifindex(f.as_fd(), nde.ifindex).with_context(|| format!("Can't restore tun's index {} ({name})", nde.ifindex))?;
    }
    ioc::set_iff(f.as_fd(), name, t.flags).with_context(|| format!("Can't create tun device {name}"))?;
    if t.owner != -1 {
        ioc::set_owner(f.as_fd(), t.owner as u32).with_context(|| format!("Can't set owner of {name}"))?;
    }
    if t.group != -1 {
        ioc::set_group(f.as_fd(), t.group as u32).with_context(|| format!("Can't set group of {name}"))?;
    }
    ioc::set_sndbuf(f.as_fd(), t.sndbuf as i32).with_context(|| format!("Can't set sndbuf of {name}"))?;
    ioc::set_vnet_hdr_sz(f.as_fd(), t.vnethdr as i32).with_context(|| format!("Can't set vnethdr of {name}"))?;
    ioc::set_persist(f.as_fd(), true).with_context(|| format!("Can't make tun device {name} persistent"))?;
    drop(f);
    nl.set_link(base, &format!("Error restoring {name} link params"))
}
