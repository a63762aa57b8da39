//! A thread's clear_child_tid address. PR_GET_TID_ADDRESS run in the
//! thread gives it; where that call fails in a thread (ENOSYS was seen
//! for one here), it is found another way: glibc points every thread's
//! clear_child_tid at the `tid` field of its own thread descriptor, which
//! sits at the thread pointer. So the leader's address minus its thread
//! pointer is that field's offset for every thread of the process, and
//! the thread's own descriptor holds its tid there. The address is taken
//! only when the word at that offset is the thread's tid; anything else
//! (another C library, a thread made by raw clone) is refused by name.

use anyhow::{bail, Result};

use super::remote::{self, Remote};

/// Where the leader's clear_tid points, relative to its thread pointer:
/// `None` when the leader has none (0) or it lies outside the first page
/// of its descriptor.
pub fn descriptor_offset(leader_addr: u64, leader_tp: u64) -> Option<u64> {
    let off = leader_addr.checked_sub(leader_tp)?;
    (leader_addr != 0 && leader_tp != 0 && off < 4096).then_some(off)
}

/// The clear_tid address of thread `tid` of `pid`, whose thread pointer
/// is `tp`, asked through `r`; `offset` is [`descriptor_offset`] of the
/// leader, for the fallback.
pub fn get(pid: i32, tid: i32, tp: u64, offset: Option<u64>, r: &mut dyn Remote) -> Result<u64> {
    let err = match remote::tid_address(r) {
        Ok(a) => return Ok(a),
        Err(e) => e,
    };
    let Some(off) = offset.filter(|_| tp != 0) else {
        bail!("clear_tid address of thread {tid} of {pid}: {err:#}, and the leader's gives no offset in the thread descriptor to find it by");
    };
    let addr = tp + off;
    let word = r.read(addr, 4)?;
    let seen = i32::from_le_bytes([word[0], word[1], word[2], word[3]]);
    if seen != tid {
        bail!("clear_tid address of thread {tid} of {pid}: {err:#}, and its descriptor (thread pointer {tp:#x}) holds {seen} at offset {off:#x}, not its tid");
    }
    tracing::warn!("thread {tid} of {pid}: {err:#}: clear_tid taken from its thread descriptor ({addr:#x}, offset {off:#x} as the leader's)");
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread whose prctl fails (or not), with memory to read.
    struct Fake {
        prctl: i64,
        mem: std::collections::HashMap<u64, i32>,
    }

    impl Remote for Fake {
        fn syscall(&mut self, _nr: i64, _args: [u64; 6]) -> Result<i64> {
            Ok(self.prctl)
        }
        fn scratch(&mut self) -> Result<u64> {
            Ok(0x1000)
        }
        fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
            let v = if addr == 0x1000 { 0x7f00_0000_02d0u64.to_le_bytes().to_vec() } else { (self.mem.get(&addr).copied().unwrap_or(0) as i64).to_le_bytes().to_vec() };
            Ok(v[..len].to_vec())
        }
    }

    #[test]
    fn the_offset_of_the_leader() {
        assert_eq!(descriptor_offset(0x7f00_0000_02d0, 0x7f00_0000_0000), Some(0x2d0));
        assert_eq!(descriptor_offset(0, 0x7f00_0000_0000), None);
        assert_eq!(descriptor_offset(0x1000, 0x7f00_0000_0000), None);
        assert_eq!(descriptor_offset(0x7f00_0000_9000, 0x7f00_0000_0000), None);
    }

    #[test]
    fn prctl_first_then_the_descriptor_then_refusal() {
        let tp = 0x7f11_0000_0000u64;
        let mut ok = Fake { prctl: 0, mem: Default::default() };
        assert_eq!(get(10, 11, tp, Some(0x2d0), &mut ok).unwrap(), 0x7f00_0000_02d0);
        let mut failing = Fake { prctl: -(libc::ENOSYS as i64), mem: [(tp + 0x2d0, 11)].into() };
        assert_eq!(get(10, 11, tp, Some(0x2d0), &mut failing).unwrap(), tp + 0x2d0);
        let e = format!("{:#}", get(10, 12, tp, Some(0x2d0), &mut failing).unwrap_err());
        assert!(e.contains("thread 12 of 10") && e.contains("holds 11") && e.contains("ENOSYS"), "{e}");
        let e = format!("{:#}", get(10, 11, tp, None, &mut failing).unwrap_err());
        assert!(e.contains("thread 11 of 10") && e.contains("no offset"), "{e}");
    }
}
