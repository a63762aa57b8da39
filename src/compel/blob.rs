//! The parasite blob built by `build/parasite.rs` (bytes, in-memory size,
//! entry/trap offsets, `R_X86_64_RELATIVE` slots) and its relocation.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/parasite_blob.rs"));
}

/// The built-in parasite blob.
pub struct Blob;

impl Blob {
    /// Whether a parasite exists for this target.
    pub const SUPPORTED: bool = generated::SUPPORTED;
    /// Bytes the blob occupies in memory (file bytes plus .bss).
    pub const MEMSZ: u64 = generated::MEMSZ;
    /// Offset of the entry stub (called with the boot arguments).
    pub const ENTRY: u64 = generated::ENTRY;
    /// Offset of the trap after the call to the parasite's main.
    pub const TRAP: u64 = generated::TRAP;

    /// The blob's file bytes, unrelocated.
    pub fn bytes() -> &'static [u8] {
        generated::BYTES
    }

    /// (offset, addend) of each slot that must hold `base + addend`.
    pub fn relocs() -> &'static [(u64, i64)] {
        generated::RELOCS
    }

    /// The memory image to load at `base`: bytes relocated, .bss zeroed.
    pub fn relocated(base: u64) -> Vec<u8> {
        let mut img = generated::BYTES.to_vec();
        img.resize(generated::MEMSZ as usize, 0);
        for &(off, addend) in generated::RELOCS {
            let v = base.wrapping_add_signed(addend);
            let off = off as usize;
            img[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::Blob;

    #[test]
    fn blob_is_sane() {
        if !Blob::SUPPORTED {
            return;
        }
        let n = Blob::bytes().len() as u64;
        assert!(n > 0 && n <= Blob::MEMSZ, "file bytes {n}, memsz {}", Blob::MEMSZ);
        let (entry, trap) = (Blob::ENTRY, Blob::TRAP);
        assert!(entry < trap && trap < n, "entry {entry}, trap {trap}, size {n}");
        // The entry stub aligns the stack first: `and rsp, -16`.
        assert_eq!(&Blob::bytes()[entry as usize..][..4], &[0x48, 0x83, 0xe4, 0xf0]);
        assert_eq!(Blob::bytes()[trap as usize], 0xcc);
        for &(off, addend) in Blob::relocs() {
            assert!(off % 8 == 0 && off + 8 <= n, "relocation slot {off:#x}");
            assert!(addend >= 0 && (addend as u64) < Blob::MEMSZ, "relocation target {addend:#x}");
        }
    }

    #[test]
    fn relocation_adds_the_base() {
        let (a, b) = (0x7f00_0000_0000u64, 0x5555_0000_0000u64);
        let (ia, ib) = (Blob::relocated(a), Blob::relocated(b));
        assert_eq!(ia.len() as u64, Blob::MEMSZ);
        for &(off, addend) in Blob::relocs() {
            let at = |img: &[u8]| u64::from_le_bytes(img[off as usize..off as usize + 8].try_into().unwrap());
            assert_eq!(at(&ia), a + addend as u64);
            assert_eq!(at(&ib), b + addend as u64);
        }
        // Everything else is position independent: identical at any base.
        let mut diff: Vec<usize> = ia.iter().zip(&ib).enumerate().filter(|(_, (x, y))| x != y).map(|(i, _)| i).collect();
        for &(off, _) in Blob::relocs() {
            diff.retain(|&i| i < off as usize || i >= off as usize + 8);
        }
        assert!(diff.is_empty(), "bytes differ outside relocation slots: {diff:?}");
    }
}
