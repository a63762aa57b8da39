//! Namespaces and kernel-object ids: the ids-PID.img record, the root ids
//! of inventory.img, and the time namespace's clocks (timens-0.img).
//! Tasks in namespaces of their own are refused until namespace dump lands.

use anyhow::{Context, Result};

use crate::images::pb::{TaskKobjIdsEntry, Timespec, TimensEntry};

/// The id of the (only) network namespace in our images.
pub const NET_NS_ID: u32 = NS_IDS.net;

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

fn clock(id: libc::clockid_t) -> Result<Timespec> {
    let t = nix::time::clock_gettime(nix::time::ClockId::from_raw(id)).context("clock_gettime")?;
    Ok(Timespec { tv_sec: t.tv_sec() as u64, tv_nsec: t.tv_nsec() as u64 })
}

/// The time namespace's clocks now (timens-0.img): a restore in a new time
/// namespace sets offsets so these clocks continue.
pub fn timens_entry() -> Result<TimensEntry> {
    Ok(TimensEntry { monotonic: clock(libc::CLOCK_MONOTONIC)?, boottime: clock(libc::CLOCK_BOOTTIME)? })
}
