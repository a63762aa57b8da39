//! The restorer blob the last stage of a restore jumps into
//! (`parasite/src/restorer.rs`, see `src/restorer/`): its entry, the trap
//! after it, the int3 the cleaner waits for (`SYNC`) and a `syscall`
//! instruction the cleaner borrows (`SYSCALL`). See `build/blob.rs`.

use super::blob::{build as build_blob, Spec};

/// Writes `OUT_DIR/restorer_blob.rs`.
pub fn build() {
    build_blob(&Spec {
        name: "restorer",
        source: "parasite/src/restorer.rs",
        script: "parasite/restorer.ld",
        entry: "restorer_entry",
        syms: &[
            ("restorer_entry", "ENTRY"),
            ("restorer_trap", "TRAP"),
            ("restorer_sync", "SYNC"),
            ("restorer_syscall", "SYSCALL"),
        ],
        rerun: &[
            "parasite/src/restorer.rs",
            "parasite/src/restorer_proto.rs",
            "parasite/src/mem.rs",
            "parasite/restorer.ld",
            "build/restorer.rs",
        ],
    });
}
