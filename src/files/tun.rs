//! tun/tap files (/dev/net/tun, FD_TYPES TUNF), as CRIU 4.2 records them:
//! the path's reg record under the file's own id, then the tunfile_entry
//! (the device it is attached to, a detached queue, the network namespace
//! id) under the same id in files.img. The device itself is a link of the
//! tree's network namespace (`net::ns::tun`): the dump keeps, per device,
//! what only an attached file tells (vnet header size, send buffer) in
//! [`Attached`] for the link's record.
//!
//! Restore: the reg record is opened again (in the task, so the file is of
//! the task's namespace), attached to its device with the link's flags
//! from netdev-ID.img, its send buffer the device's (a file attached
//! later would keep its own), its queue detached when it was, and the device's
//! persistence dropped when it had none (the link was made persistent to
//! outlive its making).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, Images, OpenCx};
use crate::images::kind::kinds;
use crate::images::pb::{FdTypes, FileEntry, RegFileEntry, TunfileEntry};
use crate::images::{ImageDir, ImageReader};
use crate::sys::tun as ioc;

/// The tun kind.
pub struct Tun;

/// The char device of /dev/net/tun (misc 10, minor 200).
fn is_tun_dev(rdev: u64) -> bool {
    nix::sys::stat::major(rdev) == 10 && nix::sys::stat::minor(rdev) == 200
}

/// What a dump learnt of a device through a file attached to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkParams {
    pub vnethdr: u32,
    pub sndbuf: u32,
}

/// Per device name, the parameters read through the first attached file.
#[derive(Default, Debug)]
pub struct Attached(pub HashMap<String, LinkParams>);

/// Read the parameters of the device `name` through `fd`, attached to it
/// with `flags` (TUNGETIFF's): a tap with a socket filter is refused (the
/// filter lives in the task's memory; CRIU refuses it too).
pub fn link_params(fd: std::os::fd::BorrowedFd<'_>, name: &str, flags: u32) -> Result<LinkParams> {
    let vnethdr = ioc::vnet_hdr_sz(fd).with_context(|| format!("Can't dump vnethdr size for {name}"))? as u32;
    let sndbuf = ioc::sndbuf(fd).with_context(|| format!("Can't dump sndbuf for {name}"))? as u32;
    if flags & libc::IFF_TAP as u32 != 0 {
        let len = ioc::filter_len(fd).with_context(|| format!("Can't get tun filter for {name}"))?;
        if len != 0 {
            bail!("tap device {name} has a socket filter of {len} instruction(s): not carried");
        }
    } else if flags & libc::IFF_NOFILTER as u32 == 0 {
        bail!("tun device {name} has a socket filter: not carried");
    }
    Ok(LinkParams { vnethdr, sndbuf })
}

/// The reg records behind the tun files of the images (same ids), and
/// the tun flags of each device (namespace id, name) of netdev-ID.img.
#[derive(Default, Debug)]
struct Loaded {
    regs: HashMap<u32, RegFileEntry>,
    /// The device's tun flags and send buffer.
    flags: HashMap<(u32, String), (u32, u32)>,
}

