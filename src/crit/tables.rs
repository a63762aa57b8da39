//! Value tables crit uses to print numbers by name: bit-flag tables named
//! by a field's `(criu).flags` option and value dictionaries named by
//! `(criu).dict`. The values are kernel and image-format constants.

/// A bit-flag table: (name, bit mask).
pub type FlagTable = &'static [(&'static str, u64)];

const MMAP_PROT: FlagTable = &[("PROT_READ", 0x1), ("PROT_WRITE", 0x2), ("PROT_EXEC", 0x4)];

const MMAP_FLAGS: FlagTable = &[
    ("MAP_SHARED", 0x1),
    ("MAP_PRIVATE", 0x2),
    ("MAP_DROPPABLE", 0x08),
    ("MAP_ANON", 0x20),
    ("MAP_GROWSDOWN", 0x100),
];

/// VMA status bits of vma_entry.status (our mem code uses the same values).
pub const MMAP_STATUS: FlagTable = &[
    ("VMA_AREA_NONE", 0),
    ("VMA_AREA_REGULAR", 1 << 0),
    ("VMA_AREA_STACK", 1 << 1),
    ("VMA_AREA_VSYSCALL", 1 << 2),
    ("VMA_AREA_VDSO", 1 << 3),
    ("VMA_AREA_HEAP", 1 << 5),
    ("VMA_FILE_PRIVATE", 1 << 6),
    ("VMA_FILE_SHARED", 1 << 7),
    ("VMA_ANON_SHARED", 1 << 8),
    ("VMA_ANON_PRIVATE", 1 << 9),
    ("VMA_AREA_SYSVIPC", 1 << 10),
    ("VMA_AREA_SOCKET", 1 << 11),
    ("VMA_AREA_VVAR", 1 << 12),
    ("VMA_AREA_AIORING", 1 << 13),
    ("VMA_AREA_MEMFD", 1 << 14),
    ("VMA_AREA_SHSTK", 1 << 15),
    ("VMA_AREA_UPROBES", 1 << 17),
    ("VMA_UNSUPP", 1 << 31),
];

const RFILE_FLAGS: FlagTable = &[
    ("O_WRONLY", 0o1),
    ("O_RDWR", 0o2),
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_DSYNC", 0o10000),
    ("FASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
];

const PMAP_FLAGS: FlagTable = &[("PE_PARENT", 1), ("PE_LAZY", 2), ("PE_PRESENT", 4)];

const SEALS_FLAGS: FlagTable = &[
    ("F_SEAL_SEAL", 0x1),
    ("F_SEAL_SHRINK", 0x2),
    ("F_SEAL_GROW", 0x4),
    ("F_SEAL_WRITE", 0x8),
    ("F_SEAL_FUTURE_WRITE", 0x10),
];

/// The flag table named `name`, if crit knows it.
pub fn flag_table(name: &str) -> Option<FlagTable> {
    Some(match name {
        "mmap.prot" => MMAP_PROT,
        "mmap.flags" => MMAP_FLAGS,
        "mmap.status" => MMAP_STATUS,
        "rfile.flags" => RFILE_FLAGS,
        "pmap.flags" => PMAP_FLAGS,
        "seals.flags" => SEALS_FLAGS,
        _ => return None,
    })
}

/// Render `value` as `A | B | 0xrest`, the names of the set bits in table
/// order and any bits left over in hex.
pub fn render_flags(value: u64, table: FlagTable) -> String {
    let mut parts: Vec<String> = table.iter().filter(|(_, bit)| value & bit != 0).map(|(n, _)| n.to_string()).collect();
    let known: u64 = table.iter().map(|(_, b)| b).fold(0, |a, b| a | b);
    let rest = value & !known;
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join(" | ")
}

/// Parse `A | B | 0x10` back into a number with `table`.
pub fn parse_flags(text: &str, table: FlagTable) -> Option<u64> {
    let mut v = 0;
    for part in text.split('|').map(str::trim).filter(|p| !p.is_empty()) {
        v |= match table.iter().find(|(n, _)| *n == part) {
            Some((_, b)) => *b,
            None => parse_int(part)?,
        };
    }
    Some(v)
}

fn parse_int(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The name of `value` in dictionary `dict` for field `field`.
pub fn dict_name(dict: &str, field: &str, value: i64) -> Option<&'static str> {
    dict_table(dict, field)?.iter().find(|(v, _)| *v == value).map(|(_, n)| *n)
}

/// The value named `name` in dictionary `dict` for field `field`.
pub fn dict_value(dict: &str, field: &str, name: &str) -> Option<i64> {
    dict_table(dict, field)?.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}

fn dict_table(dict: &str, field: &str) -> Option<&'static [(i64, &'static str)]> {
    Some(match (dict, field) {
        ("gen", "task_state") => &[(1, "Alive"), (3, "Zombie"), (6, "Stopped")],
        ("sk", "family") => &[(1, "UNIX"), (2, "INET"), (10, "INET6"), (16, "NETLINK"), (17, "PACKET")],
        ("sk", "type") => &[(1, "STREAM"), (2, "DGRAM"), (3, "RAW"), (5, "SEQPACKET"), (10, "PACKET")],
        ("sk", "state") => &[
            (1, "ESTABLISHED"),
            (2, "SYN_SENT"),
            (3, "SYN_RECV"),
            (4, "FIN_WAIT1"),
            (5, "FIN_WAIT2"),
            (6, "TIME_WAIT"),
            (7, "CLOSE"),
            (8, "CLOSE_WAIT"),
            (9, "LAST_ACK"),
            (10, "LISTEN"),
        ],
        ("sk", "proto") => &[(0, "IP"), (6, "TCP"), (17, "UDP"), (136, "UDPLITE")],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip() {
        let t = flag_table("pmap.flags").unwrap();
        assert_eq!(render_flags(6, t), "PE_LAZY | PE_PRESENT");
        assert_eq!(render_flags(4 | 0x40, t), "PE_PRESENT | 0x40");
        assert_eq!(render_flags(0, t), "");
        assert_eq!(parse_flags("PE_LAZY | PE_PRESENT", t), Some(6));
        assert_eq!(parse_flags("PE_PRESENT | 0x40", t), Some(0x44));
        let s = flag_table("mmap.status").unwrap();
        assert_eq!(render_flags(0x201, s), "VMA_AREA_REGULAR | VMA_ANON_PRIVATE");
    }
}
