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
