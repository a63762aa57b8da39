//! Build-script pipeline shared by the no_std blobs (the parasite and the
//! restorer): compile a `parasite/` source with the same stable `rustc`
//! cargo uses (a PIE `staticlib`, no std, panic=abort, no `-Z` flags, no
//! extra rustup target), link it with `cc -static-pie` and its linker script
//! so the first PT_LOAD (at address 0) is the blob, read that ELF with goblin
//! and emit `OUT_DIR/<name>_blob.rs`: the bytes, the in-memory size, the
//! offsets of the named symbols and the `R_X86_64_RELATIVE` slots. Any
//! other relocation, a PLT relocation or an undefined symbol fails the
//! build; panic or formatting machinery in a blob only warns. Targets other
//! than x86_64 Linux get an empty blob (`SUPPORTED = false`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use goblin::elf::{program_header::PT_LOAD, reloc::R_X86_64_RELATIVE, section_header::SHN_UNDEF, Elf};

/// One blob to build.
pub struct Spec {
    /// Crate and output name (`parasite`, `restorer`).
    pub name: &'static str,
    /// The crate root to compile.
    pub source: &'static str,
    /// The linker script.
    pub script: &'static str,
    /// The symbol kept alive as the entry point.
    pub entry: &'static str,
    /// (symbol, generated const name) of each offset to export.
    pub syms: &'static [(&'static str, &'static str)],
    /// Extra paths whose change rebuilds the blob.
    pub rerun: &'static [&'static str],
}

/// Compile, link and extract `spec`; writes `OUT_DIR/<name>_blob.rs`.
pub fn build(spec: &Spec) {
    for p in spec.rerun {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=build/blob.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let generated = out.join(format!("{}_blob.rs", spec.name));
    if arch != "x86_64" || os != "linux" {
        std::fs::write(&generated, render(spec, None)).expect("write the generated blob file");
        return;
    }
    let dir = out.join(spec.name);
    std::fs::create_dir_all(&dir).expect("create the blob's out dir");
    let lib = dir.join(format!("lib{}.a", spec.name));
    let elf_path = dir.join(format!("{}.elf", spec.name));
    compile(spec, &lib);
    link(spec, &lib, &elf_path);
    let bytes = std::fs::read(&elf_path).expect("read the linked blob");
    let blob = extract(spec, &bytes).unwrap_or_else(|e| panic!("{} blob: {e}", spec.name));
    let bin = dir.join(format!("{}.bin", spec.name));
    std::fs::write(&bin, &blob.bytes).expect("write the blob bytes");
    std::fs::write(&generated, render(spec, Some((&blob, &bin)))).expect("write the generated blob file");
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !status.success() {
        panic!("{what} failed ({status}): {cmd:?}");
    }
}

fn compile(spec: &Spec, lib: &Path) {
    // The compiler cargo uses (not a wrapper such as sccache).
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition=2024", "--crate-type=staticlib"])
        .arg(format!("--crate-name={}", spec.name))
        .args(["--target=x86_64-unknown-linux-gnu"])
        .args(["-C", "relocation-model=pie", "-C", "code-model=small", "-C", "panic=abort"])
        .args(["-C", "opt-level=2", "-C", "lto=fat", "-C", "codegen-units=1"])
        .args(["-C", "force-unwind-tables=no", "-C", "debuginfo=0", "-C", "target-cpu=x86-64"])
        .arg("-o")
        .arg(lib)
        .arg(spec.source)
        // Flags cargo meant for the crate must not leak into the blob.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    run(&mut cmd, &format!("compiling the {}", spec.name));
}

fn link(spec: &Spec, lib: &Path, elf: &Path) {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let mut cmd = Command::new(cc);
    cmd.args(["-nostdlib", "-nostartfiles", "-static-pie", "-Wl,--no-dynamic-linker"])
        .args(["-Wl,-z,norelro", "-Wl,-z,noexecstack", "-Wl,--gc-sections", "-Wl,--build-id=none"])
        .args(["-Wl,--no-warn-rwx-segments", "-Wl,--no-undefined"])
        .arg(format!("-Wl,-u,{}", spec.entry))
        .arg(format!("-Wl,-T,{}", spec.script))
        .arg("-o")
        .arg(elf)
        .arg(lib);
    run(&mut cmd, &format!("linking the {}", spec.name));
}

/// What is taken out of the linked ELF.
struct Blob {
    bytes: Vec<u8>,
    memsz: u64,
    /// Offsets of `Spec::syms`, in that order.
    syms: Vec<u64>,
    /// (offset, addend) of each R_X86_64_RELATIVE slot.
    relocs: Vec<(u64, i64)>,
}

/// Pull the blob out of the linked ELF, checking it is self-contained.
fn extract(spec: &Spec, bytes: &[u8]) -> Result<Blob, String> {
    let elf = Elf::parse(bytes).map_err(|e| format!("parse ELF: {e}"))?;
    let ph = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == PT_LOAD && p.p_vaddr == 0)
        .ok_or("no PT_LOAD at address 0")?;
    let start = ph.p_offset as usize;
    let data = bytes.get(start..start + ph.p_filesz as usize).ok_or("segment past end of file")?;
    let mut found: Vec<Option<u64>> = vec![None; spec.syms.len()];
    for sym in elf.syms.iter() {
        let name = elf.strtab.get_at(sym.st_name).unwrap_or("");
        if sym.st_shndx == SHN_UNDEF as usize && !name.is_empty() {
            return Err(format!("undefined symbol {name}"));
        }
        if let Some(i) = spec.syms.iter().position(|(s, _)| *s == name) {
            found[i] = Some(sym.st_value);
        }
        if name.contains("panic") && name != "rust_begin_unwind" || name.contains("3fmt") {
            println!("cargo:warning={} blob pulls in panic/fmt machinery ({name}): look for a panicking path", spec.name);
        }
    }
    let mut syms = Vec::with_capacity(found.len());
    for (i, f) in found.iter().enumerate() {
        let off = f.ok_or_else(|| format!("no {} symbol", spec.syms[i].0))?;
        if off >= ph.p_filesz {
            return Err(format!("{} outside the blob", spec.syms[i].0));
        }
        syms.push(off);
    }
    if !elf.pltrelocs.is_empty() || !elf.dynrels.is_empty() {
        return Err("PLT or REL relocations in the blob".into());
    }
    let mut relocs = Vec::new();
    for r in elf.dynrelas.iter() {
        if r.r_type != R_X86_64_RELATIVE {
            return Err(format!("relocation type {} at {:#x} (only R_X86_64_RELATIVE is allowed)", r.r_type, r.r_offset));
        }
        if r.r_offset + 8 > ph.p_filesz {
            return Err(format!("relocation at {:#x} outside the blob's file bytes", r.r_offset));
        }
        relocs.push((r.r_offset, r.r_addend.unwrap_or(0)));
    }
    Ok(Blob { bytes: data.to_vec(), memsz: ph.p_memsz, syms, relocs })
}

