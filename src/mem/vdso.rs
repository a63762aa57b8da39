//! Restoring onto a kernel whose vDSO differs from the one in the image (a
//! different kernel build), as CRIU does with its "vDSO proxy": the image's
//! own vDSO pages come back at their address, and each function they export
//! is overwritten with a jump to the same function of the running kernel's
//! vDSO, which is moved elsewhere. Code of the task that kept pointers into
//! the old vDSO (glibc resolves them once at start) lands on the jumps.
//! Reads the ELF dynamic symbols of both vDSO images (section headers and
//! `.dynsym`, as the kernel builds them).

use anyhow::{bail, Context, Result};

use crate::files::elf::{u16_at, u32_at, u64_at};

const SHT_DYNSYM: u32 = 11;
const STT_FUNC: u8 = 2;
const PT_LOAD: u32 = 1;
/// `movabs rax, imm64; jmp rax`.
pub const JUMP_LEN: usize = 12;

/// A function a vDSO exports: its name, offset from the vDSO's start, size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Func {
    pub name: String,
    pub off: u64,
    pub size: u64,
}

/// The functions exported by the vDSO image `b` (its bytes as mapped).
pub fn functions(b: &[u8]) -> Option<Vec<Func>> {
    if b.get(..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
        return None;
    }
    // The link address of the first loaded segment is the vDSO's start.
    let phoff = u64_at(b, 32)? as usize;
    let (phentsize, phnum) = (usize::from(u16_at(b, 54)?), usize::from(u16_at(b, 56)?));
    let base = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&p| u32_at(b, p) == Some(PT_LOAD))
        .and_then(|p| u64_at(b, p + 16))?;
    let shoff = u64_at(b, 40)? as usize;
    let (shentsize, shnum) = (usize::from(u16_at(b, 58)?), usize::from(u16_at(b, 60)?));
    let sh = |i: usize| shoff + i * shentsize;
    let dynsym = (0..shnum).find(|&i| u32_at(b, sh(i) + 4) == Some(SHT_DYNSYM))?;
    let (sym_off, sym_size) = (u64_at(b, sh(dynsym) + 24)? as usize, u64_at(b, sh(dynsym) + 32)? as usize);
    let strtab = u32_at(b, sh(dynsym) + 40)? as usize;
    let str_off = u64_at(b, sh(strtab) + 24)? as usize;
    let mut out = Vec::new();
    for s in (sym_off..sym_off + sym_size).step_by(24) {
        let (name, info, shndx, value, size) =
            (u32_at(b, s)? as usize, *b.get(s + 4)?, u16_at(b, s + 6)?, u64_at(b, s + 8)?, u64_at(b, s + 16)?);
        if info & 0xf != STT_FUNC || shndx == 0 {
            continue;
        }
        let n = b.get(str_off + name..)?;
        let n = &n[..n.iter().position(|c| *c == 0)?];
        out.push(Func { name: String::from_utf8_lossy(n).into_owned(), off: value.checked_sub(base)?, size });
    }
    Some(out)
}

/// The jumps to write into the image's vDSO `old` so each function it
/// exports goes to the same-named function of `new`, mapped at `new_base`:
/// (offset in `old`, the instruction bytes). Refused, by name, when the
/// running kernel lacks a function or one is too small to hold the jump.
pub fn proxy_jumps(old: &[u8], new: &[u8], new_base: u64) -> Result<Vec<(u64, [u8; JUMP_LEN])>> {
    let old_f = functions(old).context("the image's vDSO is not an ELF image we can read")?;
    let new_f = functions(new).context("this kernel's vDSO is not an ELF image we can read")?;
    let mut out: Vec<(u64, [u8; JUMP_LEN])> = Vec::new();
    for f in &old_f {
        if out.iter().any(|(o, _)| *o == f.off) {
            continue; // an alias (clock_gettime and __vdso_clock_gettime)
        }
        let Some(n) = new_f.iter().find(|n| n.name == f.name) else {
            bail!("the image's vDSO has {}, this kernel's has not: the task cannot run on this kernel", f.name);
        };
        if f.size != 0 && f.size < JUMP_LEN as u64 {
            bail!("{} in the image's vDSO is {} bytes, too short for a jump to this kernel's", f.name, f.size);
        }
        let mut j = [0u8; JUMP_LEN];
        j[..2].copy_from_slice(&[0x48, 0xb8]);
        j[2..10].copy_from_slice(&(new_base + n.off).to_le_bytes());
        j[10..].copy_from_slice(&[0xff, 0xe0]);
        out.push((f.off, j));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// Our own vDSO's bytes.
    fn own_vdso() -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let maps = crate::proc::maps::read(std::process::id() as i32).unwrap();
        let v = maps.iter().find(|m| m.name == "[vdso]").unwrap();
        let mut b = vec![0u8; (v.end - v.start) as usize];
        std::fs::File::open("/proc/self/mem").unwrap().read_exact_at(&mut b, v.start).unwrap();
        b
    }

    #[test]
    fn our_vdso_exports_the_clock_functions() {
        let f = super::functions(&own_vdso()).unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&"__vdso_clock_gettime") && names.contains(&"clock_gettime"), "{names:?}");
        assert!(f.iter().all(|f| f.off < 0x10000), "{f:?}");
    }

    #[test]
    fn jumps_lead_to_the_same_function_of_the_new_vdso() {
        let v = own_vdso();
        let f = super::functions(&v).unwrap();
        let j = super::proxy_jumps(&v, &v, 0x7000_0000_0000).unwrap();
        let cg = f.iter().find(|f| f.name == "__vdso_clock_gettime").unwrap();
        let (_, jump) = j.iter().find(|(o, _)| *o == cg.off).unwrap();
        assert_eq!(&jump[..2], &[0x48, 0xb8]);
        assert_eq!(u64::from_le_bytes(jump[2..10].try_into().unwrap()), 0x7000_0000_0000 + cg.off);
        // Aliases are patched once.
        let mut offs: Vec<u64> = j.iter().map(|(o, _)| *o).collect();
        offs.sort_unstable();
        offs.dedup();
        assert_eq!(offs.len(), j.len());
        // A kernel without a function the image has: refused by name.
        assert!(super::proxy_jumps(&v, &v[..64], 0).is_err());
    }
}
