//! Regular files (and the char devices CRIU records the same way, such as
//! /dev/null): the reg_file_entry a dump writes, and the checks a restore
//! makes against it.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use super::elf;
use crate::images::pb::{FownEntry, RegFileEntry};

/// What a dump records of a regular file opened (or mapped) by a task.
pub fn entry(id: u32, name: &str, file: &File, flags: u32, pos: u64) -> Result<RegFileEntry> {
    if name.ends_with(" (deleted)") {
        bail!("file {name} is unlinked: dumping deleted files (ghost files, --link-remap) is not supported yet");
    }
    if !name.starts_with('/') {
        bail!("file {name:?} has no absolute path");
    }
    let md = file.metadata().with_context(|| format!("can't stat {name}"))?;
    let build_id = if md.file_type().is_file() { elf::build_id(file).unwrap_or_default() } else { Vec::new() };
    Ok(RegFileEntry {
        id,
        flags,
        pos,
        fown: FownEntry::default(),
        name: name.to_string(),
        mnt_id: None,
        size: md.file_type().is_file().then(|| md.size()),
        ext: None,
        mode: Some(md.mode()),
        build_id,
        checksum: None,
        checksum_config: None,
        checksum_parameter: None,
    })
}

/// Open the file of `e` to check it against its record: as an O_PATH fd
/// was (not following a symlink it was opened on), else for reading.
pub fn open_for_check(e: &RegFileEntry) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = e.flags as i32;
    if flags & libc::O_PATH != 0 {
        return std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | (flags & libc::O_NOFOLLOW)).open(&e.name);
    }
    File::open(&e.name)
}

/// What a restore checks of a regular file against its record: still a file
/// of the same type, same size, same ELF build-id (CRIU's default
/// validation). The error names the file and what changed.
pub fn validate(e: &RegFileEntry, file: &File) -> Result<()> {
    let md = file.metadata().with_context(|| format!("can't stat {}", e.name))?;
    if let Some(mode) = e.mode
        && mode & libc::S_IFMT != md.mode() & libc::S_IFMT {
            bail!("{} changed type since dump (mode {:o}, now {:o})", e.name, mode, md.mode());
        }
    if let Some(size) = e.size
        && size != md.size() {
            bail!("{} changed since dump: size {} bytes, now {}", e.name, size, md.size());
        }
    if !e.build_id.is_empty() {
        match elf::build_id(file) {
            Some(id) if id == e.build_id => {}
            Some(_) => bail!("{} changed since dump: its ELF build-id differs", e.name),
            None => bail!("{} changed since dump: it has no ELF build-id now", e.name),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_files_validate_on_this_machine() {
        // The CRIU 4.2 fixtures were dumped on a fresh machine of this kind:
        // their mapped files and binaries are the ones installed here.
        let dir = crate::images::ImageDir::open(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/criu-4.2/sleep"
        )))
        .unwrap();
        let mut r = crate::images::ImageReader::open_kind(&dir, "files.img", crate::images::kind::kinds::files()).unwrap();
        let mut checked = 0;
        while let Some(fe) = r.next_entry().unwrap() {
            let Some(reg) = fe.reg else { continue };
            let f = File::open(&reg.name).unwrap();
            validate(&reg, &f).unwrap_or_else(|e| panic!("{e:#}"));
            if !reg.build_id.is_empty() {
                checked += 1;
            }
        }
        assert!(checked >= 2, "sleep and libc carry build-ids");
        // A changed size is refused, naming the file.
        let mut reg = RegFileEntry { name: "/usr/bin/sleep".into(), size: Some(1), ..Default::default() };
        let e = validate(&reg, &File::open("/usr/bin/sleep").unwrap()).unwrap_err().to_string();
        assert!(e.contains("/usr/bin/sleep changed since dump: size 1 bytes"), "{e}");
        reg.size = None;
        reg.build_id = vec![1, 2, 3, 4, 5];
        let e = validate(&reg, &File::open("/usr/bin/sleep").unwrap()).unwrap_err().to_string();
        assert!(e.contains("build-id differs"), "{e}");
    }

    #[test]
    fn dump_entry_matches_the_fixture_record() {
        let f = File::open("/usr/bin/sleep").unwrap();
        let e = entry(1, "/usr/bin/sleep", &f, 0, 0).unwrap();
        let dir = crate::images::ImageDir::open(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/criu-4.2/sleep"
        )))
        .unwrap();
        let mut r = crate::images::ImageReader::open_kind(&dir, "files.img", crate::images::kind::kinds::files()).unwrap();
        let fx = r.next_entry().unwrap().unwrap().reg.unwrap();
        assert_eq!(fx.name, "/usr/bin/sleep");
        assert_eq!((e.size, e.mode, &e.build_id), (fx.size, fx.mode, &fx.build_id));
    }
}