fn render(spec: &Spec, blob: Option<(&Blob, &Path)>) -> String {
    let mut s = String::new();
    writeln!(s, "// Generated by build/blob.rs for the {}: do not edit.", spec.name).unwrap();
    let Some((b, bin)) = blob else {
        writeln!(s, "pub const SUPPORTED: bool = false;\npub static BYTES: &[u8] = &[];\npub const MEMSZ: u64 = 0;").unwrap();
        for (_, c) in spec.syms {
            writeln!(s, "pub const {c}: u64 = 0;").unwrap();
        }
        writeln!(s, "pub static RELOCS: &[(u64, i64)] = &[];").unwrap();
        return s;
    };
    writeln!(s, "/// The blob is built for this target.\npub const SUPPORTED: bool = true;").unwrap();
    writeln!(s, "/// File bytes of the blob (load at any page-aligned base).").unwrap();
    writeln!(s, "pub static BYTES: &[u8] = include_bytes!({:?});", bin.display().to_string()).unwrap();
    writeln!(s, "/// In-memory size (file bytes plus .bss).\npub const MEMSZ: u64 = {};", b.memsz).unwrap();
    for ((sym, c), off) in spec.syms.iter().zip(&b.syms) {
        writeln!(s, "/// Offset of `{sym}`.\npub const {c}: u64 = {off};").unwrap();
    }
    writeln!(s, "/// (offset, addend): store base + addend as a u64 at offset.").unwrap();
    write!(s, "pub static RELOCS: &[(u64, i64)] = &[").unwrap();
    for (o, a) in &b.relocs {
        write!(s, "({o}, {a}), ").unwrap();
    }
    writeln!(s, "];").unwrap();
    s
}