impl FdKind for Tun {
    fn name(&self) -> &'static str {
        "tun file"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Tunf
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_char_device() && is_tun_dev(p.md.rdev()) && p.flags & libc::O_PATH as u32 == 0
    }

    fn dump(&self, p: &mut FdProbe, id: u32, cx: &mut DumpCx) -> Result<FileEntry> {
        let ns_id = crate::ns::sock_net_ns_id();
        if ns_id == crate::ns::NET_NS_ID {
            bail!("{} is a tun file ({}): tun devices are carried only in a network namespace of the tree's own", p.who(), p.link);
        }
        let f = std::fs::File::from(p.dup()?);
        crate::net::ns::check_socket_netns(f.as_fd(), &format!("tun file {} of task {}", p.fd, p.pid))?;
        let reg = cx.files.reg_entry(id, p.link, &f, p.flags, 0).with_context(|| format!("{} is a tun file", p.who()))?;
        cx.files.push_reg(reg);
        let mut tfe = TunfileEntry { id, netdev: None, detached: None, ns_id: Some(ns_id) };
        match ioc::get_iff(f.as_fd()) {
            Err(nix::errno::Errno::EBADFD) => {}
            Err(e) => bail!("Can't dump tun-file device of {}: {e}", p.who()),
            Ok((name, flags)) => {
                tracing::info!("`- attached to device {name} (flags {flags:x})");
                if flags & libc::IFF_DETACH_QUEUE as u32 != 0 {
                    tfe.detached = Some(true);
                }
                let seen = &mut cx.fds.state.get_mut::<Attached>().0;
                if !seen.contains_key(&name) {
                    let lp = link_params(f.as_fd(), &name, flags).with_context(|| p.who())?;
                    seen.insert(name.clone(), lp);
                }
                tfe.netdev = Some(name);
            }
        }
        Ok(FileEntry { r#type: FdTypes::Tunf as i32, id, tunf: Some(tfe), ..Default::default() })
    }

    fn load_images(&self, dir: &ImageDir, imgs: &mut Images) -> Result<()> {
        let tuns: Vec<&TunfileEntry> = imgs.entries.values().filter_map(|e| e.tunf.as_ref()).collect();
        if tuns.is_empty() {
            return Ok(());
        }
        let mut l = Loaded::default();
        // The reg record shares the tun file's id (the later record won
        // the id in the table).
        for e in ImageReader::open_kind(dir, "files.img", kinds::files())?.all()? {
            if let Some(r) = e.reg.filter(|_| tuns.iter().any(|t| t.id == e.id)) {
                l.regs.insert(e.id, r);
            }
        }
        let mut nss: Vec<u32> = tuns.iter().filter(|t| t.netdev.is_some()).map(|t| t.ns_id.unwrap_or(crate::net::ns::OWN_NET_NS_ID)).collect();
        nss.dedup();
        for ns in nss {
            let name = kinds::netdev().file_name(u64::from(ns));
            if !dir.exists(&name) {
                continue;
            }
            for nde in ImageReader::open_kind(dir, &name, kinds::netdev())?.all()? {
                if let Some(t) = &nde.tun {
                    l.flags.insert((ns, nde.name.clone()), (t.flags, t.sndbuf));
                }
            }
        }
        *imgs.state.get_mut::<Loaded>() = l;
        Ok(())
    }

    fn open(&self, fe: &FileEntry, fd: u32, cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let t = fe.tunf.as_ref().with_context(|| format!("file {} has no tunfile entry", fe.id))?;
        let l = cx.images.state.get::<Loaded>().context("the tun files' images were not read")?;
        let reg = l.regs.get(&t.id).with_context(|| format!("fd {fd}: tun file {:#x} has no reg record in files.img", t.id))?;
        let f = super::reg::reopen(reg).with_context(|| format!("fd {fd}: tun file {:#x}", t.id))?;
        let Some(dev) = &t.netdev else { return Ok(Some(f.into())) };
        let ns = t.ns_id.unwrap_or(crate::net::ns::OWN_NET_NS_ID);
        let (flags, sndbuf) = *l.flags.get(&(ns, dev.clone())).with_context(|| format!("No tun device {dev} for tun file {:#x} (fd {fd}) in netdev-{ns}.img", t.id))?;
        ioc::set_iff(f.as_fd(), dev, flags).with_context(|| format!("Can't attach tun file {:#x} (fd {fd}) to device {dev}", t.id))?;
        // A file attached later keeps its own send buffer: the device's
        // (which every file of it had) is set again.
        ioc::set_sndbuf(f.as_fd(), sndbuf as i32).with_context(|| format!("Can't set the sndbuf of tun file {:#x} ({dev})", t.id))?;
        if t.detached == Some(true) {
            ioc::detach_queue(f.as_fd()).with_context(|| format!("Can't detach the queue of tun file {:#x} from {dev}", t.id))?;
        }
        if flags & libc::IFF_PERSIST as u32 == 0 {
            tracing::info!("Dropping persistency for {dev}");
            ioc::set_persist(f.as_fd(), false).with_context(|| format!("Error dropping persistency of {dev}"))?;
        }
        Ok(Some(f.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};

    use super::*;

    /// In a helper thread's own network namespace: a tun file attached to
    /// a device tells its name, flags and settings; outside a tree with a
    /// network namespace of its own, the dump refuses it by fd.
    #[test]
    fn attached_file_and_refusal() {
        let Ok(f) = <std::fs::File as OpenOptionsExt>::open_rw("/dev/net/tun") else {
            eprintln!("skipped: no /dev/net/tun here");
            return;
        };
        drop(f);
        let r = std::thread::spawn(|| {
            if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
                eprintln!("skipped: unshare(CLONE_NEWNET): {e}");
                return None;
            }
            let f = <std::fs::File as OpenOptionsExt>::open_rw("/dev/net/tun").unwrap();
            assert_eq!(ioc::get_iff(f.as_fd()), Err(nix::errno::Errno::EBADFD), "not attached yet");
            ioc::set_iff(f.as_fd(), "zq0", (libc::IFF_TUN | libc::IFF_NO_PI) as u32).unwrap();
            ioc::set_sndbuf(f.as_fd(), 65536).unwrap();
            ioc::set_vnet_hdr_sz(f.as_fd(), 12).unwrap();
            let (name, flags) = ioc::get_iff(f.as_fd()).unwrap();
            let lp = link_params(f.as_fd(), &name, flags).unwrap();
            let me = std::process::id() as i32;
            let stat = crate::proc::stat::read(me).unwrap();
            let (mut out, mut files) = (super::super::fds::Fds::default(), super::super::FileTable::new());
            let err = super::super::fds::dump_fds(me, &[f.as_raw_fd()], &mut out, &mut files, &stat, false).unwrap_err();
            Some((name, flags, lp, format!("{err:#}"), f.as_raw_fd()))
        })
        .join()
        .unwrap();
        let Some((name, flags, lp, err, fd)) = r else { return };
        assert_eq!(name, "zq0");
        assert_eq!(flags & 0x0fff, libc::IFF_TUN as u32, "a tun, not persistent (IFF_NO_PI shares IFF_NOFILTER's bit)");
        assert_eq!(lp, LinkParams { vnethdr: 12, sndbuf: 65536 });
        assert!(err.contains(&format!("fd {fd}")) && err.contains("tun"), "{err}");
    }

    trait OpenOptionsExt {
        fn open_rw(p: &str) -> std::io::Result<std::fs::File>;
    }

    impl OpenOptionsExt for std::fs::File {
        fn open_rw(p: &str) -> std::io::Result<std::fs::File> {
            std::fs::OpenOptions::new().read(true).write(true).open(p)
        }
    }
}
