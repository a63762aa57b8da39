//! Namespaces and kernel-object ids: the ids-PID.img record, the root ids
//! of inventory.img, and the time namespace's clocks (timens-0.img, and the
//! new time namespace a restore puts the tasks in).
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

/// The clocks of task `pid`'s time namespace now (timens-0.img): ours plus
/// its namespace's offsets (0 in the root one). A restore in a new time
/// namespace sets offsets so these clocks continue.
pub fn timens_entry(pid: i32) -> Result<TimensEntry> {
    let offsets = std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).unwrap_or_default();
    let shifted = |id: libc::clockid_t, name: &str| -> Result<Timespec> {
        let now = clock(id)?;
        let (sec, nsec) = offsets
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&name) || w.first() == Some(&id.to_string().as_str()))
            .and_then(|w| Some((w.get(1)?.parse::<i64>().ok()?, w.get(2)?.parse::<i64>().ok()?)))
            .unwrap_or((0, 0));
        let total = (now.tv_sec as i64 + sec) * 1_000_000_000 + now.tv_nsec as i64 + nsec;
        Ok(Timespec { tv_sec: (total / 1_000_000_000) as u64, tv_nsec: (total % 1_000_000_000) as u64 })
    };
    Ok(TimensEntry { monotonic: shifted(libc::CLOCK_MONOTONIC, "monotonic")?, boottime: shifted(libc::CLOCK_BOOTTIME, "boottime")? })
}

/// Put the tasks about to be restored into a new time namespace whose
/// CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from the values timens-0.img
/// holds (the dump's), as CRIU 4.2 does: absolute deadlines the tasks keep
/// (a thread in `clock_nanosleep(TIMER_ABSTIME)`) stay right, also after a
/// reboot or on another machine. Call before the first task is forked.
/// No image, or a kernel without time namespaces: nothing to do (logged).
pub fn enter_timens(dir: &crate::images::ImageDir) -> Result<()> {
    let name = crate::images::kind::kinds::timens().file_name(0);
    if !dir.exists(&name) {
        return Ok(());
    }
    let e: TimensEntry = crate::images::ImageReader::open_kind(dir, &name, crate::images::kind::kinds::timens())?.expect()?;
    if !crate::kerndat::has_timens() {
        tracing::warn!("no time namespaces here: the tasks' monotonic and boot-time clocks jump");
        return Ok(());
    }
    crate::sys::clone::unshare_time_ns().context("unshare(CLONE_NEWTIME)")?;
    let mut text = String::new();
    for (what, id, then) in [("monotonic", libc::CLOCK_MONOTONIC, &e.monotonic), ("boottime", libc::CLOCK_BOOTTIME, &e.boottime)] {
        let now = clock(id)?;
        let (sec, nsec) = offset(then, &now);
        tracing::info!("timens: {what} {sec} {nsec}");
        text.push_str(&format!("{id} {sec} {nsec}\n"));
    }
    std::fs::write("/proc/self/timens_offsets", text).context("writing /proc/self/timens_offsets")?;
    Ok(())
}

/// `then - now` as (seconds, nanoseconds in 0..1e9).
fn offset(then: &Timespec, now: &Timespec) -> (i64, i64) {
    let mut sec = then.tv_sec as i64 - now.tv_sec as i64;
    let mut nsec = then.tv_nsec as i64 - now.tv_nsec as i64;
    if nsec < 0 {
        nsec += 1_000_000_000;
        sec -= 1;
    }
    (sec, nsec)
}

#[cfg(test)]
mod timens_tests {
    use crate::images::pb::Timespec;

    #[test]
    fn offsets_borrow_a_second() {
        let t = |s, n| Timespec { tv_sec: s, tv_nsec: n };
        assert_eq!(super::offset(&t(2180, 100), &t(1744, 500)), (435, 999_999_600));
        assert_eq!(super::offset(&t(10, 0), &t(20, 0)), (-10, 0));
    }
}
