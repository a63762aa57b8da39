//! The image layer against real CRIU 4.2 images (../shared/fixtures/criu-4.2):
//! every image decodes to exactly the JSON CRIU's crit printed for it, the
//! typed prost structs lose nothing (decode → encode gives the same bytes),
//! and corrupt images give errors naming the file and offset, never panics.

use std::path::{Path, PathBuf};

use criu::crit;
use criu::images::file::ImageReader;
use criu::images::kind::{self, kinds};
use criu::images::pagemap::{flags, Pagemap, PAGE_SIZE};
use criu::images::pb;
use criu::images::{ImageDir, ImageError, ImageWriter};
use prost::Message;
use serde_json::Value;

fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/criu-4.2");
    assert!(p.is_dir(), "CRIU 4.2 fixtures missing at {} (CI has ../shared beside the checkout)", p.display());
    p
}

const SETS: &[&str] = &["sleep", "python-timer", "bash-loop", "python-threads"];

fn image_files(set: &str) -> Vec<String> {
    let dir = ImageDir::open(&fixtures().join(set)).unwrap();
    dir.list().unwrap().into_iter().filter(|n| !n.starts_with("pages-")).collect()
}

/// The first place two JSON values differ, as a path.
fn first_diff(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    None => return Some(format!("{path}.{k}: only in ours ({v})")),
                    Some(w) => {
                        if let Some(d) = first_diff(v, w, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys().find(|k| !x.contains_key(*k)).map(|k| format!("{path}.{k}: only in crit's"))
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: {} items vs {}", x.len(), y.len()));
            }
            x.iter().zip(y).enumerate().find_map(|(i, (v, w))| first_diff(v, w, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: ours {a} vs crit's {b}")),
    }
}

#[test]
fn every_fixture_image_decodes_to_crits_json() {
    let mut checked = 0;
    for set in SETS {
        let dir = ImageDir::open(&fixtures().join(set)).unwrap();
        for name in image_files(set) {
            let r = ImageReader::open(&dir, &name).unwrap_or_else(|e| panic!("{set}/{name}: {e}"));
            let ours = crit::decode_image(r, true).unwrap_or_else(|e| panic!("{set}/{name}: {e}"));
            let json_path = fixtures().join(format!("{set}.crit/{name}.json"));
            let theirs: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
            if let Some(d) = first_diff(&ours, &theirs, &format!("{set}/{name}")) {
                panic!("{d}");
            }
            checked += 1;
        }
    }
    // Four sets, 56 protobuf images in all.
    assert_eq!(checked, 56);
}

/// Decode each entry with the typed prost struct of its kind and encode it
/// again: equal bytes mean the struct carries every field.
fn typed_reencode(entry: &str, b: &[u8]) -> Vec<u8> {
    macro_rules! rt {
        ($t:ty) => {
            <$t>::decode(b).unwrap_or_else(|e| panic!("{entry}: {e}")).encode_to_vec()
        };
    }
    match entry {
        "inventory_entry" => rt!(pb::InventoryEntry),
        "core_entry" => rt!(pb::CoreEntry),
        "mm_entry" => rt!(pb::MmEntry),
        "pagemap_head" => rt!(pb::PagemapHead),
        "pagemap_entry" => rt!(pb::PagemapEntry),
        "fdinfo_entry" => rt!(pb::FdinfoEntry),
        "file_entry" => rt!(pb::FileEntry),
        "fs_entry" => rt!(pb::FsEntry),
        "task_kobj_ids_entry" => rt!(pb::TaskKobjIdsEntry),
        "pstree_entry" => rt!(pb::PstreeEntry),
        "pipe_data_entry" => rt!(pb::PipeDataEntry),
        "sk_packet_entry" => rt!(pb::SkPacketEntry),
        "seccomp_entry" => rt!(pb::SeccompEntry),
        "timens_entry" => rt!(pb::TimensEntry),
        "stats_entry" => rt!(pb::StatsEntry),
        other => panic!("no typed round trip for {other}"),
    }
}

#[test]
fn typed_and_reflected_reencoding_is_byte_identical() {
    let mut entries = 0;
    for set in SETS {
        let dir = ImageDir::open(&fixtures().join(set)).unwrap();
        for name in image_files(set) {
            let mut r = ImageReader::open(&dir, &name).unwrap();
            let k = r.kind();
            let mut first = true;
            while let Some(bytes) = r.next_raw().unwrap() {
                let entry = if k.payload == kind::Payload::Pagemap && first { "pagemap_head" } else { k.entry };
                first = false;
                assert_eq!(typed_reencode(entry, &bytes), bytes, "{set}/{name}: typed {entry}");
                let desc = crit::message(entry).unwrap();
                assert_eq!(crit::reencode_entry(&desc, &bytes).unwrap(), bytes, "{set}/{name}: reflected {entry}");
                match k.payload {
                    kind::Payload::PipeData => {
                        let e = pb::PipeDataEntry::decode(bytes.as_slice()).unwrap();
                        r.payload(u64::from(e.bytes)).unwrap();
                    }
                    kind::Payload::SkQueue => {
                        let e = pb::SkPacketEntry::decode(bytes.as_slice()).unwrap();
                        r.payload(u64::from(e.length)).unwrap();
                    }
                    _ => {}
                }
                entries += 1;
            }
        }
    }
    assert!(entries >= 280, "only {entries} entries seen");
}

#[test]
fn typed_values_match_what_the_programs_were() {
    let dir = ImageDir::open(&fixtures().join("sleep")).unwrap();
    let mut r = ImageReader::open_kind(&dir, "pstree.img", kinds::pstree()).unwrap();
    let ps: pb::PstreeEntry = r.expect().unwrap();
    assert_eq!(ps.pid, 30001);
    assert_eq!(ps.threads, vec![30001]);

    let core: pb::CoreEntry = ImageReader::open_kind(&dir, "core-30001.img", kinds::core()).unwrap().expect().unwrap();
    assert_eq!(core.tc.as_ref().unwrap().comm, "sleep");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("sleep.crit/core-30001.img.json")).unwrap(),
    )
    .unwrap();
    let gp = &core.thread_info.as_ref().unwrap().gpregs;
    let ip = json["entries"][0]["thread_info"]["gpregs"]["ip"].as_str().unwrap();
    assert_eq!(format!("{:#x}", gp.ip), ip);

    let mm: pb::MmEntry = ImageReader::open_kind(&dir, "mm-30001.img", kinds::mm()).unwrap().expect().unwrap();
    assert!(mm.vmas.len() > 10);
    let pm = Pagemap::read(&dir, 30001).unwrap();
    let pages_len = std::fs::metadata(fixtures().join("sleep").join(format!("pages-{}.img", pm.head.pages_id)))
        .unwrap()
        .len();
    let runs = pm.runs("pagemap-30001.img", pages_len).unwrap();
    let stored: u64 = runs.iter().filter(|r| r.pages_offset.is_some()).map(|r| r.len()).sum();
    assert_eq!(stored, pages_len, "present pages fill pages-N.img exactly");
    // A run may span adjacent VMAs, but every page lies in one.
    for run in &runs {
        for p in 0..run.nr_pages {
            let a = run.vaddr + p * PAGE_SIZE;
            assert!(mm.vmas.iter().any(|v| v.start <= a && a < v.end), "page {a:#x} of {run:?} in a vma");
        }
    }
}

