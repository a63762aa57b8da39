//! The restorer's argument area as bytes: the [`Args`] header, then its
//! tail arrays, each 8-byte aligned, referenced by offset (see
//! `parasite/src/restorer_proto.rs`).

use super::proto::{Args, Slice, Words};

/// Builds the argument area: the header is written last, when every tail
/// offset is known.
pub struct Builder {
    words: Vec<u64>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        Builder { words: vec![0; std::mem::size_of::<Args>() / 8] }
    }

    /// Append an array of structs; its slice.
    pub fn push<T: Words>(&mut self, items: &[T]) -> Slice {
        let off = (self.words.len() * 8) as u64;
        for it in items {
            it.put(&mut |w| self.words.push(w));
        }
        Slice { off, n: items.len() as u64 }
    }

    /// Append 32-bit values, packed two to a word.
    pub fn push_u32(&mut self, items: &[u32]) -> Slice {
        let off = (self.words.len() * 8) as u64;
        for pair in items.chunks(2) {
            let hi = pair.get(1).copied().unwrap_or(0);
            self.words.push(u64::from(pair[0]) | (u64::from(hi) << 32));
        }
        Slice { off, n: items.len() as u64 }
    }

    /// Bytes so far.
    pub fn size(&self) -> u64 {
        (self.words.len() * 8) as u64
    }

    /// The finished area with `args` as its header.
    pub fn finish(mut self, args: &Args) -> Vec<u8> {
        let mut head = Vec::with_capacity(std::mem::size_of::<Args>() / 8);
        args.put(&mut |w| head.push(w));
        self.words[..head.len()].copy_from_slice(&head);
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::{self, MmMap, Move};
    use super::*;
    use std::mem::{offset_of, size_of};

    fn words<T: Words>(v: &T) -> Vec<u64> {
        let mut out = Vec::new();
        v.put(&mut |w| out.push(w));
        out
    }

    #[test]
    fn words_follow_the_memory_layout() {
        let a = Args {
            magic: 1,
            exe_fd: 7,
            mm: MmMap { brk: 9, ..Default::default() },
            creds: proto::Creds { groups: Slice { off: 5, n: 6 }, cap_amb: 11, ..Default::default() },
            frame: 42,
            ..Default::default()
        };
        let w = words(&a);
        assert_eq!(w.len() * 8, size_of::<Args>());
        assert_eq!(w[offset_of!(Args, exe_fd) / 8], 7);
        assert_eq!(w[(offset_of!(Args, mm) + offset_of!(MmMap, brk)) / 8], 9);
        assert_eq!(w[(offset_of!(Args, creds) + offset_of!(proto::Creds, cap_amb)) / 8], 11);
        assert_eq!(w[(offset_of!(Args, creds) + offset_of!(proto::Creds, groups)) / 8 + 1], 6);
        assert_eq!(w[offset_of!(Args, frame) / 8], 42);
        assert_eq!(words(&proto::Pending::default()).len() * 8, size_of::<proto::Pending>());
    }

    #[test]
    fn tails_are_referenced_by_offset() {
        let mut b = Builder::new();
        let m = b.push(&[Move { from: 1, to: 2, len: 3, prot: 4, madv: 5 }]);
        let g = b.push_u32(&[10, 11, 12]);
        let bytes = b.finish(&Args { moves: m, ..Default::default() });
        let at = |o: u64| u64::from_le_bytes(bytes[o as usize..o as usize + 8].try_into().unwrap());
        assert_eq!(m.off as usize, size_of::<Args>());
        assert_eq!((at(m.off), at(m.off + 8)), (1, 2));
        assert_eq!(at(g.off), 10 | (11 << 32));
        assert_eq!(at(g.off + 8), 12);
        assert_eq!(at(offset_of!(Args, moves) as u64), m.off);
    }
}
