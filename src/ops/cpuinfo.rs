//! CPU compatibility: `criu cpuinfo dump|check`, cpuinfo.img written on
//! dump when `--cpu-cap` asks for it, and the checks a restore makes before
//! creating any task: cpuinfo.img against this CPU per `--cpu-cap` (as CRIU
//! 4.2), then the XSAVE features each task's saved FPU state uses against
//! this CPU's XCR0 (refused by name unless `--cpu-cap` drops `fpu`).

use anyhow::{bail, Context, Result};
use tracing::{error, info, warn};

use crate::arch::cpu::{self, CpuInfo, Vendor, NCAPINTS, NCAPINTS_V1};
use crate::images::kind::kinds;
use crate::images::pb::{cpuinfo_x86_entry::Vendor as PbVendor, CpuinfoEntry, CpuinfoX86Entry};
use crate::images::pb::UserX86FpregsEntry;
use crate::images::{ImageDir, ImageReader, ImageWriter};
use crate::opts::{cpu_cap, Opts};

const IMG: &str = "cpuinfo.img";
/// cpuinfo_dump's failure status (it returns -1 from main).
const DUMP_FAILED: i32 = 255;

fn dir_of(opts: &Opts) -> Result<ImageDir> {
    Ok(ImageDir::open(opts.imgs_dir.as_deref().unwrap_or(std::path::Path::new(".")))?)
}

/// `criu cpuinfo dump|check`.
pub fn run(opts: &Opts, args: &[String]) -> Result<i32> {
    match args.first().map(String::as_str) {
        Some("dump") => match dir_of(opts).and_then(|d| write(&d)) {
            Ok(()) => Ok(0),
            Err(e) => {
                error!("{e:#}");
                Ok(DUMP_FAILED)
            }
        },
        Some("check") => {
            let dir = dir_of(opts)?;
            let rt = CpuInfo::probe().map_err(anyhow::Error::msg)?;
            // Nothing asked for: check everything.
            let caps = if opts.cpu_cap == cpu_cap::NONE { cpu_cap::ALL } else { opts.cpu_cap };
            check_image(&dir, &rt, caps)?;
            Ok(0)
        }
        other => bail!("unknown cpuinfo sub-command: {}", other.unwrap_or("")),
    }
}

/// The cpuinfo.img record of `ci`.
pub fn entry(ci: &CpuInfo) -> CpuinfoEntry {
    let x86 = CpuinfoX86Entry {
        vendor_id: match ci.vendor {
            Vendor::Intel => PbVendor::Intel,
            Vendor::Amd => PbVendor::Amd,
        } as i32,
        cpu_family: ci.family,
        model: ci.model,
        stepping: ci.stepping,
        capability_ver: 2,
        capability: ci.caps.to_vec(),
        model_id: (!ci.model_id.is_empty()).then(|| ci.model_id.clone()),
        xfeatures_mask: Some(ci.xfeatures_mask),
        xsave_size: Some(ci.xsave_size),
        xsave_size_max: Some(ci.xsave_size_max),
    };
    CpuinfoEntry { x86_entry: vec![x86], ..Default::default() }
}

/// Write this CPU's cpuinfo.img into `dir`.
pub fn write(dir: &ImageDir) -> Result<()> {
    let ci = CpuInfo::probe().map_err(anyhow::Error::msg)?;
    let mut w = ImageWriter::create(dir, IMG, kinds::cpuinfo())?;
    w.write(&entry(&ci))?;
    w.finish()?;
    info!("cpu: wrote {} ({} family {} model {} stepping {})", dir.display(IMG), ci.model_id, ci.family, ci.model, ci.stepping);
    Ok(())
}

/// On dump: cpuinfo.img when `--cpu-cap` (anything but none) was given.
pub fn dump_if_asked(opts: &Opts, dir: &ImageDir) -> Result<()> {
    if opts.cpu_cap & cpu_cap::IMAGE != 0 { write(dir) } else { Ok(()) }
}

/// The CPU an image's cpuinfo record describes; what the record lacks
/// (old capability words, XSAVE mask and sizes) is taken from `rt`.
pub fn from_entry(e: &CpuinfoEntry, rt: &CpuInfo) -> Result<CpuInfo> {
    if e.x86_entry.len() != 1 {
        bail!("cpu: No x86 related cpuinfo in image, corruption (n_x86_entry = {})", e.x86_entry.len());
    }
    let x = &e.x86_entry[0];
    let vendor = match PbVendor::try_from(x.vendor_id) {
        Ok(PbVendor::Intel) => Vendor::Intel,
        Ok(PbVendor::Amd) => Vendor::Amd,
        _ => bail!("cpu: Unknown cpu vendor {}", x.vendor_id),
    };
    let want = match x.capability_ver {
        1 => NCAPINTS_V1,
        2 => NCAPINTS,
        v => bail!("cpu: Image carries unknown capability version {v}"),
    };
    if x.capability.len() != want {
        bail!("cpu: Image carries {} words while {want} expected", x.capability.len());
    }
    let mut caps = rt.caps;
    caps[..want].copy_from_slice(&x.capability);
    Ok(CpuInfo {
        vendor,
        family: x.cpu_family,
        model: x.model,
        stepping: x.stepping,
        caps,
        model_id: x.model_id.clone().unwrap_or_default(),
        xfeatures_mask: x.xfeatures_mask.unwrap_or(rt.xfeatures_mask),
        xsave_size: x.xsave_size.unwrap_or(rt.xsave_size),
        xsave_size_max: x.xsave_size_max.unwrap_or(rt.xsave_size_max),
    })
}

