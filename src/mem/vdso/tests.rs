use super::elf::{Symbol, VdsoElf};
use super::*;

fn sym(name: &str, offset: u64) -> Symbol {
    Symbol { name: name.into(), version: Some("LINUX_2.6".into()), offset }
}

fn vdso(syms: &[(&str, u64)], text: (u64, u64)) -> VdsoElf {
    let mut symbols: Vec<Symbol> = syms.iter().map(|(n, o)| sym(n, *o)).collect();
    symbols.sort_by(|a, b| (a.offset, &a.name).cmp(&(b.offset, &b.name)));
    VdsoElf { symbols, text: vec![text] }
}

#[test]
fn patches_go_to_same_named_functions_once_per_entry() {
    let theirs = vdso(&[("clock_gettime", 0x800), ("__vdso_clock_gettime", 0x800), ("time", 0x900), ("__vdso_time", 0x900)], (0x700, 0xa00));
    let ours = vdso(&[("clock_gettime", 0x840), ("__vdso_clock_gettime", 0x840), ("time", 0x9a0), ("__vdso_time", 0x9a0)], (0x700, 0xb00));
    let p = plan_patches(&theirs, &ours, 12).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].offset, p[0].target), (0x800, 0x840));
    assert_eq!((p[1].offset, p[1].target), (0x900, 0x9a0));
    assert_eq!(p[0].names.len(), 2);
    let j = jumps(&p, 0x7f00_0000_0000);
    assert_eq!(j[1].0, 0x900);
    assert_eq!(j[1].1, crate::arch::vdso_jump(0x7f00_0000_09a0).to_vec());
}

#[test]
fn a_function_we_lack_is_named() {
    let theirs = vdso(&[("clock_gettime", 0x800), ("__vdso_sgx_enter_enclave", 0x900)], (0x700, 0xa00));
    let ours = vdso(&[("clock_gettime", 0x840)], (0x700, 0xa00));
    let e = format!("{:#}", plan_patches(&theirs, &ours, 12).unwrap_err());
    assert!(e.contains("__vdso_sgx_enter_enclave@LINUX_2.6"), "{e}");
}

#[test]
fn a_jump_must_fit_before_the_next_symbol_and_the_end_of_the_code() {
    let ours = vdso(&[("a", 0x800), ("b", 0x900)], (0x700, 0xa00));
    // 8 bytes to the next symbol.
    let e = format!("{:#}", plan_patches(&vdso(&[("a", 0x800), ("b", 0x808)], (0x700, 0xa00)), &ours, 12).unwrap_err());
    assert!(e.contains("symbol a") && e.contains("8 bytes"), "{e}");
    // 10 bytes to the end of the text.
    let e = format!("{:#}", plan_patches(&vdso(&[("a", 0x800), ("b", 0x9f6)], (0x700, 0xa00)), &ours, 12).unwrap_err());
    assert!(e.contains("symbol b") && e.contains("10 bytes"), "{e}");
    // Exactly 12 fits.
    assert!(plan_patches(&vdso(&[("a", 0x800), ("b", 0x80c)], (0x700, 0x818)), &ours, 12).is_ok());
    // Outside the code.
    assert!(plan_patches(&vdso(&[("a", 0x600)], (0x700, 0xa00)), &ours, 12).is_err());
}

#[test]
fn versions_must_agree_when_both_have_them() {
    let theirs = vdso(&[("time", 0x800)], (0x700, 0xa00));
    let mut ours = vdso(&[("time", 0x840)], (0x700, 0xa00));
    ours.symbols[0].version = Some("LINUX_9".into());
    assert!(plan_patches(&theirs, &ours, 12).is_err());
    ours.symbols[0].version = None;
    assert!(plan_patches(&theirs, &ours, 12).is_ok());
}

fn runtime() -> Option<Runtime> {
    let rt = Runtime::current().expect("reading our own vDSO");
    if rt.is_none() {
        println!("skipped: this process has no vDSO");
    }
    rt
}

/// The image's vDSO as a dump of this process would hold it.
fn image_of(rt: &Runtime) -> ImageVdso {
    ImageVdso {
        vdso: (0x7f00_0000_6000, 0x7f00_0000_6000 + rt.vdso.1),
        vvar: rt.vvar.map(|(s, l)| (0x7f00_0000_6000 - (rt.vdso.0 - s), 0x7f00_0000_6000 - (rt.vdso.0 - s) + l)),
        bytes: rt.bytes.clone(),
        missing: Vec::new(),
    }
}

#[test]
fn our_own_vdso_is_remapped_and_a_changed_one_proxied() {
    let Some(rt) = runtime() else { return };
    let mut img = image_of(&rt);
    assert_eq!(decide(Some(&img), Some(&rt), 1).unwrap(), VdsoPlan::Remap);
    assert_eq!(decide(None, Some(&rt), 1).unwrap(), VdsoPlan::None);
    assert!(decide(Some(&img), None, 1).is_err());

    // Another vvar distance: proxy.
    if let Some(v) = &mut img.vvar {
        v.0 -= PAGE_SIZE;
        v.1 -= PAGE_SIZE;
        assert!(matches!(decide(Some(&img), Some(&rt), 1).unwrap(), VdsoPlan::Proxy(_)));
        img = image_of(&rt);
    }

    // One byte of the last page changed: a proxy whose every entry jumps
    // to the same offset of ours (it is the same code).
    *img.bytes.last_mut().unwrap() ^= 0xff;
    let VdsoPlan::Proxy(p) = decide(Some(&img), Some(&rt), 1).unwrap() else { panic!("not a proxy") };
    let ours = elf::parse(&rt.bytes).unwrap();
    let mut entries: Vec<u64> = ours.symbols.iter().map(|s| s.offset).collect();
    entries.dedup();
    assert_eq!(p.iter().map(|x| x.offset).collect::<Vec<_>>(), entries);
    assert!(p.iter().all(|x| x.offset == x.target));

    // A page the image lacks is not compared, but can't be proxied.
    if img.bytes.len() as u64 > PAGE_SIZE {
        img.missing = vec![PAGE_SIZE];
        assert_eq!(decide(Some(&img), Some(&rt), 7).unwrap(), VdsoPlan::Remap);
        img.bytes[PAGE_SIZE as usize - 1] ^= 0xff;
        let e = format!("{:#}", decide(Some(&img), Some(&rt), 7).unwrap_err());
        assert!(e.contains("task 7") && e.contains("lacks its page"), "{e}");
    }
    // Without its ELF header page it is never found the same.
    img = image_of(&rt);
    img.missing = vec![0];
    assert!(decide(Some(&img), Some(&rt), 7).is_err());
}

#[test]
fn the_block_joins_vvar_and_vvar_vclock() {
    let m = |s: u64, e: u64, name: &str| crate::proc::maps::MapEntry { start: s, end: e, name: name.into(), ..Default::default() };
    let own = [m(0x1000, 0x5000, "[vvar]"), m(0x5000, 0x7000, "[vvar_vclock]"), m(0x7000, 0x9000, "[vdso]"), m(0x9000, 0xa000, "")];
    assert_eq!(block(&own), Some(((0x7000, 0x2000), Some((0x1000, 0x6000)))));
    assert_eq!(block(&own[..2]), None);
    assert_eq!(block(&own[2..]), Some(((0x7000, 0x2000), None)));
}
