//! x86_64: registers (`regs`), XSAVE state (`fpu`), the signal frame
//! (`sigframe`), this CPU's description and compatibility checks (`cpu`),
//! the injected syscall instruction and the vDSO proxy's jump (`vdso`),
//! the gadgets and frames of the kill-safe injection (`rescue`).

pub mod cpu;
mod fpu;
mod regs;
pub mod rescue;
pub mod sigframe;
mod vdso;

pub use fpu::FpuState;
pub use regs::Regs;
pub use vdso::{vdso_jump, VDSO_JUMP_LEN};

/// `syscall; int3`: written at the injection address for a remote syscall.
pub const SYSCALL_INSN: [u8; 3] = [0x0f, 0x05, 0xcc];

/// The instruction pointer after the trap, relative to the injection address
/// (the int3 is reported with the ip just past it).
pub const SYSCALL_TRAP_IP: u64 = 3;

/// The text word at the injection address with [`SYSCALL_INSN`] over its
/// first bytes (little-endian), the rest unchanged.
pub fn patch_syscall(orig: u64) -> u64 {
    let mut b = orig.to_le_bytes();
    b[..SYSCALL_INSN.len()].copy_from_slice(&SYSCALL_INSN);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn patch_keeps_tail() {
        let w = super::patch_syscall(0x1122_3344_5566_7788);
        assert_eq!(w.to_le_bytes(), [0x0f, 0x05, 0xcc, 0x55, 0x44, 0x33, 0x22, 0x11]);
    }
}
