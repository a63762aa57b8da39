//! Dump statistics (CRIU's stats.c): stats-dump.img with the freezing,
//! frozen and memory times and page counters, and `--display-stats`.

use anyhow::Result;

use crate::images::kind::kinds;
use crate::images::pb::{DumpStatsEntry, StatsEntry};
use crate::images::{ImageDir, ImageWriter};
use crate::mem::pages::MemStats;

/// stats-dump.img (and with `--display-stats` the same numbers in the log).
pub fn write_dump(dir: &ImageDir, freezing_us: u64, frozen_us: u64, c: &MemStats, display: bool) -> Result<()> {
    let d = DumpStatsEntry {
        freezing_time: freezing_us as u32,
        frozen_time: frozen_us as u32,
        memdump_time: c.memdump_us as u32,
        memwrite_time: c.memwrite_us as u32,
        pages_scanned: c.pages_scanned,
        pages_skipped_parent: 0,
        pages_written: c.pages_written,
        irmap_resolve: Some(0),
        // Pages left for a lazy-pages daemon (none: every page is written).
        pages_lazy: 0,
        page_pipes: Some(0),
        page_pipe_bufs: Some(0),
        shpages_scanned: Some(c.shpages_written),
        shpages_skipped_parent: Some(0),
        shpages_written: Some(c.shpages_written),
    };
    if display {
        crate::log::msg(&display_stats(&d));
    }
    let stats = StatsEntry { dump: Some(d), restore: None };
    let mut w = ImageWriter::create(dir, &kinds::stats().file_name_str("dump"), kinds::stats())?;
    w.write(&stats)?;
    w.finish()?;
    Ok(())
}

/// `--display-stats`, as CRIU prints it.
fn display_stats(d: &DumpStatsEntry) -> String {
    let n = |v: u64| format!("{v} ({v:#x})");
    format!(
        "Displaying dump stats:\nFreezing time: {} us\nFrozen time: {} us\nMemory dump time: {} us\n\
         Memory write time: {} us\nMemory pages scanned: {}\nMemory pages skipped from parent dump: {}\n\
         Memory pages written: {}\nLazy memory pages: {}",
        d.freezing_time,
        d.frozen_time,
        d.memdump_time,
        d.memwrite_time,
        n(d.pages_scanned),
        n(d.pages_skipped_parent),
        n(d.pages_written),
        n(d.pages_lazy)
    )
}