/// Read `dir`'s cpuinfo.img as a CPU (see [`from_entry`]).
fn read(dir: &ImageDir, rt: &CpuInfo) -> Result<CpuInfo> {
    if !dir.exists(IMG) {
        bail!("cpu: No cpuinfo image");
    }
    let e: CpuinfoEntry = ImageReader::open_kind(dir, IMG, kinds::cpuinfo())?.expect()?;
    from_entry(&e, rt)
}

/// CRIU's cpu_validate_cpuinfo: `dir`'s cpuinfo.img against `rt` under
/// `--cpu-cap` bits `caps`.
pub fn check_image(dir: &ImageDir, rt: &CpuInfo, caps: u32) -> Result<()> {
    let img = read(dir, rt)?;
    cpu::validate(&img, rt, caps).map_err(anyhow::Error::msg)
}

/// The XSAVE components a saved FPU state carries data for (x87 and SSE
/// always, in the legacy area).
pub fn carried_xfeatures(f: &UserX86FpregsEntry) -> u64 {
    let Some(x) = &f.xsave else { return 0b11 };
    let carried = [
        (2, x.ymmh_space.is_empty()),
        (3, x.bndreg_state.is_empty()),
        (4, x.bndcsr_state.is_empty()),
        (5, x.opmask_reg.is_empty()),
        (6, x.zmm_upper.is_empty()),
        (7, x.hi16_zmm.is_empty()),
        (9, x.pkru.is_empty()),
    ];
    carried.iter().filter(|c| !c.1).fold(0b11, |m, c| m | 1 << c.0)
}

/// What stops a saved FPU state from coming back exactly on a CPU with
/// `xcr0`: features it uses (live in xstate_bv, or carried: the task's
/// code picked its instructions by them) that the CPU lacks; else live
/// state the image holds no data for (AMX tiles: CRIU's format has none).
pub fn fpu_problem(f: &UserX86FpregsEntry, xcr0: u64) -> Option<String> {
    let live = f.xsave.as_ref().map_or(0, |x| x.xstate_bv);
    let carried = carried_xfeatures(f);
    let missing = cpu::missing_xfeatures(live | carried, xcr0);
    if missing != 0 {
        let names = cpu::xfeature_names(missing);
        return Some(format!("image needs xsave features {names} that this CPU lacks (XCR0 {xcr0:#x})"));
    }
    let lost = live & xcr0 & !carried;
    (lost != 0).then(|| format!("image marks xsave state {} live but holds no data for it", cpu::xfeature_names(lost)))
}

/// A component the image carries for a feature this CPU has must be
/// exactly this CPU's size (the sizes are architectural: anything else is
/// a damaged image, which CRIU refuses too).
pub fn check_component_sizes(f: &UserX86FpregsEntry, xcr0: u64) -> Result<(), String> {
    let Some(x) = &f.xsave else { return Ok(()) };
    let carried = [
        (2, "ymm", x.ymmh_space.len() * 4),
        (3, "bndregs", x.bndreg_state.len() * 8),
        (4, "bndcsr", x.bndcsr_state.len() * 8),
        (5, "opmask", x.opmask_reg.len() * 8),
        (6, "zmm_hi256", x.zmm_upper.len() * 8),
        (7, "hi16_zmm", x.hi16_zmm.len() * 8),
        (9, "pkru", x.pkru.len() * 4),
    ];
    for (bit, name, bytes) in carried {
        let want = cpu::xfeature_size(bit) as usize;
        if bytes != 0 && xcr0 & (1 << bit) != 0 && bytes != want {
            return Err(format!("xsave component {name} holds {bytes} bytes where this CPU's takes {want}: damaged image"));
        }
    }
    Ok(())
}

