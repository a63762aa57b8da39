//! A task's mm both ways: the dump writes its memory (pagemap and pages,
//! shared memory once per object) and builds its `MmEntry` ([`Dumper`],
//! [`mm_entry`]); the restore builds the one [`MmMap`] (PR_SET_MM_MAP's
//! fields) from it ([`mm_map`]).

use std::time::Instant;

use anyhow::{Context, Result};
use tracing::debug;

use super::pages::{self, MemStats, Run};
use super::vma::{self, guard_entry, Vma};
use crate::files::FileTable;
use crate::images::pb::MmEntry;
use crate::images::ImageDir;
use crate::proc::stat::Stat;
use crate::restorer::plan::MmMap;
use crate::task::remote::ParasiteReport;

/// The memory dump of a tree: page file numbers, shared memory objects
/// already written, and the counters for stats-dump.
#[derive(Default)]
pub struct Dumper {
    pub next_pages_id: u32,
    pub shmem_done: Vec<u64>,
    pub stats: MemStats,
}

impl Dumper {
    pub fn new() -> Dumper {
        Dumper { next_pages_id: 1, ..Default::default() }
    }

    /// Dump the memory of frozen task `pid` (its VMAs' files added to
    /// `files`) and return its mm entry.
    pub fn dump(&mut self, pid: i32, stat: &Stat, report: &ParasiteReport, files: &mut FileTable, dir: &ImageDir, allow_uprobes: bool) -> Result<MmEntry> {
        let exe_id = vma::exe_file_id(pid, files)?;
        let maps = crate::proc::maps::read(pid)?;
        let vmas = vma::collect(pid, &maps, files, allow_uprobes)?;
        let t_mem = Instant::now();
        let pages_id = self.next_pages_id;
        let (mut mem_stats, guards) =
            pages::dump_private(pid, &vmas, dir, pages_id).with_context(|| format!("dumping memory of {pid}"))?;
        let (next, shpages) = pages::dump_shmem(pid, &vmas, dir, pages_id + 1, &mut self.shmem_done)
            .with_context(|| format!("dumping shared memory of {pid}"))?;
        self.next_pages_id = next;
        mem_stats.shpages_written = shpages;
        mem_stats.memdump_us = t_mem.elapsed().as_micros() as u64;
        debug!("memory of {pid}: {} pages, {shpages} shared, in {:?}", mem_stats.pages_written, t_mem.elapsed());
        let st = &mut self.stats;
        st.pages_scanned += mem_stats.pages_scanned;
        st.pages_written += mem_stats.pages_written;
        st.shpages_written += mem_stats.shpages_written;
        st.memdump_us += mem_stats.memdump_us;
        st.memwrite_us += mem_stats.memwrite_us;
        let mut mm = mm_entry(stat, report.brk, crate::proc::auxv(pid)?, exe_id, &vmas, &guards, report.dumpable);
        mm.thp_disabled = Some(crate::task::settings::thp_disabled(pid, report.thp_disabled)?);
        mm.aios = super::aio::entries(&vmas)?;
        Ok(mm)
    }

    /// Once every task is recorded: the contents of the memfds that only
    /// fds hold (a mapped one's went with the memory of a task mapping it).
    pub fn dump_memfds(&mut self, files: &FileTable, dir: &ImageDir) -> Result<()> {
        let pages = files.memfds.dump_contents(dir, &mut self.next_pages_id, &mut self.shmem_done)?;
        self.stats.shpages_written += pages;
        Ok(())
    }
}


/// How many auxv words an mm image holds at most: CRIU 4.2 reads
/// /proc/PID/auxv into a buffer of this many words (its AT_VECTOR_SIZE),
/// keeps what fits, and its restore refuses an image holding more.
pub const AUXV_WORDS: usize = 44;

/// The mm_entry of a task: its boundaries from /proc/PID/stat, its current
/// brk (asked of the task), auxv (cut to [`AUXV_WORDS`] as CRIU does), exe file id and VMAs.
/// Guard regions (`guards`) follow the VMAs as VMA_AREA_GUARD entries.
pub fn mm_entry(
    stat: &Stat,
    brk: u64,
    auxv: Vec<u64>,
    exe_file_id: u32,
    vmas: &[Vma],
    guards: &[Run],
    dumpable: i32,
) -> MmEntry {
    MmEntry {
        mm_start_code: stat.start_code,
        mm_end_code: stat.end_code,
        mm_start_data: stat.start_data,
        mm_end_data: stat.end_data,
        mm_start_stack: stat.start_stack,
        mm_start_brk: stat.start_brk,
        mm_brk: brk,
        mm_arg_start: stat.arg_start,
        mm_arg_end: stat.arg_end,
        mm_env_start: stat.env_start,
        mm_env_end: stat.env_end,
        exe_file_id,
        mm_saved_auxv: auxv.into_iter().take(AUXV_WORDS).collect(),
        vmas: vmas
            .iter()
            .map(|v| v.entry)
            .chain(guards.iter().map(|g| guard_entry(g.start, g.end)))
            .collect(),
        dumpable: Some(dumpable),
        aios: Vec::new(),
        thp_disabled: Some(false),
    }
}

/// PR_SET_MM_MAP's fields for the task of `mm`.
pub fn mm_map(mm: &MmEntry) -> MmMap {
    MmMap {
        map: crate::restorer::proto::MmMap {
            start_code: mm.mm_start_code,
            end_code: mm.mm_end_code,
            start_data: mm.mm_start_data,
            end_data: mm.mm_end_data,
            start_brk: mm.mm_start_brk,
            brk: mm.mm_brk,
            start_stack: mm.mm_start_stack,
            arg_start: mm.mm_arg_start,
            arg_end: mm.mm_arg_end,
            env_start: mm.mm_env_start,
            env_end: mm.mm_env_end,
        },
        auxv: mm.mm_saved_auxv.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mm_round_trips() {
        let stat = Stat {
            start_code: 0x40_0000,
            end_code: 0x40_1000,
            start_data: 0x60_0000,
            end_data: 0x60_1000,
            start_brk: 0x70_0000,
            start_stack: 0x7ffe_0000,
            arg_start: 0x7ffe_1000,
            arg_end: 0x7ffe_1010,
            env_start: 0x7ffe_1010,
            env_end: 0x7ffe_1100,
            ..Default::default()
        };
        let auxv: Vec<u64> = (1..=60).collect();
        let mm = mm_entry(&stat, 0x71_0000, auxv.clone(), 5, &[], &[], 1);
        assert_eq!((mm.exe_file_id, mm.dumpable), (5, Some(1)));
        let m = mm_map(&mm);
        let want = crate::restorer::proto::MmMap {
            start_code: stat.start_code,
            end_code: stat.end_code,
            start_data: stat.start_data,
            end_data: stat.end_data,
            start_brk: stat.start_brk,
            brk: 0x71_0000,
            start_stack: stat.start_stack,
            arg_start: stat.arg_start,
            arg_end: stat.arg_end,
            env_start: stat.env_start,
            env_end: stat.env_end,
        };
        assert_eq!(m.map, want);
        assert_eq!(m.auxv, auxv[..AUXV_WORDS]);
    }
}
