//! inventory.img: the images' version and the dump's root ids.

use crate::images::kind::{kinds, CRTOOLS_IMAGES_V1_1};
use crate::images::pb::{InventoryEntry, Lsmtype, PluginsEntry, TaskKobjIdsEntry};
use crate::images::{ImageDir, ImageError, ImageReader, ImageWriter};

/// The inventory a dump writes.
pub fn new(root_ids: TaskKobjIdsEntry, run_id: String) -> InventoryEntry {
    InventoryEntry {
        img_version: CRTOOLS_IMAGES_V1_1,
        fdinfo_per_id: Some(true),
        root_ids: Some(root_ids),
        ns_per_id: Some(true),
        root_cg_set: Some(1),
        lsmtype: Some(Lsmtype::NoLsm as i32),
        dump_uptime: None,
        pre_dump_mode: None,
        tcp_close: None,
        network_lock_method: Some(0),
        plugins_entry: Some(PluginsEntry::default()),
        dump_criu_run_id: Some(run_id),
        allow_uprobes: None,
    }
}

pub fn write(dir: &ImageDir, inv: &InventoryEntry) -> Result<(), ImageError> {
    let mut w = ImageWriter::create(dir, "inventory.img", kinds::inventory())?;
    w.write(inv)?;
    w.finish().map(drop)
}

pub fn read(dir: &ImageDir) -> Result<InventoryEntry, ImageError> {
    ImageReader::open_kind(dir, "inventory.img", kinds::inventory())?.expect()
}

/// A random run id in UUID text form (from the kernel's random source).
pub fn run_id() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
