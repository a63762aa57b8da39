//! x86_64 FPU/vector state: the XSAVE area (standard, uncompacted format) as
//! `PTRACE_{GET,SET}REGSET NT_X86_XSTATE` moves it, and the variant a signal
//! frame carries (software-reserved bytes and trailing magic filled in).

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::sys::ptrace;

/// Legacy FXSAVE area plus the XSAVE header: the smallest XSAVE image.
const MIN_XSTATE: usize = 512 + 64;
/// Offset of the software-reserved bytes (`struct _fpx_sw_bytes`).
const SW_BYTES: usize = 464;
/// Offset of XSTATE_BV in the XSAVE header.
const XSTATE_BV: usize = 512;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// AMX tile data: a dynamically enabled feature, in a task's signal frame
/// only when the task uses it.
const XFEATURE_XTILE_DATA: u64 = 1 << 18;
/// x87 and SSE: always in the legacy area.
const XFEATURE_FP_SSE: u64 = 0b11;

/// The XSAVE bytes of one thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FpuState(pub Vec<u8>);

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4).map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

impl FpuState {
    /// Read the XSAVE area of a ptrace-stopped task.
    pub fn get(pid: Pid) -> Result<FpuState, Errno> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = ptrace::get_regset(pid, ptrace::NT_X86_XSTATE, &mut buf)?;
        buf.truncate(n);
        Ok(FpuState(buf))
    }

    /// Write it back.
    pub fn set(&self, pid: Pid) -> Result<(), Errno> {
        ptrace::set_regset(pid, ptrace::NT_X86_XSTATE, &self.0)
    }

    /// Components whose state is not the init state (XSTATE_BV).
    pub fn xstate_bv(&self) -> u64 {
        u64_at(&self.0, XSTATE_BV)
    }

    /// The feature mask and size of the image a signal frame should carry:
    /// every user feature the kernel exposes (its own software bytes say
    /// which), less AMX tile data unless in use, so the size never exceeds
    /// what the kernel accepts for this task.
    fn frame_layout(&self) -> (u64, usize) {
        let mut mask = if u32_at(&self.0, SW_BYTES) == FP_XSTATE_MAGIC1 {
            u64_at(&self.0, SW_BYTES + 8)
        } else {
            self.xstate_bv()
        } | XFEATURE_FP_SSE;
        if self.xstate_bv() & XFEATURE_XTILE_DATA == 0 {
            mask &= !XFEATURE_XTILE_DATA;
        }
        let mut size = MIN_XSTATE;
        for i in 2..63u32 {
            if mask & (1 << i) == 0 {
                continue;
            }
            let leaf = core::arch::x86_64::__cpuid_count(0xd, i);
            // ecx bit 0 marks supervisor components: never in a user image.
            if leaf.ecx & 1 != 0 || leaf.ebx == 0 {
                mask &= !(1 << i);
                continue;
            }
            size = size.max((leaf.ebx + leaf.eax) as usize);
        }
        (mask, size.min(self.0.len().max(MIN_XSTATE)))
    }

    /// Bytes a signal frame needs for this state (image plus trailing magic).
    pub fn frame_size(&self) -> usize {
        self.frame_layout().1 + 4
    }

    /// The image to put in a signal frame: the XSAVE bytes cut to size, the
    /// software-reserved bytes describing them, and `FP_XSTATE_MAGIC2` after.
    pub fn frame_image(&self) -> Vec<u8> {
        let (mask, size) = self.frame_layout();
        let mut img = vec![0u8; size + 4];
        let n = size.min(self.0.len());
        img[..n].copy_from_slice(&self.0[..n]);
        img[SW_BYTES..XSTATE_BV].fill(0);
        img[SW_BYTES..SW_BYTES + 4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        img[SW_BYTES + 4..SW_BYTES + 8].copy_from_slice(&((size + 4) as u32).to_le_bytes());
        img[SW_BYTES + 8..SW_BYTES + 16].copy_from_slice(&mask.to_le_bytes());
        img[SW_BYTES + 16..SW_BYTES + 20].copy_from_slice(&(size as u32).to_le_bytes());
        // Only features in the mask may be marked live in the header.
        let bv = self.xstate_bv() & mask;
        img[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&bv.to_le_bytes());
        img[size..size + 4].copy_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_image_is_marked() {
        let mut raw = vec![0u8; 4096];
        raw[XSTATE_BV] = 0b111;
        let img = FpuState(raw).frame_image();
        let size = img.len() - 4;
        assert!(size >= MIN_XSTATE);
        assert_eq!(u32_at(&img, SW_BYTES), FP_XSTATE_MAGIC1);
        assert_eq!(u32_at(&img, SW_BYTES + 4) as usize, size + 4);
        assert_eq!(u32_at(&img, SW_BYTES + 16) as usize, size);
        assert_eq!(u32_at(&img, size), FP_XSTATE_MAGIC2);
    }
}