#[test]
fn written_images_read_back_equal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ImageDir::open(tmp.path()).unwrap();
    let fixture = ImageDir::open(&fixtures().join("python-timer")).unwrap();
    let core: pb::CoreEntry =
        ImageReader::open_kind(&fixture, "core-30151.img", kinds::core()).unwrap().expect().unwrap();
    let mut w = ImageWriter::create(&dir, "core-1.img", kinds::core()).unwrap();
    w.write(&core).unwrap();
    w.finish().unwrap();
    let back: pb::CoreEntry = ImageReader::open_kind(&dir, "core-1.img", kinds::core()).unwrap().expect().unwrap();
    assert_eq!(back, core);
    // Same bytes as CRIU wrote.
    assert_eq!(
        std::fs::read(tmp.path().join("core-1.img")).unwrap(),
        std::fs::read(fixtures().join("python-timer/core-30151.img")).unwrap()
    );

    let pm = Pagemap::read(&fixture, 30151).unwrap();
    pm.write(&dir, 7).unwrap();
    assert_eq!(Pagemap::read(&dir, 7).unwrap(), pm);

    let inv: pb::InventoryEntry =
        ImageReader::open_kind(&fixture, "inventory.img", kinds::inventory()).unwrap().expect().unwrap();
    let mut w = ImageWriter::create(&dir, "inventory.img", kinds::inventory()).unwrap();
    w.write(&inv).unwrap();
    w.finish().unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("inventory.img")).unwrap(),
        std::fs::read(fixtures().join("python-timer/inventory.img")).unwrap()
    );

    let mut w = ImageWriter::create(&dir, "pipes-data.img", kinds::pipes_data()).unwrap();
    w.write(&pb::PipeDataEntry { pipe_id: 5, bytes: 3, size: Some(65536) }).unwrap();
    w.payload(b"abc").unwrap();
    w.finish().unwrap();
    let json = crit::decode_image(ImageReader::open(&dir, "pipes-data.img").unwrap(), true).unwrap();
    assert_eq!(json["entries"][0]["extra"], "YWJj\n");
    assert_eq!(json["entries"][0]["pipe_id"], 5);
}

/// Decode a whole image, whatever its kind, the way a reader of it would.
fn decode_all(dir: &ImageDir, name: &str) -> Result<Value, ImageError> {
    crit::decode_image(ImageReader::open(dir, name)?, true)
}

