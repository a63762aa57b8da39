//! Build-script part that turns `parasite/` into the blob compel injects.
//!
//! Steps: compile `parasite/src/lib.rs` with the same stable `rustc` cargo
//! uses (a PIE `staticlib`, no std, panic=abort, no `-Z` flags, no extra
//! rustup target), link it with `cc -static-pie` and `parasite/parasite.ld`
//! into an ELF whose first PT_LOAD (at address 0) is the blob, then read that
//! ELF with goblin and emit `OUT_DIR/parasite_blob.rs`: the blob bytes, its
//! in-memory size, the entry/trap offsets and the `R_X86_64_RELATIVE`
//! relocations. Any other relocation, a PLT relocation or an undefined symbol
//! fails the build; panic or formatting machinery in the blob only warns.
//! Targets other than x86_64 get an empty blob (`SUPPORTED = false`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use goblin::elf::{program_header::PT_LOAD, reloc::R_X86_64_RELATIVE, section_header::SHN_UNDEF, Elf};

const ENTRY_SYM: &str = "parasite_entry";
const TRAP_SYM: &str = "parasite_trap";

/// Compile, link and extract the parasite; writes `OUT_DIR/parasite_blob.rs`.
pub fn build() {
    println!("cargo:rerun-if-changed=parasite");
    println!("cargo:rerun-if-changed=build/parasite.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let generated = out.join("parasite_blob.rs");
    if arch != "x86_64" || os != "linux" {
        std::fs::write(&generated, unsupported()).expect("write parasite_blob.rs");
        return;
    }

    let dir = out.join("parasite");
    std::fs::create_dir_all(&dir).expect("create parasite out dir");
    let lib = dir.join("libparasite.a");
    let elf_path = dir.join("parasite.elf");
    compile(&lib);
    link(&lib, &elf_path);
    let bytes = std::fs::read(&elf_path).expect("read parasite.elf");
    let blob = extract(&bytes).unwrap_or_else(|e| panic!("parasite blob: {e}"));
    let bin = dir.join("parasite.bin");
    std::fs::write(&bin, &blob.bytes).expect("write parasite.bin");
    std::fs::write(&generated, blob.render(&bin)).expect("write parasite_blob.rs");
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !status.success() {
        panic!("{what} failed ({status}): {cmd:?}");
    }
}

fn compile(lib: &Path) {
    // Use the compiler cargo uses (not a wrapper such as sccache).
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition=2024", "--crate-type=staticlib", "--crate-name=parasite"])
        .args(["--target=x86_64-unknown-linux-gnu"])
        .args(["-C", "relocation-model=pie", "-C", "code-model=small", "-C", "panic=abort"])
        .args(["-C", "opt-level=2", "-C", "lto=fat", "-C", "codegen-units=1"])
        .args(["-C", "force-unwind-tables=no", "-C", "debuginfo=0", "-C", "target-cpu=x86-64"])
        .arg("-o")
        .arg(lib)
        .arg("parasite/src/lib.rs")
        // Flags cargo meant for the crate must not leak into the blob.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    run(&mut cmd, "compiling the parasite");
}

fn link(lib: &Path, elf: &Path) {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let mut cmd = Command::new(cc);
    cmd.args(["-nostdlib", "-nostartfiles", "-static-pie", "-Wl,--no-dynamic-linker"])
        .args(["-Wl,-z,norelro", "-Wl,-z,noexecstack", "-Wl,--gc-sections", "-Wl,--build-id=none"])
        .args(["-Wl,--no-warn-rwx-segments", "-Wl,--no-undefined"])
        .arg(format!("-Wl,-u,{ENTRY_SYM}"))
        .arg("-Wl,-T,parasite/parasite.ld")
        .arg("-o")
        .arg(elf)
        .arg(lib);
    run(&mut cmd, "linking the parasite");
}

/// What build.rs takes out of the linked ELF.
pub struct Blob {
    pub bytes: Vec<u8>,
    pub memsz: u64,
    pub entry: u64,
    pub trap: u64,
    /// (offset, addend) of each R_X86_64_RELATIVE slot.
    pub relocs: Vec<(u64, i64)>,
}

/// Pull the blob out of the linked ELF, checking it is self-contained.
pub fn extract(bytes: &[u8]) -> Result<Blob, String> {
    let elf = Elf::parse(bytes).map_err(|e| format!("parse ELF: {e}"))?;
    let ph = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == PT_LOAD && p.p_vaddr == 0)
        .ok_or("no PT_LOAD at address 0")?;
    let start = ph.p_offset as usize;
    let data = bytes.get(start..start + ph.p_filesz as usize).ok_or("segment past end of file")?;
    let memsz = ph.p_memsz;

    let (mut entry, mut trap) = (None, None);
    let mut heavy = Vec::new();
    for sym in elf.syms.iter() {
        let name = elf.strtab.get_at(sym.st_name).unwrap_or("");
        if sym.st_shndx == SHN_UNDEF as usize && !name.is_empty() {
            return Err(format!("undefined symbol {name}"));
        }
        match name {
            ENTRY_SYM => entry = Some(sym.st_value),
            TRAP_SYM => trap = Some(sym.st_value),
            _ => {}
        }
        if name.contains("panic") && name != "rust_begin_unwind" || name.contains("3fmt") {
            heavy.push(name.to_string());
        }
    }
    for name in heavy {
        println!("cargo:warning=parasite blob pulls in panic/fmt machinery ({name}): look for a panicking path");
    }
    let entry = entry.ok_or("no parasite_entry symbol")?;
    let trap = trap.ok_or("no parasite_trap symbol")?;
    if entry >= memsz || trap >= memsz {
        return Err("entry/trap outside the blob".into());
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
    Ok(Blob { bytes: data.to_vec(), memsz, entry, trap, relocs })
}

impl Blob {
    fn render(&self, bin: &Path) -> String {
        let mut s = String::new();
        writeln!(s, "// Generated by build/parasite.rs: do not edit.").unwrap();
        writeln!(s, "/// The parasite is built for this target.").unwrap();
        writeln!(s, "pub const SUPPORTED: bool = true;").unwrap();
        writeln!(s, "/// File bytes of the blob (load at any page-aligned base).").unwrap();
        writeln!(s, "pub static BYTES: &[u8] = include_bytes!({:?});", bin.display().to_string()).unwrap();
        writeln!(s, "/// In-memory size (file bytes plus .bss).").unwrap();
        writeln!(s, "pub const MEMSZ: u64 = {};", self.memsz).unwrap();
        writeln!(s, "/// Offset of the entry stub.").unwrap();
        writeln!(s, "pub const ENTRY: u64 = {};", self.entry).unwrap();
        writeln!(s, "/// Offset of the int3 after the call (reached only if main returns).").unwrap();
        writeln!(s, "pub const TRAP: u64 = {};", self.trap).unwrap();
        writeln!(s, "/// (offset, addend): store base + addend as a u64 at offset.").unwrap();
        write!(s, "pub static RELOCS: &[(u64, i64)] = &[").unwrap();
        for (o, a) in &self.relocs {
            write!(s, "({o}, {a}), ").unwrap();
        }
        writeln!(s, "];").unwrap();
        s
    }
}

fn unsupported() -> String {
    "// Generated by build/parasite.rs: no parasite for this target.\n\
     pub const SUPPORTED: bool = false;\n\
     pub static BYTES: &[u8] = &[];\n\
     pub const MEMSZ: u64 = 0;\n\
     pub const ENTRY: u64 = 0;\n\
     pub const TRAP: u64 = 0;\n\
     pub static RELOCS: &[(u64, i64)] = &[];\n"
        .to_string()
}
