//! Fuzz the image reader: any bytes as an image file must decode or give an
//! error, never panic or allocate without bound. Exercises header detection,
//! framing, every kind's payload handling and crit rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if let Ok(r) = criu::images::ImageReader::new(std::io::Cursor::new(data), "fuzz.img".into(), len) {
        let _ = criu::crit::decode_image(r, true);
    }
    // Also as a pagemap (one by its magic), checked against a pages file of
    // arbitrary size.
    let pagemap = criu::images::ImageReader::new(std::io::Cursor::new(data), "pagemap.img".into(), len)
        .and_then(|r| r.into_kind(criu::images::kind::kinds::pagemap()));
    if let Ok(mut r) = pagemap {
        if let Ok(head) = r.head() {
            if let Ok(entries) = r.all() {
                let pm = criu::images::pagemap::Pagemap { head, entries };
                let _ = pm.runs("pagemap.img", len.wrapping_mul(4096));
            }
        }
    }
});