#[test]
fn truncated_images_fail_with_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ImageDir::open(tmp.path()).unwrap();
    for (set, name) in [
        ("python-timer", "core-30151.img"),
        ("python-timer", "pagemap-30151.img"),
        ("python-timer", "pipes-data.img"),
        ("python-threads", "sk-queues.img"),
        ("sleep", "inventory.img"),
        ("sleep", "stats-dump"),
        ("sleep", "mm-30001.img"),
        ("sleep", "files.img"),
    ] {
        let data = std::fs::read(fixtures().join(set).join(name)).unwrap();
        let mut failures = 0;
        for cut in 0..data.len() {
            std::fs::write(tmp.path().join(name), &data[..cut]).unwrap();
            match decode_all(&dir, name) {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(name), "{msg}");
                    failures += 1;
                }
                // Cutting exactly between entries leaves a valid, shorter image.
                Ok(v) => assert!(v["entries"].as_array().is_some()),
            }
        }
        assert!(failures > data.len() / 2, "{name}: only {failures} of {} cuts failed", data.len());
    }
}

#[test]
fn bad_magic_huge_entry_and_garbage_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ImageDir::open(tmp.path()).unwrap();
    let core = std::fs::read(fixtures().join("sleep/core-30001.img")).unwrap();

    let mut bad = core.clone();
    bad[4..8].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    std::fs::write(tmp.path().join("core-1.img"), &bad).unwrap();
    let e = decode_all(&dir, "core-1.img").unwrap_err().to_string();
    assert!(e.contains("core-1.img") && e.contains("bad magic 0x12345678"), "{e}");

    // A core image whose type magic is a pagemap's is refused by typed open.
    let mut wrong = core.clone();
    wrong[4..8].copy_from_slice(&kinds::pagemap().magic.to_le_bytes());
    std::fs::write(tmp.path().join("core-2.img"), &wrong).unwrap();
    assert!(matches!(
        ImageReader::open_kind(&dir, "core-2.img", kinds::core()),
        Err(ImageError::BadMagic { .. })
    ));

    // Entry length far beyond the cap: refused before any allocation.
    let mut huge = core[..8].to_vec();
    huge.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    huge.extend_from_slice(&[0u8; 16]);
    std::fs::write(tmp.path().join("core-3.img"), &huge).unwrap();
    let e = decode_all(&dir, "core-3.img").unwrap_err();
    assert!(matches!(e, ImageError::TooBig { offset: 8, .. }), "{e}");

    // Entry length past the end of the file.
    let mut past = core[..8].to_vec();
    past.extend_from_slice(&1000u32.to_le_bytes());
    past.extend_from_slice(&[0u8; 10]);
    std::fs::write(tmp.path().join("core-4.img"), &past).unwrap();
    let e = decode_all(&dir, "core-4.img").unwrap_err().to_string();
    assert!(e.contains("core-4.img") && e.contains("truncated entry at offset 8"), "{e}");

    // Protobuf garbage: an error naming the offset.
    let mut garbage = core[..8].to_vec();
    garbage.extend_from_slice(&4u32.to_le_bytes());
    garbage.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    std::fs::write(tmp.path().join("core-5.img"), &garbage).unwrap();
    let e = decode_all(&dir, "core-5.img").unwrap_err();
    assert!(matches!(e, ImageError::Decode { offset: 8, .. }), "{e}");

    // Flipped bytes anywhere never panic.
    for i in 8..core.len() {
        let mut f = core.clone();
        f[i] ^= 0xa5;
        std::fs::write(tmp.path().join("core-6.img"), &f).unwrap();
        let _ = decode_all(&dir, "core-6.img");
    }
}

#[test]
fn pagemap_pointing_past_pages_is_an_error() {
    let fixture = ImageDir::open(&fixtures().join("python-timer")).unwrap();
    let mut pm = Pagemap::read(&fixture, 30151).unwrap();
    let pages_len = std::fs::metadata(fixtures().join("python-timer/pages-1.img")).unwrap().len();
    assert!(pm.runs("pagemap-30151.img", pages_len).is_ok());
    let e = pm.runs("pagemap-30151.img", pages_len - PAGE_SIZE).unwrap_err().to_string();
    assert!(e.contains("points past the end of pages-1.img"), "{e}");

    let last = pm.entries.last_mut().unwrap();
    last.nr_pages = Some(u64::MAX / 2);
    last.flags = Some(flags::PE_PRESENT);
    assert!(pm.runs("pagemap-30151.img", pages_len).is_err());

    let mut pm = Pagemap::read(&fixture, 30151).unwrap();
    pm.entries.swap(0, 1);
    let e = pm.runs("pagemap-30151.img", pages_len).unwrap_err().to_string();
    assert!(e.contains("out of order"), "{e}");
}
