//! ghost_holes02: a 1 GiB sparse unlinked file (three small data islands)
//! held open, dumped with --ghost-fiemap: it costs only its data in the
//! images (far under --ghost-limit's default 1 MiB of blocks in use), and
//! after the restore it is still sparse, with the same extents, bytes,
//! zeros, size, offset and no link.

/// The file's length.
const SIZE: i64 = 1 << 30;
/// (offset, length) of each island of data.
const ISLANDS: [(i64, usize); 3] = [(4096, 4096), ((512 << 20) + 8192, 16384), (SIZE - 12288, 8192)];

fn main() {
    zdtm::test_init();
    zdtm::ghost_holes::run(SIZE, &ISLANDS, &[0, 100 << 20, 900 << 20, SIZE - 1])
}
