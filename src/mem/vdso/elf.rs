//! Reading a vDSO image (the bytes of a [vdso] mapping, ours or an
//! image's): its exported function symbols (name, version, offset from the
//! start of the image) and the extent of its executable code.
//!
//! goblin does the parsing: it is already built for `build/blob.rs`, every
//! table it reads is bounds-checked against the bytes (the image's vDSO
//! comes from a pages file we did not write), and it follows the dynamic
//! section, DT_HASH/DT_GNU_HASH symbol counts and the GNU version tables.

use anyhow::{bail, Context, Result};
use goblin::elf::program_header::{PF_X, PT_LOAD};
use goblin::elf::section_header::{SHF_EXECINSTR, SHT_NOBITS};
use goblin::elf::sym::{STB_GLOBAL, STB_WEAK, STT_FUNC};
use goblin::elf::Elf;

/// One exported function of a vDSO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// Its version (`LINUX_2.6`), when the vDSO versions its symbols.
    pub version: Option<String>,
    /// Offset from the start of the vDSO image.
    pub offset: u64,
}

/// What the proxy needs of a vDSO.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VdsoElf {
    /// Exported functions, sorted by offset (aliases share one).
    pub symbols: Vec<Symbol>,
    /// Executable ranges [start, end) as offsets into the image: the
    /// executable sections, or the executable PT_LOAD without them.
    pub text: Vec<(u64, u64)>,
}

impl VdsoElf {
    /// The executable range holding `offset`.
    pub fn text_at(&self, offset: u64) -> Option<(u64, u64)> {
        self.text.iter().copied().find(|&(s, e)| s <= offset && offset < e)
    }

    /// The first symbol named `name` (with `version`, when both have one).
    pub fn find(&self, name: &str, version: Option<&str>) -> Option<&Symbol> {
        let mut named = self.symbols.iter().filter(|s| s.name == name);
        match version {
            None => named.next(),
            Some(v) => named.find(|s| s.version.as_deref().is_none_or(|w| w == v)),
        }
    }
}

/// Parse the vDSO image `bytes` (as mapped: the ELF starts at offset 0).
pub fn parse(bytes: &[u8]) -> Result<VdsoElf> {
    let elf = Elf::parse(bytes).context("the vDSO is not a valid ELF image")?;
    if !elf.is_64 || !elf.little_endian {
        bail!("the vDSO is not a 64-bit little-endian ELF image");
    }
    // Offsets of the image are addresses minus the lowest PT_LOAD's
    // (a vDSO is linked at 0 or at a fixed base, and mapped from its start).
    let loads: Vec<_> = elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD).collect();
    let base = loads.iter().map(|p| p.p_vaddr - p.p_offset).min().context("the vDSO has no PT_LOAD segment")?;
    let len = bytes.len() as u64;

    let mut text: Vec<(u64, u64)> = elf
        .section_headers
        .iter()
        .filter(|s| s.sh_flags & u64::from(SHF_EXECINSTR) != 0 && s.sh_type != SHT_NOBITS && s.sh_size > 0)
        .map(|s| (s.sh_addr.wrapping_sub(base), s.sh_addr.wrapping_sub(base).saturating_add(s.sh_size)))
        .collect();
    if text.is_empty() {
        text = loads
            .iter()
            .filter(|p| p.p_flags & PF_X != 0)
            .map(|p| (p.p_vaddr - base, (p.p_vaddr - base).saturating_add(p.p_filesz)))
            .collect();
    }
    text.retain(|&(s, e)| s < e && e <= len);
    text.sort_unstable();
    if text.is_empty() {
        bail!("the vDSO has no executable code inside its {len} bytes");
    }

    // Version index -> name, from the version definitions.
    let mut versions: Vec<(u16, String)> = Vec::new();
    if let Some(vd) = &elf.verdef {
        for d in vd.iter() {
            if let Some(aux) = d.iter().next()
                && let Some(n) = elf.dynstrtab.get_at(aux.vda_name)
            {
                versions.push((d.vd_ndx, n.to_string()));
            }
        }
    }

    let mut symbols = Vec::new();
    for (i, s) in elf.dynsyms.iter().enumerate() {
        let bind = s.st_bind();
        if s.st_type() != STT_FUNC || (bind != STB_GLOBAL && bind != STB_WEAK) || s.st_shndx == 0 || s.st_value == 0 {
            continue;
        }
        let Some(name) = elf.dynstrtab.get_at(s.st_name).filter(|n| !n.is_empty()) else { continue };
        let offset = s.st_value.wrapping_sub(base);
        if offset >= len {
            bail!("the vDSO's symbol {name} lies at {:#x}, outside its {len} bytes", s.st_value);
        }
        let version = elf
            .versym
            .as_ref()
            .and_then(|v| v.get_at(i))
            .and_then(|v| versions.iter().find(|(ndx, _)| *ndx == v.version()).map(|(_, n)| n.clone()));
        symbols.push(Symbol { name: name.to_string(), version, offset });
    }
    symbols.sort_by(|a, b| (a.offset, &a.name).cmp(&(b.offset, &b.name)));
    Ok(VdsoElf { symbols, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_vdso_exports_the_clock_functions() {
        let Some(ours) = super::super::Runtime::current().expect("reading our own vDSO") else {
            println!("skipped: this process has no vDSO");
            return;
        };
        let v = parse(&ours.bytes).unwrap();
        // Each function under its __vdso_ name or its plain one (the
        // kernel decides which it exports), inside the executable code.
        for f in ["clock_gettime", "gettimeofday", "time", "getcpu"] {
            let s = v.find(&format!("__vdso_{f}"), None).or_else(|| v.find(f, None));
            let s = s.unwrap_or_else(|| panic!("{f} not found in {:?}", v.symbols));
            assert!(v.text_at(s.offset).is_some(), "{f} at {:#x} is not in the text {:x?}", s.offset, v.text);
        }
        // Aliases (clock_gettime / __vdso_clock_gettime) share an offset.
        if let (Some(a), Some(b)) = (v.find("clock_gettime", None), v.find("__vdso_clock_gettime", None)) {
            assert_eq!(a.offset, b.offset);
        }
        assert!(v.symbols.windows(2).all(|w| w[0].offset <= w[1].offset));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse(b"not an elf at all").is_err());
        assert!(parse(&[0u8; 8192]).is_err());
        // An ELF header alone: no PT_LOAD.
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16] = 3; // ET_DYN
        b[18] = 62; // EM_X86_64
        b[52] = 64; // e_ehsize
        assert!(parse(&b).is_err());
    }
}
