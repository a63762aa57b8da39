//! The vDSO across a restore: the image's (its [vdso] pages from the
//! pages image, its vvar area) against ours (the running kernel's [vvar] +
//! [vvar_vclock] + [vdso] block), and what the restore does about it.
//!
//! When the image's vDSO is ours byte for byte (every page it holds; the
//! dump stores the vDSO whole, CRIU's and ours) and its vvar sits where
//! ours would, our block is moved where the image had it ("remap"). Else
//! the image's vDSO is restored as ordinary memory at its address, every
//! exported function of it patched to jump to the same-named function of
//! ours, and our block goes, as one piece, to a free hole ("proxy"). The
//! decision is made by criu before any task exists (a function ours lacks
//! is refused there, by name); `premap` writes the jumps into the
//! premapped copy, so the restorer blob only moves areas, as always.

pub mod elf;

use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use super::vma::status;
use crate::images::pagemap::{Pagemap, PAGE_SIZE};
use crate::images::pb::{MmEntry, VmaEntry};
use crate::images::ImageDir;
use crate::proc::maps::MapEntry;
use elf::VdsoElf;

/// The running kernel's vDSO block, as this process has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// [vdso]: (start, len).
    pub vdso: (u64, u64),
    /// [vvar] through [vvar_vclock]: (start, len).
    pub vvar: Option<(u64, u64)>,
    /// The [vdso] contents.
    pub bytes: Vec<u8>,
}

impl Runtime {
    /// Ours (None when the kernel gives processes no vDSO).
    pub fn current() -> Result<Option<Runtime>> {
        let own = crate::proc::maps::read(std::process::id() as i32).context("reading our own mappings")?;
        let Some((vdso, vvar)) = block(&own) else { return Ok(None) };
        let mut bytes = vec![0u8; vdso.1 as usize];
        let mem = std::fs::File::open("/proc/self/mem").context("opening /proc/self/mem")?;
        mem.read_exact_at(&mut bytes, vdso.0).with_context(|| format!("reading our vDSO at {:#x}", vdso.0))?;
        Ok(Some(Runtime { vdso, vvar, bytes }))
    }
}

/// (start, len) of an area.
pub type Area = (u64, u64);

/// Our [vdso] and the [vvar]..[vvar_vclock] area before or after it, from
/// our mappings.
pub fn block(own: &[MapEntry]) -> Option<(Area, Option<Area>)> {
    let vdso = own.iter().find(|m| m.name == "[vdso]")?;
    let vvars = || own.iter().filter(|m| m.name == "[vvar]" || m.name == "[vvar_vclock]");
    let vvar = vvars().map(|m| m.start).min().zip(vvars().map(|m| m.end).max()).map(|(s, e)| (s, e - s));
    Some(((vdso.start, vdso.len()), vvar))
}

/// The image's vDSO: where it and its vvar were, and its pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageVdso {
    /// [vdso]: (start, end).
    pub vdso: (u64, u64),
    /// Its vvar VMAs joined: (start, end).
    pub vvar: Option<(u64, u64)>,
    pub bytes: Vec<u8>,
    /// Offsets of the pages the image does not hold.
    pub missing: Vec<u64>,
}

/// The image's vvar VMAs joined: (start, end).
pub fn vvar_of(vmas: &[VmaEntry]) -> Option<(u64, u64)> {
    let v = || vmas.iter().filter(|v| v.status & status::AREA_VVAR != 0);
    v().map(|v| v.start).min().zip(v().map(|v| v.end).max())
}

/// The image's vDSO of task `pid`, read from its pages (None: it had none).
pub fn image_vdso(mm: &MmEntry, dir: &ImageDir, pid: u64) -> Result<Option<ImageVdso>> {
    let Some(v) = mm.vmas.iter().find(|v| v.status & status::AREA_VDSO != 0) else { return Ok(None) };
    let (start, end) = (v.start, v.end);
    if end <= start || end - start > 64 * PAGE_SIZE || start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 {
        bail!("mm-{pid}.img: the vDSO VMA {start:#x}-{end:#x} is not a plausible vDSO");
    }
    let pm = Pagemap::read(dir, pid)?;
    let pages_name = crate::images::pagemap::pages_file_name(pm.head.pages_id);
    let pages = dir.open_file(&pages_name)?;
    let mut bytes = vec![0u8; (end - start) as usize];
    let mut have = vec![false; ((end - start) / PAGE_SIZE) as usize];
    // Only the vDSO's pages are read here (a pages file cut short past
    // them is the task's restore to report, when it fills its memory).
    for run in pm.runs(&format!("pagemap-{pid}.img"), u64::MAX)? {
        let Some(off) = run.pages_offset else { continue };
        let (s, e) = (run.vaddr.max(start), (run.vaddr + run.len()).min(end));
        if s >= e {
            continue;
        }
        let dst = &mut bytes[(s - start) as usize..(e - start) as usize];
        pages
            .read_exact_at(dst, off + (s - run.vaddr))
            .with_context(|| format!("reading the vDSO pages of task {pid} from {pages_name}"))?;
        for p in (s - start) / PAGE_SIZE..(e - start) / PAGE_SIZE {
            have[p as usize] = true;
        }
    }
    let missing = have.iter().enumerate().filter(|(_, h)| !**h).map(|(i, _)| i as u64 * PAGE_SIZE).collect();
    Ok(Some(ImageVdso { vdso: (start, end), vvar: vvar_of(&mm.vmas), bytes, missing }))
}

