//! Namespace files (nsfs: an fd open on /proc/PID/ns/KIND): as CRIU 4.2
//! records them, a ns_file_entry with the namespace's id in the images,
//! its CLONE_NEW* flag and the open flags. Only a file of a namespace the
//! dumped task is in itself (criu's, or the tree's own net, uts, ipc or
//! time namespace) is carried; a
//! restore opens /proc/self/ns/KIND of the task that opens it, which is in
//! that namespace again. Others are refused by name.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use super::kind::{DumpCx, FdKind, FdProbe, OpenCx};
use crate::images::pb::{FdTypes, FileEntry, NsFileEntry};

/// The namespace-file kind (FD_TYPES NS).
pub struct NsFile;

/// Each namespace kind: its /proc/PID/ns name, CLONE_NEW* flag, and the
/// id our images give the tree's namespace of that kind.
type NsKind = (&'static str, u32, fn() -> u32);
const KINDS: &[NsKind] = &[
    ("net", libc::CLONE_NEWNET as u32, || crate::ns::root_ns_id("net")),
    ("uts", libc::CLONE_NEWUTS as u32, || crate::ns::root_ns_id("uts")),
    ("ipc", libc::CLONE_NEWIPC as u32, || crate::ns::root_ns_id("ipc")),
    ("mnt", libc::CLONE_NEWNS as u32, || crate::ns::root_ns_id("mnt")),
    ("pid", libc::CLONE_NEWPID as u32, || crate::ns::root_ns_id("pid")),
    ("user", libc::CLONE_NEWUSER as u32, || crate::ns::root_ns_id("user")),
    ("cgroup", libc::CLONE_NEWCGROUP as u32, || crate::ns::root_ns_id("cgroup")),
    ("time", libc::CLONE_NEWTIME as u32, || crate::ns::root_ns_id("time")),
];

/// (kind, inode) of an nsfs link (`net:[4026531840]`).
fn parse(link: &str) -> Option<(&str, u64)> {
    let (kind, rest) = link.split_once(":[")?;
    let ino = rest.strip_suffix(']')?.parse().ok()?;
    KINDS.iter().any(|(k, ..)| *k == kind).then_some((kind, ino))
}

impl FdKind for NsFile {
    fn name(&self) -> &'static str {
        "namespace file"
    }

    fn fd_type(&self) -> FdTypes {
        FdTypes::Ns
    }

    fn claims(&self, p: &FdProbe) -> bool {
        p.md.file_type().is_file() && parse(p.link).is_some()
    }

    fn dump(&self, p: &mut FdProbe, id: u32, _cx: &mut DumpCx) -> Result<FileEntry> {
        let (kind, ino) = parse(p.link).with_context(|| format!("{}: {} is no namespace file", p.who(), p.link))?;
        let (_, cflag, ns_id) = KINDS.iter().find(|(k, ..)| *k == kind).copied().context("namespace kind")?;
        // The task's own namespace of that kind (and so the tree's):
        // for a pid file, the one its children go to counts too.
        let own = |name: &str| std::fs::metadata(format!("/proc/{}/ns/{name}", p.pid)).map(|m| m.ino()).ok();
        // (criu's thread is in the tree's network namespace during the
        // dump of a tree that has its own: `net::ns`.)
        let ours = std::fs::metadata(format!("/proc/thread-self/ns/{kind}")).map(|m| m.ino()).ok();
        let alt = match kind {
            "pid" => own("pid_for_children"),
            "time" => own("time_for_children"),
            _ => None,
        };
        let task_own = own(kind) == Some(ino) || alt == Some(ino);
        // The tree may be in a time namespace of its own (a restored one):
        // the dump records it as such (timens), and so its file.
        let ns_id = match kind {
            "time" if task_own && ours != Some(ino) => crate::ns::own_time_ns_id(),
            "net" if task_own && ours == Some(ino) => crate::ns::sock_net_ns_id(),
            _ if task_own && ours == Some(ino) => ns_id(),
            // The tree's own uts or ipc namespace (every task is in it).
            "uts" | "ipc" if task_own && crate::ns::ids::Kind::of_proc_name(kind).is_some_and(|k| crate::ns::tree_ns().own(k)) => {
                crate::ns::ids::Kind::of_proc_name(kind).map_or(0, |k| crate::ns::tree_ns().id(k))
            }
            _ => bail!(
                "{} is open on {}, a namespace other than the dumped tree's: namespace files of other namespaces are not supported yet",
                p.who(),
                p.link
            ),
        };
        let e = NsFileEntry { id, ns_id, ns_cflag: cflag, flags: p.flags };
        Ok(FileEntry { r#type: FdTypes::Ns as i32, id, nsf: Some(e), ..Default::default() })
    }

    fn open(&self, fe: &FileEntry, fd: u32, _cx: &mut OpenCx) -> Result<Option<OwnedFd>> {
        let e = fe.nsf.as_ref().with_context(|| format!("file {} has no namespace file entry", fe.id))?;
        let (kind, _, ns_id) = KINDS
            .iter()
            .find(|(_, c, _)| *c == e.ns_cflag)
            .copied()
            .with_context(|| format!("fd {fd}: namespace file {} has an unknown namespace flag {:#x}", fe.id, e.ns_cflag))?;
        // (The tree's own time namespace is 9, or 10 after its own network one.)
        // (The tree's own time namespace comes after criu's eight ids.)
        let tree_time = kind == "time" && e.ns_id >= crate::ns::OWN_TIME_NS_ID;
        let tree_net = kind == "net" && e.ns_id == crate::net::ns::OWN_NET_NS_ID;
        let tree_other = crate::ns::is_restored_own(kind, e.ns_id);
        if e.ns_id != ns_id() && !tree_time && !tree_net && !tree_other {
            bail!("fd {fd}: namespace file {} is of {kind} namespace {}, not the tree's: restoring namespaces is not supported yet", fe.id, e.ns_id);
        }
        use std::os::unix::fs::OpenOptionsExt;
        let flags = e.flags as i32 & !super::restore::OPEN_ONLY & !libc::O_ACCMODE;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(format!("/proc/self/ns/{kind}"))
            .with_context(|| format!("opening /proc/self/ns/{kind} for fd {fd}"))?;
        Ok(Some(f.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn links_parse() {
        assert_eq!(super::parse("net:[4026531840]"), Some(("net", 4026531840)));
        assert_eq!(super::parse("mnt:[1]"), Some(("mnt", 1)));
        assert_eq!(super::parse("pipe:[1]"), None);
        assert_eq!(super::parse("/proc/1/ns/net"), None);
    }

    #[test]
    fn round_trip() {
        let net = std::fs::File::open("/proc/self/ns/net").unwrap();
        let uts = std::fs::File::open("/proc/self/ns/uts").unwrap();
        let (before, back, after) = super::super::round_trip::run(&[net.as_raw_fd(), uts.as_raw_fd()]);
        for (b, a) in before.entries.iter().zip(&after.entries) {
            assert_eq!(b.nsf, a.nsf.map(|mut n| {
                n.id = b.id;
                n
            }));
        }
        assert_eq!(before.entries[0].nsf.unwrap().ns_cflag, libc::CLONE_NEWNET as u32);
        let ino = |f: &std::os::fd::OwnedFd| std::fs::metadata(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap().ino();
        assert_eq!(ino(&back[0]), net.metadata().unwrap().ino());
        assert_eq!(ino(&back[1]), uts.metadata().unwrap().ino());
    }
}
