//! Parsers for the /proc files a dump reads from outside the task: stat,
//! status, limits, smaps, fdinfo, auxv. Pure text parsing over `&str` so
//! each parser is unit-tested on fixed text; the readers add the pid and
//! path to every error.

pub mod fdinfo;
pub mod limits;
pub mod maps;
pub mod stat;
pub mod status;

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `/proc/PID/WHAT`.
pub fn path(pid: i32, what: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{what}"))
}

/// Read `/proc/PID/WHAT` as text.
pub fn read(pid: i32, what: &str) -> Result<String> {
    let p = path(pid, what);
    std::fs::read_to_string(&p).with_context(|| format!("can't read {}", p.display()))
}

/// `/proc/PID/mem`, opened for reading (the one place the dump opens a
/// task's memory).
pub fn mem(pid: i32) -> Result<std::fs::File> {
    std::fs::File::open(path(pid, "mem")).with_context(|| format!("can't open memory of {pid}"))
}

/// Read `/proc/PID/WHAT` as bytes.
pub fn read_bytes(pid: i32, what: &str) -> Result<Vec<u8>> {
    let p = path(pid, what);
    std::fs::read(&p).with_context(|| format!("can't read {}", p.display()))
}

/// The saved auxiliary vector, as u64 words (pairs of type, value).
pub fn auxv(pid: i32) -> Result<Vec<u64>> {
    let b = read_bytes(pid, "auxv")?;
    Ok(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
}

/// The numeric entries of /proc/PID/WHAT (threads, fds), sorted.
fn numeric_entries(pid: i32, what: &str) -> Result<Vec<i32>> {
    let p = path(pid, what);
    let mut v: Vec<i32> = std::fs::read_dir(&p)
        .with_context(|| format!("can't list {}", p.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Thread ids of a task, sorted.
pub fn threads(pid: i32) -> Result<Vec<i32>> {
    numeric_entries(pid, "task")
}

/// Open fd numbers of a task, sorted.
pub fn fds(pid: i32) -> Result<Vec<i32>> {
    numeric_entries(pid, "fd")
}
