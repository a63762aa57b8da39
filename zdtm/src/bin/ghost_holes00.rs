//! ghost_holes00: a sparse unlinked file (64 MiB, three data islands)
//! held open. After the restore it is still sparse (few blocks used),
//! SEEK_DATA/SEEK_HOLE find the same data extents as before the dump, the
//! islands hold their bytes and the holes read as zeros; size, offset and
//! zero link count as before.

/// The file's length.
const SIZE: i64 = 64 << 20;
/// (offset, length) of each island of data.
const ISLANDS: [(i64, usize); 3] = [(1 << 20, 8192), ((20 << 20) + 4096, 65536), ((63 << 20) + 8192, 12288)];

fn main() {
    zdtm::test_init();
    zdtm::ghost_holes::run(SIZE, &ISLANDS, &[0, 4 << 20, 40 << 20, SIZE - 1])
}