/// One jump to write over the image's vDSO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Offset of the function in the image's vDSO.
    pub offset: u64,
    /// Offset of the same-named function in ours.
    pub target: u64,
    /// Its names (aliases share the entry).
    pub names: Vec<String>,
}

/// How a task gets its vDSO.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum VdsoPlan {
    /// The image has none (ours goes with criu's other mappings).
    #[default]
    None,
    /// Ours is the image's: move our block where the image had it.
    Remap,
    /// The image's vDSO, restored as memory, proxies to ours.
    Proxy(Vec<Patch>),
}

/// Whether our block can stand in for the image's as it is: the same
/// vDSO bytes (every page the image holds, the ELF header page among
/// them) and the same vvar size and distance to the vDSO.
fn same(img: &ImageVdso, rt: &Runtime) -> bool {
    let len = img.vdso.1 - img.vdso.0;
    if len != rt.vdso.1 || img.missing.contains(&0) {
        return false;
    }
    let pages_equal = img
        .bytes
        .chunks(PAGE_SIZE as usize)
        .zip(rt.bytes.chunks(PAGE_SIZE as usize))
        .enumerate()
        .all(|(i, (a, b))| img.missing.contains(&(i as u64 * PAGE_SIZE)) || a == b);
    let vvar_equal = match (img.vvar, rt.vvar) {
        (None, None) => true,
        (Some((s, e)), Some((rs, rl))) => e - s == rl && img.vdso.0.wrapping_sub(s) == rt.vdso.0.wrapping_sub(rs),
        _ => false,
    };
    pages_equal && vvar_equal
}

/// Decide for task `pid` (named in errors).
pub fn decide(img: Option<&ImageVdso>, rt: Option<&Runtime>, pid: u64) -> Result<VdsoPlan> {
    let Some(img) = img else { return Ok(VdsoPlan::None) };
    let Some(rt) = rt else {
        bail!("task {pid} had a vDSO at {:#x}; this kernel gives processes none (vdso=0?)", img.vdso.0)
    };
    if same(img, rt) {
        return Ok(VdsoPlan::Remap);
    }
    if let Some(p) = img.missing.first() {
        bail!(
            "task {pid}: the vDSO at {:#x} differs from this kernel's and the image lacks its page at {:#x}: it can't be restored as a proxy",
            img.vdso.0,
            img.vdso.0 + p
        );
    }
    let theirs = elf::parse(&img.bytes).with_context(|| format!("task {pid}: the image's vDSO at {:#x}", img.vdso.0))?;
    let ours = elf::parse(&rt.bytes).context("this kernel's vDSO")?;
    let patches = plan_patches(&theirs, &ours, crate::arch::VDSO_JUMP_LEN as u64)
        .with_context(|| format!("task {pid}: the vDSO at {:#x} (dumped on another kernel) can't proxy to this kernel's", img.vdso.0))?;
    Ok(VdsoPlan::Proxy(patches))
}

/// The jumps that make `theirs` call into `ours`: one per exported entry
/// (aliases patched once), each checked to fit before the next exported
/// symbol and the end of the code holding it.
pub fn plan_patches(theirs: &VdsoElf, ours: &VdsoElf, jump_len: u64) -> Result<Vec<Patch>> {
    let mut out: Vec<Patch> = Vec::new();
    let mut offsets: Vec<u64> = theirs.symbols.iter().map(|s| s.offset).collect();
    offsets.dedup();
    for (i, &off) in offsets.iter().enumerate() {
        let aliases: Vec<&elf::Symbol> = theirs.symbols.iter().filter(|s| s.offset == off).collect();
        let mut target = None;
        for s in &aliases {
            let t = ours.find(&s.name, s.version.as_deref()).with_context(|| {
                format!("the image's vDSO exports {}{}, this kernel's vDSO does not", s.name, version_suffix(s))
            })?;
            if ours.text_at(t.offset).is_none() {
                bail!("this kernel's vDSO symbol {} at {:#x} is outside its code", t.name, t.offset);
            }
            target.get_or_insert(t.offset);
        }
        let name = &aliases[0].name;
        let (_, text_end) = theirs
            .text_at(off)
            .with_context(|| format!("the image's vDSO symbol {name} at {off:#x} is outside its code"))?;
        let limit = offsets.get(i + 1).map_or(text_end, |&n| n.min(text_end));
        if off + jump_len > limit {
            bail!(
                "the image's vDSO symbol {name} at {off:#x} has {} bytes before the next symbol or the end of the code, the jump needs {jump_len}",
                limit - off
            );
        }
        out.push(Patch {
            offset: off,
            target: target.unwrap_or_default(),
            names: aliases.iter().map(|s| s.name.clone()).collect(),
        });
    }
    Ok(out)
}

fn version_suffix(s: &elf::Symbol) -> String {
    s.version.as_ref().map_or(String::new(), |v| format!("@{v}"))
}

/// The jumps of `patches` for our vDSO placed at `vdso_at`, as (offset
/// into the image's vDSO, bytes).
pub fn jumps(patches: &[Patch], vdso_at: u64) -> Vec<(u64, Vec<u8>)> {
    patches.iter().map(|p| (p.offset, crate::arch::vdso_jump(vdso_at + p.target).to_vec())).collect()
}

#[cfg(test)]
mod tests;
