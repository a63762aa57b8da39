//! Task memory: VMAs (`vma`), the page dump (`pages`), memfd objects
//! (`memfd`), shared memory contents at restore (`shmem`), the restore's
//! premap (`premap`), the copy-on-write sharing children take from their
//! parent's premap (`inherit`) and vDSO decision (`vdso`), and the
//! mm_entry that ties them to the task's mm boundaries.

pub mod inherit;
pub mod memfd;
pub mod pages;
pub mod premap;
pub mod shmem;
pub mod vdso;
pub mod vma;

use crate::images::pb::MmEntry;
use crate::proc::stat::Stat;

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
    vmas: &[vma::Vma],
    guards: &[pages::Run],
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
            .chain(guards.iter().map(|g| vma::guard_entry(g.start, g.end)))
            .collect(),
        dumpable: Some(dumpable),
        aios: Vec::new(),
        thp_disabled: Some(false),
    }
}
