//! ipcns-msg-ID.img: each queue (`ipc_msg_entry`: desc, qbytes, qnum),
//! followed by its messages in queue order, each an `ipc_msg` entry
//! (mtype, msize) then msize raw bytes zero-padded to 8. Messages are read
//! with MSG_COPY, so the queues stay as they were.

use anyhow::{bail, Context, Result};
use prost::Message;

use super::{check_id, desc, perm, round8, set_next_id};
use crate::images::kind::kinds;
use crate::images::pb::{IpcMsg, IpcMsgEntry};
use crate::images::{ImageDir, ImageReader, ImageWriter};
use crate::sys::sysvipc;

pub fn dump(dir: &ImageDir, ns: u32, msgmax: usize) -> Result<()> {
    let name = kinds::ipcns_msg().file_name(u64::from(ns));
    // (No queue, no image: as CRIU 4.2.)
    let mut img = None;
    let max = sysvipc::msg_max_index().context("MSG_INFO")?;
    for i in 0..=max {
        let Some(q) = sysvipc::msg_stat(i).with_context(|| format!("MSG_STAT {i}"))? else { continue };
        let w = match &mut img {
            Some(w) => w,
            None => img.insert(ImageWriter::create(dir, &name, kinds::ipcns_msg())?),
        };
        w.write(&IpcMsgEntry { desc: desc(q.id, &q.perm), qbytes: q.qbytes as u32, qnum: q.qnum as u32 })?;
        for n in 0..q.qnum {
            let (mtype, data) = sysvipc::msg_copy(q.id, n as i64, msgmax)
                .with_context(|| format!("can't copy message {n} of SysV message queue {} (MSG_COPY)", q.id))?;
            let m = IpcMsg { mtype: mtype as u64, msize: data.len() as u32 }.encode_to_vec();
            w.payload(&(m.len() as u32).to_le_bytes())?;
            w.payload(&m)?;
            let mut padded = data;
            padded.resize(round8(padded.len()), 0);
            w.payload(&padded)?;
        }
    }
    if let Some(w) = img {
        w.finish()?;
    }
    Ok(())
}

/// The largest message CRIU 4.2 restores.
const MAX_MSG: u32 = 8192;

pub fn restore(dir: &ImageDir, ns: u32) -> Result<()> {
    let name = kinds::ipcns_msg().file_name(u64::from(ns));
    if !dir.exists(&name) {
        return Ok(());
    }
    let mut r = ImageReader::open_kind(dir, &name, kinds::ipcns_msg())?;
    let at = |r: &ImageReader<IpcMsgEntry>| format!("{} at offset {}", dir.display(&name), r.offset());
    while let Some(q) = r.next_entry()? {
        let d = q.desc;
        let mut msgs = Vec::new();
        for _ in 0..q.qnum {
            let where_ = at(&r);
            let len = u32::from_le_bytes(r.payload(4)?.try_into().expect("4 bytes"));
            let m = IpcMsg::decode(r.payload(u64::from(len))?.as_slice()).with_context(|| format!("{where_}: a bad ipc_msg"))?;
            if m.msize > MAX_MSG {
                bail!("{where_}: a message of {} bytes in SysV queue {}: more than {MAX_MSG}", m.msize, d.id);
            }
            let mut data = r.payload(round8(m.msize as usize) as u64)?;
            data.truncate(m.msize as usize);
            msgs.push((m.mtype as i64, data));
        }
        set_next_id("msg", d.id)?;
        let id = sysvipc::msg_get(d.key as i32, d.mode).with_context(|| format!("msgget key {:#x} for queue {}", d.key, d.id))?;
        check_id("message queue", id, &d)?;
        sysvipc::msg_set(id, &perm(&d), u64::from(q.qbytes)).with_context(|| format!("IPC_SET on SysV queue {id}"))?;
        for (n, (mtype, data)) in msgs.iter().enumerate() {
            sysvipc::msg_send(id, *mtype, data).with_context(|| format!("msgsnd of message {n} to SysV queue {id}"))?;
        }
    }
    Ok(())
}
