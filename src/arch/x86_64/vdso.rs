//! The jump written over each exported function of a foreign vDSO when it
//! is restored as a proxy: `movabs $target, %rax; jmp *%rax`. rax is free
//! at a function's entry (caller-saved, no argument: vDSO functions are not
//! variadic), and the absolute form reaches our vDSO wherever it lies.

/// The length of [`vdso_jump`].
pub const VDSO_JUMP_LEN: usize = 12;

/// The bytes of a jump to `target`.
pub fn vdso_jump(target: u64) -> [u8; VDSO_JUMP_LEN] {
    let mut b = [0u8; VDSO_JUMP_LEN];
    // REX.W + B8+r (mov r64, imm64) with r = rax.
    b[0] = 0x48;
    b[1] = 0xb8;
    b[2..10].copy_from_slice(&target.to_le_bytes());
    // FF /4 (jmp r/m64), ModRM 11 100 000 = rax.
    b[10] = 0xff;
    b[11] = 0xe0;
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_movabs_and_indirect_jump() {
        let b = vdso_jump(0x7fff_1234_5678_9abc);
        assert_eq!(b, [0x48, 0xb8, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12, 0xff, 0x7f, 0xff, 0xe0]);
        assert_eq!(vdso_jump(0)[2..10], [0u8; 8]);
        assert_eq!(vdso_jump(u64::MAX)[2..10], [0xffu8; 8]);
    }
}
