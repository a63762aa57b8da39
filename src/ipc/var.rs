//! ipcns-var-ID.img: the ipc namespace's sysctls (SysV limits, POSIX
//! mqueue limits, the *_next_id counters when set).

use anyhow::{Context, Result};

use crate::images::kind::kinds;
use crate::images::pb::IpcVarEntry;
use crate::images::{ImageDir, ImageReader, ImageWriter};

fn path(name: &str) -> String {
    format!("/proc/sys/{name}")
}

fn read_str(name: &str) -> Result<String> {
    let p = path(name);
    std::fs::read_to_string(&p).with_context(|| format!("can't read {p}"))
}

fn read_u64(name: &str) -> Result<u64> {
    let s = read_str(name)?;
    s.trim().parse().with_context(|| format!("{}: not a number: {s:?}", path(name)))
}

fn read_u32(name: &str) -> Result<u32> {
    Ok(read_u64(name)? as u32)
}

/// A *_next_id sysctl, None when unset (-1).
fn read_next(name: &str) -> Result<Option<u32>> {
    let s = read_str(name)?;
    let v: i64 = s.trim().parse().with_context(|| format!("{}: not a number: {s:?}", path(name)))?;
    Ok((v >= 0).then_some(v as u32))
}

fn write(name: &str, v: impl std::fmt::Display) -> Result<()> {
    let p = path(name);
    std::fs::write(&p, v.to_string()).with_context(|| format!("can't write {v} to {p}"))
}

/// The sysctls of the ipc namespace the calling thread is in.
pub fn read() -> Result<IpcVarEntry> {
    let sem = read_str("kernel/sem")?;
    let sem_ctls = sem.split_whitespace().map(|w| w.parse::<u32>().with_context(|| format!("/proc/sys/kernel/sem: {sem:?}"))).collect::<Result<Vec<_>>>()?;
    Ok(IpcVarEntry {
        sem_ctls,
        msg_ctlmax: read_u32("kernel/msgmax")?,
        msg_ctlmnb: read_u32("kernel/msgmnb")?,
        msg_ctlmni: read_u32("kernel/msgmni")?,
        auto_msgmni: read_u32("kernel/auto_msgmni")?,
        shm_ctlmax: read_u64("kernel/shmmax")?,
        shm_ctlall: read_u64("kernel/shmall")?,
        shm_ctlmni: read_u32("kernel/shmmni")?,
        shm_rmid_forced: read_u32("kernel/shm_rmid_forced")?,
        mq_queues_max: read_u32("fs/mqueue/queues_max")?,
        mq_msg_max: read_u32("fs/mqueue/msg_max")?,
        mq_msgsize_max: read_u32("fs/mqueue/msgsize_max")?,
        mq_msg_default: Some(read_u32("fs/mqueue/msg_default")?),
        mq_msgsize_default: Some(read_u32("fs/mqueue/msgsize_default")?),
        msg_next_id: read_next("kernel/msg_next_id")?,
        sem_next_id: read_next("kernel/sem_next_id")?,
        shm_next_id: read_next("kernel/shm_next_id")?,
    })
}

pub fn write_image(dir: &ImageDir, id: u32, v: &IpcVarEntry) -> Result<()> {
    let name = kinds::ipc_var().file_name(u64::from(id));
    let mut w = ImageWriter::create(dir, &name, kinds::ipc_var())?;
    w.write(v)?;
    w.finish()?;
    Ok(())
}

pub fn load(dir: &ImageDir, id: u32) -> Result<IpcVarEntry> {
    let name = kinds::ipc_var().file_name(u64::from(id));
    Ok(ImageReader::open_kind(dir, &name, kinds::ipc_var())?.expect()?)
}

/// Set the limits (the new namespace the calling thread is in).
pub fn apply(v: &IpcVarEntry) -> Result<()> {
    if !v.sem_ctls.is_empty() {
        write("kernel/sem", v.sem_ctls.iter().map(u32::to_string).collect::<Vec<_>>().join(" "))?;
    }
    write("kernel/msgmax", v.msg_ctlmax)?;
    write("kernel/msgmnb", v.msg_ctlmnb)?;
    write("kernel/msgmni", v.msg_ctlmni)?;
    write("kernel/auto_msgmni", v.auto_msgmni)?;
    write("kernel/shmmax", v.shm_ctlmax)?;
    write("kernel/shmall", v.shm_ctlall)?;
    write("kernel/shmmni", v.shm_ctlmni)?;
    write("kernel/shm_rmid_forced", v.shm_rmid_forced)?;
    write("fs/mqueue/queues_max", v.mq_queues_max)?;
    write("fs/mqueue/msg_max", v.mq_msg_max)?;
    write("fs/mqueue/msgsize_max", v.mq_msgsize_max)?;
    if let Some(x) = v.mq_msg_default {
        write("fs/mqueue/msg_default", x)?;
    }
    if let Some(x) = v.mq_msgsize_default {
        write("fs/mqueue/msgsize_default", x)?;
    }
    Ok(())
}

/// The *_next_id counters, once every object is made (each make resets
/// its kind's to -1).
pub fn apply_next_ids(v: &IpcVarEntry) -> Result<()> {
    for (name, x) in [("kernel/msg_next_id", v.msg_next_id), ("kernel/sem_next_id", v.sem_next_id), ("kernel/shm_next_id", v.shm_next_id)] {
        if let Some(x) = x {
            write(name, x)?;
        }
    }
    Ok(())
}
