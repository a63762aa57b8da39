//! Build-script part that turns `parasite/src/restorer.rs` into the blob
//! the last stage of a restore jumps into (see `src/restorer/`).
//!
//! Same pipeline as the parasite (`build/parasite.rs`): the stable rustc
//! compiles a PIE `staticlib` (no std, panic=abort), `cc -static-pie` links
//! it with `parasite/restorer.ld` so the first PT_LOAD (at address 0) is the
//! blob, and goblin reads the ELF back. Emits `OUT_DIR/restorer_blob.rs`:
//! the bytes, the in-memory size, the offsets of `restorer_entry`,
//! `restorer_trap`, `restorer_sync` (the int3 the cleaner waits for) and
//! `restorer_syscall` (a `syscall` instruction the cleaner borrows), and
//! the `R_X86_64_RELATIVE` slots. Anything else to relocate, a PLT slot or
//! an undefined symbol fails the build; panic/fmt machinery only warns.
//! Targets other than x86_64 Linux get an empty blob (`SUPPORTED = false`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use goblin::elf::{program_header::PT_LOAD, reloc::R_X86_64_RELATIVE, section_header::SHN_UNDEF, Elf};

const SYMS: [&str; 4] = ["restorer_entry", "restorer_trap", "restorer_sync", "restorer_syscall"];

/// Compile, link and extract the restorer; writes `OUT_DIR/restorer_blob.rs`.
pub fn build() {
    for p in ["parasite/src/restorer.rs", "parasite/src/restorer_proto.rs", "parasite/src/mem.rs", "parasite/restorer.ld"] {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=build/restorer.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let generated = out.join("restorer_blob.rs");
    if arch != "x86_64" || os != "linux" {
        std::fs::write(&generated, render(None)).expect("write restorer_blob.rs");
        return;
    }
    let dir = out.join("restorer");
    std::fs::create_dir_all(&dir).expect("create restorer out dir");
    let lib = dir.join("librestorer.a");
    let elf_path = dir.join("restorer.elf");
    compile(&lib);
    link(&lib, &elf_path);
    let bytes = std::fs::read(&elf_path).expect("read restorer.elf");
    let blob = extract(&bytes).unwrap_or_else(|e| panic!("restorer blob: {e}"));
    let bin = dir.join("restorer.bin");
    std::fs::write(&bin, &blob.bytes).expect("write restorer.bin");
    std::fs::write(&generated, render(Some((&blob, &bin)))).expect("write restorer_blob.rs");
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !status.success() {
        panic!("{what} failed ({status}): {cmd:?}");
    }
}

fn compile(lib: &Path) {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition=2024", "--crate-type=staticlib", "--crate-name=restorer"])
        .args(["--target=x86_64-unknown-linux-gnu"])
        .args(["-C", "relocation-model=pie", "-C", "code-model=small", "-C", "panic=abort"])
        .args(["-C", "opt-level=2", "-C", "lto=fat", "-C", "codegen-units=1"])
        .args(["-C", "force-unwind-tables=no", "-C", "debuginfo=0", "-C", "target-cpu=x86-64"])
        .arg("-o")
        .arg(lib)
        .arg("parasite/src/restorer.rs")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    run(&mut cmd, "compiling the restorer");
}

fn link(lib: &Path, elf: &Path) {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let mut cmd = Command::new(cc);
    cmd.args(["-nostdlib", "-nostartfiles", "-static-pie", "-Wl,--no-dynamic-linker"])
        .args(["-Wl,-z,norelro", "-Wl,-z,noexecstack", "-Wl,--gc-sections", "-Wl,--build-id=none"])
        .args(["-Wl,--no-warn-rwx-segments", "-Wl,--no-undefined"])
        .arg("-Wl,-u,restorer_entry")
        .arg("-Wl,-T,parasite/restorer.ld")
        .arg("-o")
        .arg(elf)
        .arg(lib);
    run(&mut cmd, "linking the restorer");
}

struct Blob {
    bytes: Vec<u8>,
    memsz: u64,
    /// Offsets of [`SYMS`], in that order.
    syms: [u64; 4],
    relocs: Vec<(u64, i64)>,
}

fn extract(bytes: &[u8]) -> Result<Blob, String> {
    let elf = Elf::parse(bytes).map_err(|e| format!("parse ELF: {e}"))?;
    let ph = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == PT_LOAD && p.p_vaddr == 0)
        .ok_or("no PT_LOAD at address 0")?;
    let start = ph.p_offset as usize;
    let data = bytes.get(start..start + ph.p_filesz as usize).ok_or("segment past end of file")?;
    let mut syms = [None; 4];
    for sym in elf.syms.iter() {
        let name = elf.strtab.get_at(sym.st_name).unwrap_or("");
        if sym.st_shndx == SHN_UNDEF as usize && !name.is_empty() {
            return Err(format!("undefined symbol {name}"));
        }
        if let Some(i) = SYMS.iter().position(|s| *s == name) {
            syms[i] = Some(sym.st_value);
        }
        if name.contains("panic") && name != "rust_begin_unwind" || name.contains("3fmt") {
            println!("cargo:warning=restorer blob pulls in panic/fmt machinery ({name}): look for a panicking path");
        }
    }
    let mut offs = [0u64; 4];
    for (i, s) in syms.iter().enumerate() {
        offs[i] = s.ok_or_else(|| format!("no {} symbol", SYMS[i]))?;
        if offs[i] >= ph.p_filesz {
            return Err(format!("{} outside the blob", SYMS[i]));
        }
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
    Ok(Blob { bytes: data.to_vec(), memsz: ph.p_memsz, syms: offs, relocs })
}

fn render(blob: Option<(&Blob, &Path)>) -> String {
    let mut s = String::new();
    writeln!(s, "// Generated by build/restorer.rs: do not edit.").unwrap();
    let Some((b, bin)) = blob else {
        s.push_str(
            "pub const SUPPORTED: bool = false;\npub static BYTES: &[u8] = &[];\npub const MEMSZ: u64 = 0;\n\
             pub const ENTRY: u64 = 0;\npub const TRAP: u64 = 0;\npub const SYNC: u64 = 0;\npub const SYSCALL: u64 = 0;\n\
             pub static RELOCS: &[(u64, i64)] = &[];\n",
        );
        return s;
    };
    writeln!(s, "pub const SUPPORTED: bool = true;").unwrap();
    writeln!(s, "pub static BYTES: &[u8] = include_bytes!({:?});", bin.display().to_string()).unwrap();
    writeln!(s, "pub const MEMSZ: u64 = {};", b.memsz).unwrap();
    for (name, off) in ["ENTRY", "TRAP", "SYNC", "SYSCALL"].iter().zip(b.syms) {
        writeln!(s, "pub const {name}: u64 = {off};").unwrap();
    }
    write!(s, "pub static RELOCS: &[(u64, i64)] = &[").unwrap();
    for (o, a) in &b.relocs {
        write!(s, "({o}, {a}), ").unwrap();
    }
    writeln!(s, "];").unwrap();
    s
}