/// The first task thread whose saved FPU state this CPU can't take as it
/// is: (core image and task, what is wrong). Images that can't be read
/// are left to the restore proper to report.
fn first_problem(dir: &ImageDir, xcr0: u64) -> Result<Option<(String, String)>> {
    let Ok(tree) = ImageReader::open_kind(dir, "pstree.img", kinds::pstree()).and_then(|mut r| r.all()) else {
        return Ok(None);
    };
    for e in &tree {
        let tids = if e.threads.is_empty() { vec![e.pid] } else { e.threads.clone() };
        for tid in tids {
            let name = kinds::core().file_name(u64::from(tid));
            let Ok(core) = ImageReader::open_kind(dir, &name, kinds::core()).and_then(|mut r| r.expect()) else {
                continue;
            };
            let Some(ti) = &core.thread_info else { continue };
            let who = format!("{name} (task {})", e.pid);
            check_component_sizes(&ti.fpregs, xcr0).map_err(|m| anyhow::anyhow!("{who}: {m}"))?;
            if let Some(p) = fpu_problem(&ti.fpregs, xcr0) {
                return Ok(Some((who, p)));
            }
        }
    }
    Ok(None)
}

/// Before any task is created: cpuinfo.img per `--cpu-cap` as CRIU does,
/// then the saved FPU states against this CPU's XCR0.
pub fn check_restore(opts: &Opts, dir: &ImageDir) -> Result<()> {
    if opts.cpu_cap & cpu_cap::IMAGE != 0 {
        let rt = CpuInfo::probe().map_err(anyhow::Error::msg)?;
        check_image(dir, &rt, opts.cpu_cap)?;
    }
    let xcr0 = cpu::xcr0();
    let mut problem = first_problem(dir, xcr0)?;
    if problem.is_none() && dir.exists(IMG) {
        // The dumping CPU's features, when it recorded them: its tasks
        // may have picked instructions by them.
        if let Ok(mask) = ImageReader::open_kind(dir, IMG, kinds::cpuinfo())
            .and_then(|mut r| r.expect())
            .map(|e| e.x86_entry.first().and_then(|x| x.xfeatures_mask).unwrap_or(0))
        {
            let missing = cpu::missing_xfeatures(mask, xcr0);
            if missing != 0 {
                let names = cpu::xfeature_names(missing);
                problem = Some((IMG.to_string(), format!("image needs xsave features {names} that this CPU lacks (XCR0 {xcr0:#x})")));
            }
        }
    }
    let Some((who, what)) = problem else { return Ok(()) };
    if opts.cpu_cap & cpu_cap::FPU == 0 {
        warn!("{who}: {what}; restoring what this CPU can hold, as --cpu-cap asks");
        return Ok(());
    }
    Err(anyhow::anyhow!("{who}: {what}; nothing was restored (--cpu-cap=none restores without that state)"))
        .context("restore refused: CPU incompatible with the images")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::pb::UserX86XsaveEntry;

    fn fpregs(xstate_bv: u64, opmask: bool, pkru: bool) -> UserX86FpregsEntry {
        let x = UserX86XsaveEntry {
            xstate_bv,
            ymmh_space: vec![0; 64],
            opmask_reg: if opmask { vec![0; 8] } else { Vec::new() },
            zmm_upper: if opmask { vec![0; 64] } else { Vec::new() },
            hi16_zmm: if opmask { vec![0; 128] } else { Vec::new() },
            pkru: if pkru { vec![0x5555_5554, 0] } else { Vec::new() },
            ..Default::default()
        };
        UserX86FpregsEntry { xsave: Some(x), ..Default::default() }
    }

    #[test]
    fn avx512_image_on_an_avx_cpu_is_refused_by_name() {
        let p = fpu_problem(&fpregs(0xa3, true, false), 0x7).unwrap();
        assert_eq!(p, "image needs xsave features avx512 (opmask, zmm_hi256, hi16_zmm) that this CPU lacks (XCR0 0x7)");
        // Carried but in the init state still counts: the code chose AVX-512.
        assert!(fpu_problem(&fpregs(0x7, true, false), 0x7).unwrap().contains("avx512 (opmask, zmm_hi256, hi16_zmm)"));
        assert!(fpu_problem(&fpregs(0x3, false, true), 0xe7).unwrap().contains("pku (pkru)"));
    }

    #[test]
    fn subsets_restore() {
        assert_eq!(fpu_problem(&fpregs(0xa3, true, false), 0xe7), None);
        assert_eq!(fpu_problem(&fpregs(0x7, false, false), 0x2e7), None);
        assert_eq!(fpu_problem(&UserX86FpregsEntry::default(), 0x3), None);
    }

    #[test]
    fn live_state_without_data_is_named() {
        // AMX tiles live on an AMX CPU: the image has nowhere to hold them.
        let p = fpu_problem(&fpregs(0x6_0003, false, false), 0x6_02e7).unwrap();
        assert_eq!(p, "image marks xsave state amx (xtile_cfg, xtile_data) live but holds no data for it");
    }
}
