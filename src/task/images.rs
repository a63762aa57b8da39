//! The images of one live task both ways ([`TaskImages`]: a core-TID.img
//! per thread, ids, mm, fs and fdinfo; written by the dump at once, read
//! back by the restore); a zombie's core ([`write_zombie`]); pstree.img
//! with every task ([`write_pstree`]).

use anyhow::Result;

use crate::images::kind::kinds;
use crate::images::pb::{CoreEntry, FdinfoEntry, FsEntry, MmEntry, TaskKobjIdsEntry};
use crate::images::{ImageDir, ImageReader, ImageWriter, Kind};
use crate::task::freeze::Task;

/// The images of one live task: what the dump collected, ready to be
/// written, or what a restore read back.
pub struct TaskImages {
    pub pid: i32,
    /// The leader's core (with `tc`).
    pub core: CoreEntry,
    /// The other threads' (tid, core), by tid.
    pub threads: Vec<(i32, CoreEntry)>,
    pub ids: TaskKobjIdsEntry,
    pub mm: MmEntry,
    pub fs: FsEntry,
    pub fdinfo: Vec<FdinfoEntry>,
}

/// Write one entry as image `name`.
pub fn write_one<M: prost::Message>(dir: &ImageDir, name: &str, kind: Kind<M>, m: &M) -> Result<()> {
    let mut w = ImageWriter::create(dir, name, kind)?;
    w.write(m)?;
    w.finish()?;
    Ok(())
}

/// Read one entry, image `name`'s only one.
pub fn read_one<M: prost::Message + Default>(dir: &ImageDir, name: &str, kind: Kind<M>) -> Result<M> {
    Ok(ImageReader::open_kind(dir, name, kind)?.expect()?)
}

impl TaskImages {
    /// Read the images of task `pid`, whose leader's core is `core` and
    /// whose other threads are `tids` (as pstree.img lists them).
    pub fn read(dir: &ImageDir, pid: i32, tids: &[i32], core: CoreEntry) -> Result<TaskImages> {
        let mut threads = Vec::with_capacity(tids.len());
        for &tid in tids {
            threads.push((tid, read_one(dir, &kinds::core().file_name(tid as u64), kinds::core())?));
        }
        let id = pid as u64;
        let ids = read_one(dir, &kinds::ids().file_name(id), kinds::ids())?;
        let mm_name = kinds::mm().file_name(id);
        let mm = read_one(dir, &mm_name, kinds::mm())?;
        crate::mem::vma::validate(&mm.vmas, &mm_name)?;
        super::core::check_rlimits(&core, pid)?;
        let fs = read_one(dir, &kinds::fs().file_name(id), kinds::fs())?;
        let fdinfo = ImageReader::open_kind(dir, &kinds::fdinfo().file_name(u64::from(ids.files_id)), kinds::fdinfo())?.all()?;
        Ok(TaskImages { pid, core, threads, ids, mm, fs, fdinfo })
    }

    /// core-TID.img of every thread, ids, mm, fs and (`with_table`: not
    /// written already for a task sharing it) the fd table.
    pub fn write(&self, dir: &ImageDir, with_table: bool) -> Result<()> {
        let pid = self.pid as u64;
        write_one(dir, &kinds::core().file_name(pid), kinds::core(), &self.core)?;
        for (tid, core) in &self.threads {
            write_one(dir, &kinds::core().file_name(*tid as u64), kinds::core(), core)?;
        }
        write_one(dir, &kinds::ids().file_name(pid), kinds::ids(), &self.ids)?;
        write_one(dir, &kinds::mm().file_name(pid), kinds::mm(), &self.mm)?;
        write_one(dir, &kinds::fs().file_name(pid), kinds::fs(), &self.fs)?;
        if !with_table {
            return Ok(());
        }
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
pub fn write_pstree(dir: &ImageDir, tasks: &[Task], collected: &[TaskImages]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::pb::FdinfoEntry;

    #[test]
    fn task_images_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ImageDir::open(tmp.path()).unwrap();
        let core = |n: u32| CoreEntry { mtype: 1, ..Default::default() }.tap(n);
        let t = TaskImages {
            pid: 41,
            core: core(1),
            threads: vec![(42, core(2)), (43, core(3))],
            ids: TaskKobjIdsEntry { files_id: 7, ..Default::default() },
            mm: MmEntry { mm_brk: 0x1000, ..Default::default() },
            fs: FsEntry { cwd_id: 3, root_id: 4, umask: Some(0o22) },
            fdinfo: vec![FdinfoEntry { id: 1, fd: 0, ..Default::default() }, FdinfoEntry { id: 2, fd: 9, ..Default::default() }],
        };
        t.write(&dir, true).unwrap();
        let back = TaskImages::read(&dir, 41, &[42, 43], t.core.clone()).unwrap();
        assert_eq!((back.threads, back.ids, back.mm, back.fs, back.fdinfo), (t.threads, t.ids, t.mm, t.fs, t.fdinfo));
    }

    trait Tap {
        fn tap(self, n: u32) -> Self;
    }
    impl Tap for CoreEntry {
        /// A core told apart by its task-core exit code.
        fn tap(mut self, n: u32) -> Self {
            self.tc = Some(crate::images::pb::TaskCoreEntry { exit_code: n, ..Default::default() });
            self
        }
    }
}
