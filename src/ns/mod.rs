//! Namespaces and kernel-object ids: the ids-PID.img record, the root ids
//! of inventory.img; `ids` CRIU's namespace numbering, `kind` the
//! namespace-kind interface and its table (what is carried, what is
//! refused), `uts` the UTS namespace (the IPC one is `crate::ipc`),
//! `timens` the time namespace (timens-ID.img, and the one a restore
//! makes). The network namespace is `crate::net::ns`.

pub mod ids;
pub mod kind;
pub mod timens;
pub mod uts;

use crate::images::pb::TaskKobjIdsEntry;

/// The id of criu's network namespace in our images.
pub const NET_NS_ID: u32 = NS_IDS.net;

/// The net namespace id the sockets being dumped get: criu's, or the
/// tree's own while `net::ns::DumpNetns` holds it.
static SOCK_NET_NS_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(NS_IDS.net);

/// The ns_id of a socket record of the dump (the tree's network namespace).
pub fn sock_net_ns_id() -> u32 {
    SOCK_NET_NS_ID.load(std::sync::atomic::Ordering::Relaxed)
}

/// The time_ns_id of a tree's own time namespace in this dump: after
/// the tree's own network namespace, when it has one (CRIU numbers the
/// root's namespaces in kind order, net before time).
pub fn own_time_ns_id() -> u32 {
    let t = *TREE_NS.lock().unwrap_or_else(|e| e.into_inner());
    if t.own(ids::Kind::Time) {
        return t.id(ids::Kind::Time);
    }
    if sock_net_ns_id() == NET_NS_ID { OWN_TIME_NS_ID } else { OWN_TIME_NS_ID + 1 }
}

/// The namespace ids of the tree being dumped (criu's outside a dump).
static TREE_NS: std::sync::Mutex<ids::TreeNs> = std::sync::Mutex::new(ids::TreeNs::criu());

/// Set by the dump once the tree is frozen (back to criu's at its end).
pub fn set_tree_ns(t: ids::TreeNs) {
    *TREE_NS.lock().unwrap_or_else(|e| e.into_inner()) = t;
}

/// The namespace ids of the tree being dumped.
pub fn tree_ns() -> ids::TreeNs {
    *TREE_NS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The id of the namespace of `kind` (its /proc name) a restore made the
/// root anew (uts, ipc: `kind::restore_kinds`), set before the root is
/// forked (its tasks inherit it).
static RESTORED_OWN: std::sync::Mutex<Vec<(&'static str, u32)>> = std::sync::Mutex::new(Vec::new());

pub fn set_restored_own(v: Vec<(&'static str, u32)>) {
    *RESTORED_OWN.lock().unwrap_or_else(|e| e.into_inner()) = v;
}

/// Whether `id` is the image's id of the tree's own namespace of `kind`
/// that this restore made (see [`set_restored_own`]).
pub fn is_restored_own(kind: &str, id: u32) -> bool {
    RESTORED_OWN.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|&(k, i)| k == kind && i == id)
}

/// Set by the dump of a tree with a network namespace of its own (and
/// back to criu's when it ends).
pub fn set_sock_net_ns_id(id: u32) {
    SOCK_NET_NS_ID.store(id, std::sync::atomic::Ordering::Relaxed);
}

/// The time_ns_id of a tree in criu's own time namespace.
pub const CRIU_TIME_NS_ID: u32 = NS_IDS.time;
/// ... and of a tree in one of its own: CRIU numbers the root's namespace
/// after criu's eight.
pub const OWN_TIME_NS_ID: u32 = NS_IDS.cgroup + 1;

/// Namespace ids, in the order CRIU numbers them.
const NS_IDS: NsIds = NsIds { pid: 1, net: 2, ipc: 3, uts: 4, time: 5, mnt: 6, user: 7, cgroup: 8 };

struct NsIds {
    pid: u32,
    net: u32,
    ipc: u32,
    uts: u32,
    time: u32,
    mnt: u32,
    user: u32,
    cgroup: u32,
}

/// The id our images give the tree's namespace of `kind` (its
/// /proc/PID/ns name), as CRIU numbers them; 0 for an unknown kind.
pub fn root_ns_id(kind: &str) -> u32 {
    match kind {
        "pid" => NS_IDS.pid,
        "net" => NS_IDS.net,
        "ipc" => NS_IDS.ipc,
        "uts" => NS_IDS.uts,
        "time" => NS_IDS.time,
        "mnt" => NS_IDS.mnt,
        "user" => NS_IDS.user,
        "cgroup" => NS_IDS.cgroup,
        _ => 0,
    }
}

fn ids(object_id: u32) -> TaskKobjIdsEntry {
    TaskKobjIdsEntry {
        vm_id: object_id,
        files_id: object_id,
        fs_id: object_id,
        sighand_id: object_id,
        pid_ns_id: Some(NS_IDS.pid),
        net_ns_id: Some(NS_IDS.net),
        ipc_ns_id: Some(NS_IDS.ipc),
        uts_ns_id: Some(NS_IDS.uts),
        mnt_ns_id: Some(NS_IDS.mnt),
        user_ns_id: Some(NS_IDS.user),
        cgroup_ns_id: Some(NS_IDS.cgroup),
        time_ns_id: Some(NS_IDS.time),
    }
}

/// The ids of the dump's root task (vm, files, fs, sighand are its own
/// objects; its files_id names fdinfo-N.img).
pub fn task_ids() -> TaskKobjIdsEntry {
    ids(2)
}

/// The ids of the `n`-th live task of a dump (0: the root), in pstree
/// order: each task has its own mm, fd table, fs and signal handlers, so
/// each kind counts on from the root's (criu's own are 1), as CRIU's
/// generators do. Its files_id names fdinfo-N.img.
pub fn task_ids_nth(n: u32) -> TaskKobjIdsEntry {
    ids(n + 2)
}

/// The root ids recorded in inventory.img (as CRIU 4.2 writes them).
pub fn root_ids() -> TaskKobjIdsEntry {
    ids(1)
}
