//! The GNU build-id of an ELF file (CRIU stores it for mapped executables
//! and libraries so a restore can refuse a file that changed). Reads only
//! the ELF header, the program headers and the PT_NOTE segments.

use std::fs::File;
use std::os::unix::fs::FileExt;

const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;
const MAX_NOTES: u64 = 64 << 10;

/// Little-endian integers at byte `o` of `b` (None past its end).
pub(crate) fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
pub(crate) fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
pub(crate) fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// The build-id as CRIU stores it: the note's bytes as little-endian u32
/// words. None if the file is not a 64-bit little-endian ELF or has no
/// build-id note.
pub fn build_id(f: &File) -> Option<Vec<u32>> {
    let mut eh = [0u8; 64];
    f.read_exact_at(&mut eh, 0).ok()?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let phoff = u64_at(&eh, 32)?;
    let phentsize = u64::from(u16_at(&eh, 54)?);
    let phnum = u64::from(u16_at(&eh, 56)?);
    if phentsize < 56 || phnum > 256 {
        return None;
    }
    let mut ph = vec![0u8; (phentsize * phnum) as usize];
    f.read_exact_at(&mut ph, phoff).ok()?;
    for i in 0..phnum as usize {
        let p = &ph[i * phentsize as usize..];
        if u32_at(p, 0)? != PT_NOTE {
            continue;
        }
        let off = u64_at(p, 8)?;
        let size = u64_at(p, 32)?.min(MAX_NOTES);
        let mut notes = vec![0u8; size as usize];
        f.read_exact_at(&mut notes, off).ok()?;
        let mut o = 0usize;
        while o + 12 <= notes.len() {
            let namesz = u32_at(&notes, o)? as usize;
            let descsz = u32_at(&notes, o + 4)? as usize;
            let ty = u32_at(&notes, o + 8)?;
            let name_at = o + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            let end = desc_at + descsz.div_ceil(4) * 4;
            if end > notes.len() {
                break;
            }
            if ty == NT_GNU_BUILD_ID && notes.get(name_at..name_at + namesz) == Some(b"GNU\0") {
                let d = &notes[desc_at..desc_at + descsz];
                return Some(d.chunks(4).map(|c| {
                    let mut w = [0u8; 4];
                    w[..c.len()].copy_from_slice(c);
                    u32::from_le_bytes(w)
                }).collect());
            }
            o = end;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn libc_has_one_and_text_files_do_not() {
        let exe = std::fs::File::open("/proc/self/exe").unwrap();
        // Our test binary is linked with a build-id by default on Debian's gcc.
        let id = super::build_id(&exe);
        assert!(id.is_none_or(|v| v.len() == 5 || v.len() == 4 || v.len() == 8));
        let bash = std::fs::File::open("/usr/bin/bash").unwrap();
        assert_eq!(super::build_id(&bash).unwrap().len(), 5);
        let txt = std::fs::File::open("/etc/passwd").unwrap();
        assert!(super::build_id(&txt).is_none());
    }
}
