//! CPU compatibility end to end: `criu cpuinfo dump` then `check` pass on
//! the same machine and refuse an image claiming what this CPU lacks, with
//! CRIU 4.2's messages and exit codes (and CRIU 4.2 itself agrees, when its
//! binary is here); `--cpu-cap` on dump writes cpuinfo.img; a restore whose
//! saved FPU state needs XSAVE features this CPU lacks is refused by name
//! before any task exists, and `--cpu-cap=none` restores it as CRIU does.

mod common;

use std::path::Path;

use common::*;
use criu::images::kind::kinds;
use criu::images::pb::{CoreEntry, CpuinfoEntry};
use criu::images::{ImageDir, ImageReader, ImageWriter};

fn read_cpuinfo(dir: &Path) -> CpuinfoEntry {
    let d = ImageDir::open(dir).unwrap();
    ImageReader::open_kind(&d, "cpuinfo.img", kinds::cpuinfo()).unwrap().expect().unwrap()
}

fn write_cpuinfo(dir: &Path, e: &CpuinfoEntry) {
    std::fs::create_dir_all(dir).unwrap();
    let d = ImageDir::open(dir).unwrap();
    let mut w = ImageWriter::create(&d, "cpuinfo.img", kinds::cpuinfo()).unwrap();
    w.write(e).unwrap();
    w.finish().unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `criu cpuinfo check -D dir extra...`: (exit code, stderr).
fn check(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["cpuinfo", "check", "-D", s(dir)];
    args.extend(extra);
    let o = criu(&args);
    (o.status.code(), text(&o.stderr))
}

/// An instruction-set bit (word, bit) the `--cpu-cap=ins` check looks at
/// and this CPU lacks: XOP, FMA4, TBM, 3DNow, AVX512PF/ER, 4VNNIW/4FMAPS.
fn lacking_ins_bit(caps: &[u32]) -> Option<(usize, u32)> {
    [(6, 11), (6, 16), (6, 21), (1, 31), (1, 30), (9, 26), (9, 27), (18, 2), (18, 3)]
        .into_iter()
        .find(|&(w, b)| caps[w] & (1 << b) == 0)
}

#[test]
fn cpuinfo_dump_then_check_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    let o = criu(&["cpuinfo", "dump", "-D", s(&ours)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let e = read_cpuinfo(&ours);
    let x = &e.x86_entry[0];
    assert_eq!((x.capability_ver, x.capability.len()), (2, 19));
    assert!(x.xsave_size.is_some() && x.xfeatures_mask.is_some() && x.xsave_size_max.is_some());
    for caps in [&[][..], &["--cpu-cap=none"], &["--cpu-cap"], &["--cpu-cap=fpu"], &["--cpu-cap=ins"], &["--cpu-cap=cpu"]] {
        assert_eq!(check(&ours, caps), (Some(0), String::new()), "check {caps:?}");
    }

    // An XSAVE feature no cpuinfo mask can hold (AMX tile state).
    let mut amx = e.clone();
    let mask = x.xfeatures_mask.unwrap();
    amx.x86_entry[0].xfeatures_mask = Some(mask | 0x6_0000);
    let d = tmp.path().join("amx");
    write_cpuinfo(&d, &amx);
    let (code, err) = check(&d, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cpu: CPU xfeatures has unsupported bits (0x60000)"), "{err}");
    // Without fpu the XSAVE mask is not looked at.
    assert_eq!(check(&d, &["--cpu-cap=^fpu"]).0, Some(0));

    // An instruction set this CPU lacks: ins and cpu see it, fpu does not.
    match lacking_ins_bit(&x.capability) {
        None => println!("skipped the instruction-bit case: this CPU has every candidate bit"),
        Some((w, b)) => {
            let mut ins = e.clone();
            ins.x86_entry[0].capability[w] |= 1 << b;
            let d = tmp.path().join("ins");
            write_cpuinfo(&d, &ins);
            for caps in [&[][..], &["--cpu-cap=none"], &["--cpu-cap=ins"]] {
                let (code, err) = check(&d, caps);
                assert_eq!(code, Some(1), "{caps:?}");
                assert!(err.contains("cpu: CPU instruction capabilities do not match run time"), "{caps:?}: {err}");
            }
            let (code, err) = check(&d, &["--cpu-cap=^all,cpu"]);
            assert_eq!(code, Some(1));
            assert!(err.contains("cpu: CPU capabilities do not match run time"), "{err}");
            assert_eq!(check(&d, &["--cpu-cap=^ins"]).0, Some(0));
        }
    }

    // Format errors, worded as CRIU.
    let mut v3 = e.clone();
    v3.x86_entry[0].capability_ver = 3;
    let d = tmp.path().join("v3");
    write_cpuinfo(&d, &v3);
    let (code, err) = check(&d, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cpu: Image carries unknown capability version 3"), "{err}");
    let mut short = e.clone();
    short.x86_entry[0].capability.truncate(12);
    let d = tmp.path().join("short");
    write_cpuinfo(&d, &short);
    assert!(check(&d, &[]).1.contains("cpu: Image carries 12 words while 19 expected"));
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, err) = check(&empty, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cpu: No cpuinfo image"), "{err}");
    let o = criu(&["cpuinfo"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("cpuinfo requires an action: dump or check"));
}

#[test]
fn criu_4_2_and_we_read_each_others_cpuinfo() {
    let Some(oracle) = criu42() else {
        println!("skipped: no CRIU 4.2 binary at ../shared/tools/criu-4.2/criu");
        return;
    };
    let run42 = |args: &[&str]| std::process::Command::new(&oracle).args(args).output().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
    std::fs::create_dir(&ours).unwrap();
    std::fs::create_dir(&theirs).unwrap();
    assert!(criu(&["cpuinfo", "dump", "-D", s(&ours)]).status.success());
    let o = run42(&["cpuinfo", "dump", "-D", s(&theirs)]);
    assert!(o.status.success(), "criu 4.2 cpuinfo dump: {}", text(&o.stderr));
    // Same CPU, same walk: the same record, field by field.
    assert_eq!(read_cpuinfo(&ours), read_cpuinfo(&theirs));
    let o = run42(&["cpuinfo", "check", "-D", s(&ours), "--cpu-cap=all"]);
    assert_eq!(o.status.code(), Some(0), "criu 4.2 on our cpuinfo.img: {}", text(&o.stderr));
    assert_eq!(check(&theirs, &["--cpu-cap=all"]), (Some(0), String::new()));

    // Both refuse the same edited image the same way.
    let mut e = read_cpuinfo(&theirs);
    let mask = e.x86_entry[0].xfeatures_mask.unwrap();
    e.x86_entry[0].xfeatures_mask = Some(mask | 0x6_0000);
    let d = tmp.path().join("amx");
    write_cpuinfo(&d, &e);
    let o = run42(&["cpuinfo", "check", "-D", s(&d)]);
    let (code, err) = check(&d, &[]);
    assert_eq!(o.status.code(), code);
    let theirs_msg = text(&o.stderr);
    let msg = "cpu: CPU xfeatures has unsupported bits (0x60000)";
    assert!(theirs_msg.contains(msg) && err.contains(msg), "criu 4.2: {theirs_msg}\nours: {err}");
}

/// The XSAVE features to claim this CPU lacks: AMX tile state, else PKRU,
/// AVX-512 or MPX, whichever its XCR0 has not.
fn lacking_xfeatures() -> Option<(u64, &'static str)> {
    let xcr0 = criu::sys::x86::xcr0()?;
    [
        (0x6_0000, "amx (xtile_cfg, xtile_data)"),
        (0x200, "pku (pkru)"),
        (0xe0, "avx512 (opmask, zmm_hi256, hi16_zmm)"),
        (0x18, "mpx (bndregs, bndcsr)"),
    ]
    .into_iter()
    .find(|&(m, _)| xcr0 & m == 0)
}

fn edit_core(imgs: &Path, pid: i32, f: impl FnOnce(&mut CoreEntry)) {
    let d = ImageDir::open(imgs).unwrap();
    let name = kinds::core().file_name(pid as u64);
    let mut core: CoreEntry = ImageReader::open_kind(&d, &name, kinds::core()).unwrap().expect().unwrap();
    f(&mut core);
    let mut w = ImageWriter::create(&d, &name, kinds::core()).unwrap();
    w.write(&core).unwrap();
    w.finish().unwrap();
}

#[test]
fn restore_refuses_fpu_state_this_cpu_cannot_hold() {
    let _g = serial();
    let Some((claim, names)) = lacking_xfeatures() else {
        println!("skipped: this CPU has AMX, PKU, AVX-512 and MPX (or no XSAVE): no feature to claim it lacks");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    // --cpu-cap on dump records this CPU, as `cpuinfo dump` does.
    let o = criu(&["dump", "-t", &pid.to_string(), "-D", s(&imgs), "--cpu-cap"]);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    t.reap();
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    assert!(criu(&["cpuinfo", "dump", "-D", s(&mine)]).status.success());
    assert_eq!(read_cpuinfo(&imgs), read_cpuinfo(&mine));

    // The image claims live state for the features this CPU lacks.
    edit_core(&imgs, pid, |c| {
        let x = c.thread_info.as_mut().unwrap().fpregs.xsave.as_mut().expect("an XSAVE area in the image");
        x.xstate_bv |= claim;
    });
    // By default (no cpuinfo check) and with the cpuinfo check passing.
    for caps in [&[][..], &["--cpu-cap=fpu"], &["--cpu-cap=^cpu"]] {
        let mut args = vec!["restore", "-d", "-D", s(&imgs)];
        args.extend(caps);
        let o = criu(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{caps:?}: {err}");
        assert!(err.contains(&format!("core-{pid}.img (task {pid}): image needs xsave features {names} that this CPU lacks")), "{caps:?}: {err}");
        assert!(state(pid).is_none(), "{caps:?}: a task {pid} exists after the refusal");
    }
    // Asking for the cpuinfo check without a cpuinfo.img: refused as CRIU.
    std::fs::remove_file(imgs.join("cpuinfo.img")).unwrap();
    let o = criu(&["restore", "-d", "-D", s(&imgs), "--cpu-cap=all"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("cpu: No cpuinfo image"), "{}", text(&o.stderr));
    assert!(state(pid).is_none());

    // CRIU skips every CPU check with --cpu-cap=none and restores what the
    // image holds for this CPU's features: so do we.
    let o = criu(&["restore", "-d", "-D", s(&imgs), "--cpu-cap=none", "-v3", "-o", "none.log"]);
    let log = std::fs::read_to_string(imgs.join("none.log")).unwrap_or_default();
    assert!(o.status.success(), "restore --cpu-cap=none: {}\n{log}", text(&o.stderr));
    assert!(log.contains(&format!("image needs xsave features {names}")), "{log}");
    assert_eq!(state(pid), Some('S'), "the restored sleep runs");
    kill_and_reap(pid);
}

#[test]
fn restore_refuses_carried_components_this_cpu_lacks() {
    let _g = serial();
    let xcr0 = criu::sys::x86::xcr0().unwrap_or(0b11);
    if xcr0 & 0x200 != 0 {
        println!("skipped: this CPU has PKU (XCR0 {xcr0:#x}): no PKRU component to claim it lacks");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());
    // A PKRU value from a machine with protection keys, in its init state
    // bit-wise (xstate_bv untouched): the value itself would be lost.
    edit_core(&imgs, pid, |c| {
        let x = c.thread_info.as_mut().unwrap().fpregs.xsave.as_mut().unwrap();
        x.pkru = vec![0x5555_5554, 0];
    });
    let o = criu(&["restore", "-d", "-D", s(&imgs)]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("image needs xsave features pku (pkru) that this CPU lacks"), "{err}");
    assert!(state(pid).is_none());
}

/// An image's XSAVE components land in the signal frame at THIS CPU's
/// offsets (AMD and Intel lay AVX-512 out differently: Intel keeps MPX's
/// area before it), in the standard format, within this CPU's XSAVE size.
#[test]
fn image_components_land_at_this_cpus_offsets() {
    use criu::arch::sigframe;
    use criu::images::pb::{UserX86FpregsEntry, UserX86XsaveEntry};
    let Some(xcr0) = criu::sys::x86::xcr0() else {
        println!("skipped: XSAVE is not enabled on this CPU");
        return;
    };
    let x = UserX86XsaveEntry {
        xstate_bv: 0xe7,
        ymmh_space: (0..64).map(|i| 0x1000 + i).collect(),
        opmask_reg: (0..8).map(|i| 0x2000 + i).collect(),
        zmm_upper: (0..64).map(|i| 0x3000 + i).collect(),
        hi16_zmm: (0..128).map(|i| 0x4000 + i).collect(),
        ..Default::default()
    };
    let f = UserX86FpregsEntry {
        cwd: 0x37f,
        mxcsr: 0x1f80,
        st_space: vec![0; 32],
        xmm_space: (0..64).collect(),
        xsave: Some(x),
        ..Default::default()
    };
    let fpu = criu::task::thread_info::fpu_from_image(&f);
    let frame = sigframe::build(&Default::default(), &fpu, 0, 0);
    let fp = &frame[sigframe::FPSTATE_OFFSET as usize..];
    let u32_at = |o: usize| u32::from_le_bytes(fp[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(fp[o..o + 8].try_into().unwrap());
    let xsave_size = core::arch::x86_64::__cpuid_count(0xd, 0).ebx as usize;
    // The software bytes describe a frame no bigger than this CPU's area.
    assert_eq!(u32_at(464), 0x4650_5853);
    let size = u32_at(464 + 16) as usize;
    assert!(size <= xsave_size, "frame xsave size {size} > this CPU's {xsave_size}");
    assert_eq!(u32_at(464 + 4) as usize, size + 4);
    assert_eq!(u32_at(size), 0x4650_5845, "FP_XSTATE_MAGIC2 right after the area");
    assert_eq!(u64_at(512 + 8), 0, "standard format: no XCOMP_BV");
    assert_eq!(u32_at(160 + 4), 1, "xmm1 word");
    let mut checked = Vec::new();
    for (bit, first, words, width) in [(2u32, 0x1000u64, 64usize, 4usize), (5, 0x2000, 8, 8), (6, 0x3000, 64, 8), (7, 0x4000, 128, 8)] {
        if xcr0 & (1 << bit) == 0 {
            continue;
        }
        let off = core::arch::x86_64::__cpuid_count(0xd, bit).ebx as usize;
        for i in [0, words - 1] {
            let v = if width == 4 { u64::from(u32_at(off + 4 * i)) } else { u64_at(off + 8 * i) };
            assert_eq!(v, first + i as u64, "component {bit} word {i} at this CPU's offset {off}");
        }
        assert!(u64_at(512) & (1 << bit) != 0, "component {bit} live in xstate_bv");
        checked.push(bit);
    }
    println!("components checked at this CPU's offsets: {checked:?} (XCR0 {xcr0:#x})");
}

#[test]
fn restore_refuses_a_damaged_xsave_component() {
    let _g = serial();
    let xcr0 = criu::sys::x86::xcr0().unwrap_or(0b11);
    if xcr0 & 0x4 == 0 {
        println!("skipped: no AVX in XCR0 {xcr0:#x}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    let imgs = dump_killed(&mut t, tmp.path());
    edit_core(&imgs, pid, |c| c.thread_info.as_mut().unwrap().fpregs.xsave.as_mut().unwrap().ymmh_space.push(7));
    let o = criu(&["restore", "-d", "-D", s(&imgs), "--cpu-cap=none"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("core-{pid}.img (task {pid}): xsave component ymm holds 260 bytes where this CPU's takes 256")), "{err}");
    assert!(state(pid).is_none());
}

/// CPUINFO_DUMP then CPUINFO_CHECK over `criu swrk`, as a CRIU RPC client
/// would send them; then a check of an image claiming AMX state fails.
#[test]
fn rpc_cpuinfo_dump_and_check() {
    use criu::rpc::pb::{CriuOpts, CriuReq, CriuReqType, CriuResp};
    use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
    use prost::Message;
    use std::os::fd::{AsFd, AsRawFd};

    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    nix::fcntl::fcntl(dir.as_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).unwrap();
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
    nix::fcntl::fcntl(theirs.as_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).unwrap();
    let mut child = common::criu_cmd()
        .args(["--no-default-config", "swrk", &theirs.as_raw_fd().to_string()])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(theirs);
    let ask = |ty: CriuReqType| -> CriuResp {
        let opts = CriuOpts { images_dir_fd: dir.as_raw_fd(), log_file: Some("cpu.log".into()), ..Default::default() };
        let r = CriuReq { r#type: ty as i32, opts: Some(opts), keep_open: Some(true), ..Default::default() };
        send(ours.as_raw_fd(), &r.encode_to_vec(), MsgFlags::empty()).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let n = recv(ours.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        CriuResp::decode(&buf[..n]).unwrap()
    };
    let r = ask(CriuReqType::CpuinfoDump);
    assert!(r.success, "{:?}", r.cr_errmsg);
    assert_eq!(r.r#type, CriuReqType::CpuinfoDump as i32);
    assert!(tmp.path().join("cpuinfo.img").exists());
    let r = ask(CriuReqType::CpuinfoCheck);
    assert!(r.success, "{:?}", r.cr_errmsg);
    let mut e = read_cpuinfo(tmp.path());
    let mask = e.x86_entry[0].xfeatures_mask.unwrap();
    e.x86_entry[0].xfeatures_mask = Some(mask | 0x6_0000);
    write_cpuinfo(tmp.path(), &e);
    let r = ask(CriuReqType::CpuinfoCheck);
    assert!(!r.success);
    assert!(r.cr_errmsg.as_deref().unwrap_or("").contains("cpu: CPU xfeatures has unsupported bits (0x60000)"), "{:?}", r.cr_errmsg);
    drop(ours);
    let _ = child.kill();
    let _ = child.wait();
}

/// `--cpu-cap` on both sides on the same machine: cpuinfo.img is written,
/// checked, and the task comes back.
#[test]
fn cpu_cap_dump_and_restore_round_trip() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Target::sleeper();
    let pid = t.pid();
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let o = criu(&["dump", "-t", &pid.to_string(), "-D", s(&imgs), "--cpu-cap=all"]);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    t.reap();
    assert!(imgs.join("cpuinfo.img").exists());
    let o = criu(&["restore", "-d", "-D", s(&imgs), "--cpu-cap"]);
    assert!(o.status.success(), "restore --cpu-cap: {}", text(&o.stderr));
    assert_eq!(state(pid), Some('S'));
    kill_and_reap(pid);

    // Made on a CPU with a bigger XSAVE area (same features): CRIU's fpu
    // check refuses the size; without --cpu-cap the task comes back, its
    // state placed in this CPU's area.
    let mut e = read_cpuinfo(&imgs);
    let x = &mut e.x86_entry[0];
    let (size, max) = (x.xsave_size.unwrap(), x.xsave_size_max.unwrap());
    x.xsave_size = Some(size + 256);
    x.xsave_size_max = Some(max + 256);
    write_cpuinfo(&imgs, &e);
    let o = criu(&["restore", "-d", "-D", s(&imgs), "--cpu-cap=fpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(&format!("cpu: CPU xsave size mismatch ({}/{size})", size + 256)), "{}", text(&o.stderr));
    assert!(state(pid).is_none());
    let o = criu(&["restore", "-d", "-D", s(&imgs)]);
    assert!(o.status.success(), "restore: {}", text(&o.stderr));
    assert_eq!(state(pid), Some('S'));
    kill_and_reap(pid);

    // A plain dump writes none (CRIU's default).
    let mut t = Target::sleeper();
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let o = criu(&["dump", "-t", &t.pid().to_string(), "-D", s(&plain)]);
    assert!(o.status.success(), "dump: {}", text(&o.stderr));
    t.reap();
    assert!(!plain.join("cpuinfo.img").exists());
}
