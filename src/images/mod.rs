//! Image files: magics, framing, typed protobuf entries, pagemap/pages.
pub mod pb;
