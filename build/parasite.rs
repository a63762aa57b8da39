//! The parasite blob compel injects (`parasite/src/lib.rs`): entry stub and
//! the int3 reached only if its main returns. See `build/blob.rs`.

use super::blob::{build as build_blob, Spec};

/// Writes `OUT_DIR/parasite_blob.rs`.
pub fn build() {
    build_blob(&Spec {
        name: "parasite",
        source: "parasite/src/lib.rs",
        script: "parasite/parasite.ld",
        entry: "parasite_entry",
        syms: &[("parasite_entry", "ENTRY"), ("parasite_trap", "TRAP")],
        rerun: &["parasite", "build/parasite.rs"],
    });
}
