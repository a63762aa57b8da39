//! The images of the dumped tasks: everything collected of one live task
//! ([`Collected`]: a core-TID.img per thread, ids, mm, fs and fdinfo),
//! written at once ([`Collected::write`]); a zombie's core
//! ([`write_zombie`]); pstree.img with every task ([`write_pstree`]).

use anyhow::Result;

use crate::images::kind::kinds;
use crate::images::pb::{CoreEntry, FdinfoEntry, FsEntry, MmEntry, TaskKobjIdsEntry};
use crate::images::{ImageDir, ImageWriter, Kind};
use crate::task::freeze::Task;

/// Everything the dump collected of one live task, ready to be written.
pub struct Collected {
    pub pid: i32,
    /// The leader's core (with `tc`).
    pub core: CoreEntry,
    /// The other threads' (tid, core), by tid.
    pub threads: Vec<(i32, CoreEntry)>,
    pub ids: TaskKobjIdsEntry,
    pub mm: MmEntry,
    pub fs: FsEntry,
    pub fdinfo: Vec<FdinfoEntry>,
    /// Each thread's seccomp filters (leader first, then `threads`' order),
    /// until `seccomp::image` places them.
    pub seccomp: Vec<(i32, Vec<super::seccomp::Filter>)>,
}

/// Write one entry as image `name`.
pub fn write_one<M: prost::Message>(dir: &ImageDir, name: &str, kind: Kind<M>, m: &M) -> Result<()> {
    let mut w = ImageWriter::create(dir, name, kind)?;
    w.write(m)?;
    w.finish()?;
    Ok(())
}

impl Collected {
    /// This task's threads with their filters, leader first (for
    /// `seccomp::use_tsync` and `seccomp::image`).
    pub fn seccomp_threads(&mut self) -> Vec<super::seccomp::ThreadFilters<'_>> {
        let mut chains: std::collections::HashMap<i32, _> = std::mem::take(&mut self.seccomp).into_iter().collect();
        let mut out = vec![super::seccomp::ThreadFilters { tid: self.pid, chain: chains.remove(&self.pid).unwrap_or_default(), core: &mut self.core }];
        for (tid, core) in &mut self.threads {
            out.push(super::seccomp::ThreadFilters { tid: *tid, chain: chains.remove(tid).unwrap_or_default(), core });
        }
        out
    }

    /// core-TID.img of every thread, ids, mm, fs and the fd table.
    pub fn write(&self, dir: &ImageDir) -> Result<()> {
        let pid = self.pid as u64;
        write_one(dir, &kinds::core().file_name(pid), kinds::core(), &self.core)?;
        for (tid, core) in &self.threads {
            write_one(dir, &kinds::core().file_name(*tid as u64), kinds::core(), core)?;
        }
        write_one(dir, &kinds::ids().file_name(pid), kinds::ids(), &self.ids)?;
        write_one(dir, &kinds::mm().file_name(pid), kinds::mm(), &self.mm)?;
        write_one(dir, &kinds::fs().file_name(pid), kinds::fs(), &self.fs)?;
        let mut w = ImageWriter::create(dir, &kinds::fdinfo().file_name(u64::from(self.ids.files_id)), kinds::fdinfo())?;
        for e in &self.fdinfo {
            w.write(e)?;
        }
        w.finish()?;
        Ok(())
    }
}

/// A zombie's core-PID.img.
pub fn write_zombie(dir: &ImageDir, t: &Task) -> Result<()> {
    write_one(dir, &kinds::core().file_name(t.pid as u64), kinds::core(), &super::core::zombie_core(&t.stat))
}

/// pstree.img: every task in the tree's order, a live one with its
/// threads (the leader first).
pub fn write_pstree(dir: &ImageDir, tasks: &[Task], collected: &[Collected]) -> Result<()> {
    let mut w = ImageWriter::create(dir, "pstree.img", kinds::pstree())?;
    for t in tasks {
        let tids: Vec<i32> = match collected.iter().find(|c| c.pid == t.pid) {
            Some(c) => std::iter::once(t.pid).chain(c.threads.iter().map(|(t, _)| *t)).collect(),
            None => vec![t.pid],
        };
        w.write(&super::tree::entry(t.pid, t.ppid, t.stat.pgid, t.stat.sid, &tids))?;
    }
    w.finish()?;
    Ok(())
}
